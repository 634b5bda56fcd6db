"""The running desk: store + flows + delivery of notifications, shared by ``serve`` and ``chat``.

Notifications (an assignment, later reminders) are written as durable jobs
in the same commit as the change they report; :meth:`Runtime.deliver_due`
sends them on the recipient's channel and deletes the job only after the
send succeeded (at-least-once, never lost by a crash).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.domain import Actor, Role, User
from bot.i18n import use_locale
from bot.storage import Op, Store, VersionConflict
from conversations.cards import case_card
from conversations.desk import Desk, Result
from conversations.directory import tenant_key
from conversations.model import Message, Reply
from conversations.serialize import reply_to_dict

log = logging.getLogger(__name__)

# A deliverer sends replies to a user on one channel; False when it could not.
Deliverer = Callable[[User, list[Reply]], Awaitable[bool]]
# An inbox handler does the work a channel request asked for, after the request was acked.
InboxHandler = Callable[[dict[str, Any]], Awaitable[None]]

EVENT_TTL = timedelta(days=2)
MAX_INBOX_ATTEMPTS = 5


class Runtime:
    """Everything a running bot needs, independent of HTTP."""

    def __init__(self, settings: Settings, store: Store, clock: Clock | None = None) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock or SystemClock()
        self.desk = Desk(store, settings, self.clock)
        self.deliverers: dict[str, Deliverer] = {}
        self.inbox_handlers: dict[str, InboxHandler] = {}
        self._inbox_wake = asyncio.Event()
        self._inbox_idle = asyncio.Event()
        self._inbox_idle.set()

    # ---- the durable inbox: record before the ack, work after it ---------
    async def enqueue(
        self, channel: str, payload: dict[str, Any], dedupe: str | None = None
    ) -> bool:
        """Record a request durably before it is acknowledged; False if ``dedupe`` was seen.

        The dedupe key (a Slack ``event_id``, a Teams activity id, a click's
        case/action/version) and the inbox item are written in one commit, so a
        retry or a double click can never be queued twice, and a queued item
        survives a crash and is worked off after a restart.
        """
        now = self.clock.now()
        item_id = f"{now.strftime('%Y%m%d%H%M%S%f')}-{uuid.uuid4().hex[:8]}"
        item = {"channel": channel, "payload": payload, "received": now.isoformat(), "attempts": 0}
        ops = [Op("inbox", item_id, item)]
        if dedupe is not None:
            current = self.store.engine.peek("events", dedupe)
            if current is not None and current.get("expires", "") > now.isoformat():
                return False
            version = current.get("version", 0) if current else None
            ops.append(
                Op(
                    "events",
                    dedupe,
                    {"expires": (now + EVENT_TTL).isoformat(), "version": (version or 0) + 1},
                    expect=version,
                )
            )
        try:
            await self.store.commit(ops)
        except VersionConflict:
            return False
        self._inbox_idle.clear()
        self._inbox_wake.set()
        return True

    async def drain_inbox(self) -> int:
        """Work off every queued item, oldest first; returns how many were done."""
        done = 0
        while True:
            items = sorted(self.store.engine.view("inbox").items())
            items = [(k, v) for k, v in items if not v.get("dead")]
            if not items:
                self._inbox_idle.set()
                return done
            for key, item in items:
                handler = self.inbox_handlers.get(item["channel"])
                if handler is None:
                    log.error(
                        "no handler for inbox item of channel %s; keeping it", item["channel"]
                    )
                    await self.store.commit([Op("inbox", key, {**item, "dead": True})])
                    continue
                try:
                    await handler(item["payload"])
                except Exception:  # noqa: BLE001 - retried, then kept aside for a person to see
                    attempts = int(item.get("attempts", 0)) + 1
                    log.exception("inbox item %s failed (attempt %d)", key, attempts)
                    dead = attempts >= MAX_INBOX_ATTEMPTS
                    await self.store.commit(
                        [Op("inbox", key, {**item, "attempts": attempts, "dead": dead})]
                    )
                    if not dead:
                        await asyncio.sleep(min(2**attempts * 0.1, 5))
                    continue
                await self.store.commit([Op("inbox", key, None)])
                done += 1

    async def inbox_worker(self) -> None:
        """Runs inside ``serve``: works off the inbox whenever something is queued."""
        while True:
            await self.drain_inbox()
            await self._inbox_wake.wait()
            self._inbox_wake.clear()

    async def wait_idle(self) -> None:
        """Wait until the inbox is empty (tests)."""
        await self._inbox_idle.wait()

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
