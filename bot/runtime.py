"""The running desk: store + flows + delivery of notifications, shared by ``serve`` and ``chat``.

Notifications (an assignment, later reminders) are written as durable jobs
in the same commit as the change they report; :meth:`Runtime.deliver_due`
sends them on the recipient's channel and deletes the job only after the
send succeeded (at-least-once, never lost by a crash).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.domain import Actor, Role, User
from bot.i18n import use_locale
from bot.storage import Store
from conversations.cards import case_card
from conversations.desk import Desk, Result
from conversations.directory import tenant_key
from conversations.model import Message, Reply
from conversations.serialize import reply_to_dict

log = logging.getLogger(__name__)

# A deliverer sends replies to a user on one channel; False when it could not.
Deliverer = Callable[[User, list[Reply]], Awaitable[bool]]


class Runtime:
    """Everything a running bot needs, independent of HTTP."""

    def __init__(self, settings: Settings, store: Store, clock: Clock | None = None) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock or SystemClock()
        self.desk = Desk(store, settings, self.clock)
        self.deliverers: dict[str, Deliverer] = {}

    async def handle(self, msg: Message) -> Result:
        result = await self.desk.handle(msg)
        await self.deliver_due()
        return result

    async def notification_replies(self, user: User, job: dict[str, Any]) -> list[Reply]:
        """The text and the case card of a notification, rendered for its recipient."""
        with use_locale(user.locale):
            replies = [Reply(text=job["text"])]
            case = await self.store.get_case(int(job["case"])) if job.get("case") else None
            if case is not None:
                customer = await self.store.get_customer(case.customer_id)
                names = {u.id: u.display_name for u in await self.store.users()}
                viewer = Actor(
                    user.id, user.role, "notification", user.tenant_id, user.display_name
                )
                replies[0].card = case_card(
                    case,
                    customer,
                    viewer,
                    user.time_zone,
                    names,
                    self.clock.now(),
                    tenant_key(customer) if customer else None,
                )
            return replies

    async def deliver_due(self) -> int:
        """Send every due notification job; returns how many were delivered."""
        now = self.clock.now()
        sent = 0
        for key, job in await self.store.due_jobs(now):
            if job.get("type") != "notify":
                continue
            user = await self.store.get_user(job["user_id"])
            if user is None or user.role == Role.NONE:
                await self.store.save_job(key, None)
                continue
            replies = await self.notification_replies(user, job)
            delivered = False
            for channel in ("slack", "teams"):
                deliver = self.deliverers.get(channel)
                if deliver and channel in user.identities:
                    try:
                        delivered = await deliver(user, replies)
                    except Exception:  # noqa: BLE001 - one failing channel must not stop the others
                        log.exception("delivery on %s to %s failed", channel, user.id)
                        delivered = False
                    if delivered:
                        break
            if not delivered:
                await self.add_to_inbox(user.id, replies)
                delivered = True
            await self.store.save_job(key, None)
            sent += 1
        return sent

    async def add_to_inbox(self, user_id: str, replies: list[Reply]) -> None:
        """The local channel's inbox: shown when ``billing-bot chat`` starts."""
        key = f"inbox|{user_id}"
        current = await self.store.get_conversation(key) or {"items": []}
        current["items"].extend(reply_to_dict(r) for r in replies)
        current["items"] = current["items"][-50:]
        await self.store.save_conversation(key, current)

    async def take_inbox(self, user_id: str) -> list[dict[str, Any]]:
        key = f"inbox|{user_id}"
        current = await self.store.get_conversation(key)
        if not current:
            return []
        await self.store.save_conversation(key, None)
        items: list[dict[str, Any]] = current.get("items", [])
        return items

    async def housekeeping(self) -> None:
        await self.store.purge_events(self.clock.now() - timedelta(0))
