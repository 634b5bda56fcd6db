"""The running desk: store + flows + delivery of notifications, shared by ``serve`` and ``chat``.

Notifications (an assignment, later reminders) are written as durable jobs
in the same commit as the change they report; :meth:`Runtime.deliver_due`
sends them on the recipient's channel and deletes the job only after the
send succeeded (at-least-once, never lost by a crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.domain import Actor, User
from bot.i18n import _, use_locale
from bot.scheduler import Scheduler
from bot.storage import Op, Store, VersionConflict
from conversations.cards import case_card
from conversations.desk import Desk, Result
from conversations.directory import tenant_key
from conversations.model import ActionRef, Button, Message, Reply
from conversations.serialize import reply_to_dict

log = logging.getLogger(__name__)

# A deliverer sends replies to a user on one channel; False when it could not.
Deliverer = Callable[[User, list[Reply]], Awaitable[bool]]
# An inbox handler does the work a channel request asked for, after the request was acked.
InboxHandler = Callable[[dict[str, Any]], Awaitable[None]]

EVENT_TTL = timedelta(days=2)
# Flow modules that add commands, forms and job types: each has ``register(runtime)``.
FLOW_MODULES = ("conversations.escalation", "conversations.collections")
MAX_INBOX_ATTEMPTS = 5
INBOX_RETRY_SECONDS = 1.0  # after the inbox itself could not be written
# The inbox worker lets requests waiting for their HTTP answer go first (see _answers_first):
ANSWERS_FIRST_MAX_WAIT = 0.1  # s it waits at most per item, so the work keeps moving
ANSWERS_FIRST_QUIET = 0.005  # s without a new request that count as a gap in the traffic
ANSWERS_FIRST_MAX_DELAY = 2.0  # s an item may wait after its ack before it stops yielding
ANSWERS_FIRST_MAX_BACKLOG = 10_000  # queued items past which it stops yielding at all
HOUSEKEEPING_SECONDS = 600.0  # how often serve drops expired request ids

# Ids made in this process: random per process, then a counter (uuid4 per id reads
# os.urandom each time, a measurable share of a request's ack).
_PROCESS_ID = uuid.uuid4().hex
_SEQUENCE = itertools.count(1)


def unique_id() -> str:
    """An id no other call, process or restart makes (128 random bits per process + a counter)."""
    return f"{_PROCESS_ID}{next(_SEQUENCE):x}"


class Runtime:
    """Everything a running bot needs, independent of HTTP."""

    def __init__(self, settings: Settings, store: Store, clock: Clock | None = None) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock or SystemClock()
        self.desk = Desk(store, settings, self.clock)
        self.deliverers: dict[str, Deliverer] = {}
        self.scheduler = Scheduler(store, settings, self.clock, self.deliver, self.render_job)
        self.desk.scheduler_view = self.scheduler.due_for
        self.inline_scheduling = True  # ``serve`` turns this off and runs scheduler_loop
        self._scheduler_wake = asyncio.Event()
        self.inbox_handlers: dict[str, InboxHandler] = {}
        self._inbox_wake = asyncio.Event()
        self._inbox_idle = asyncio.Event()
        self._inbox_idle.set()
        # Requests between arrival and their HTTP answer (the server counts them): the
        # inbox worker lets them go first, see _answers_first.
        self._answering = 0
        self._last_request = 0.0  # time.monotonic() of the latest request's arrival
        self._none_answering = asyncio.Event()
        self._none_answering.set()
        self._queued_at: dict[str, float] = {}  # inbox item -> time.monotonic() of its ack
        # Called on shutdown (flow modules' HTTP sessions, channel clients).
        self.closers: list[Callable[[], Awaitable[None]]] = []
        for name in FLOW_MODULES:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name != name:
                    raise
                continue
            module.register(self)

    async def close(self) -> None:
        """Release what flow modules and channels opened (HTTP sessions)."""
        for close in reversed(self.closers):
            try:
                await close()
            except Exception:  # noqa: BLE001 - shutdown goes on
                log.exception("closing %r failed", close)

    # ---- the durable inbox: record before the ack, work after it ---------
    async def enqueue(
        self,
        channel: str,
        payload: dict[str, Any],
        dedupe: str | None = None,
        *,
        handed_over: bool = False,
    ) -> bool:
        """Record a request durably before it is acknowledged; False if ``dedupe`` was seen.

        The dedupe key (a Slack ``event_id``, a Teams activity id, a click's
        case/action/version) and the inbox item are written in one commit, so a
        retry or a double click can never be queued twice, and a queued item
        survives a crash and is worked off after a restart. ``handed_over``: the
        payload is a request body as parsed from JSON or a form, which the caller
        never changes again, so the store keeps it instead of a copy (see ``Op``).
        """
        now = self.clock.now()
        # Sorted by arrival (the inbox is worked off in key order), unique across restarts.
        item_id = f"{now.strftime('%Y%m%d%H%M%S%f')}-{_PROCESS_ID[:8]}{next(_SEQUENCE):08x}"
        item = {"channel": channel, "payload": payload, "received": now.isoformat(), "attempts": 0}
        ops = [Op("inbox", item_id, item, handed_over=handed_over)]
        if dedupe is not None:
            seen = self.store.event_op(dedupe, now, EVENT_TTL)
            if seen is None:
                return False
            ops.append(seen)
        try:
            await self.store.commit(ops)
        except VersionConflict:
            return False
        self._queued_at[item_id] = time.monotonic()
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
                await self._answers_first(self._queued_at.pop(key, None))
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

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Count a request as waiting for its HTTP answer while the block runs."""
        self._answering += 1
        self._last_request = time.monotonic()
        self._none_answering.clear()
        try:
            yield
        finally:
            self._answering -= 1
            if not self._answering:
                self._none_answering.set()

    async def _answers_first(self, queued_at: float | None = None) -> None:
        """Let requests waiting for their HTTP answer go first, for a bounded while.

        The answer to the request (the ack) is what Slack (3 s, then the user
        sees an error and events are sent again) and Teams (15 s) time, and the
        work is already durably queued: its result goes out moments later (a
        ``response_url`` stays valid for 30 minutes). One event loop (one core)
        serves both, so without this a burst of requests waits behind the work
        of those before it. The worker takes the next item in a gap of the
        traffic: no request in flight and none arrived for
        ``ANSWERS_FIRST_QUIET``. Bounds keep the work moving: it waits at most
        ``ANSWERS_FIRST_MAX_WAIT`` per item, and not at all for an item acked
        more than ``ANSWERS_FIRST_MAX_DELAY`` ago (``queued_at``, when this
        process queued it) or once more than ``ANSWERS_FIRST_MAX_BACKLOG`` items
        are queued: a burst of a few seconds is acked first and worked off
        right after, sustained overload is shared, not deferred.
        """
        if len(self.store.engine.view("inbox")) > ANSWERS_FIRST_MAX_BACKLOG:
            return
        if queued_at is not None and time.monotonic() - queued_at >= ANSWERS_FIRST_MAX_DELAY:
            return
        deadline = time.monotonic() + ANSWERS_FIRST_MAX_WAIT
        while (now := time.monotonic()) < deadline:
            if self._answering:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._none_answering.wait(), deadline - now)
            elif now - self._last_request < ANSWERS_FIRST_QUIET:
                await asyncio.sleep(ANSWERS_FIRST_QUIET)
            else:
                return

    async def inbox_worker(self) -> None:
        """Runs inside ``serve``: works off the inbox whenever something is queued.

        It never stops: when the inbox itself cannot be written (a full disk), the
        items stay queued and are tried again until storage works again.
        """
        while True:
            try:
                await self.drain_inbox()
            except Exception:  # noqa: BLE001 - e.g. StorageError: keep the items, try later
                log.exception("working off the inbox failed; trying again shortly")
                await asyncio.sleep(INBOX_RETRY_SECONDS)
                continue
            await self._inbox_wake.wait()
            self._inbox_wake.clear()

    async def wait_idle(self) -> None:
        """Wait until the inbox is empty (tests)."""
        await self._inbox_idle.wait()

    async def handle(self, msg: Message) -> Result:
        result = await self.desk.handle(msg)
        if self.inline_scheduling:
            await self.scheduler.tick()
        else:
            self.kick()
        return result

    def kick(self) -> None:
        """Wake the background scheduler now (a change may have made a job due)."""
        self._scheduler_wake.set()

    async def scheduler_loop(self, interval: float = 1.0) -> None:
        """Runs inside ``serve``: a tick every ``interval`` seconds, or sooner when kicked.

        Every ``HOUSEKEEPING_SECONDS`` it also drops expired request ids (each
        Slack or Teams request leaves one or two for a couple of days: without
        this they would pile up in memory and in every snapshot for ever).
        """
        next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
        while True:
            try:
                await self._answers_first()  # reminders are not timed to the second either
                await self.scheduler.tick()
                if time.monotonic() >= next_housekeeping:
                    next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
                    await self.housekeeping()
            except Exception:  # noqa: BLE001 - keep scheduling; the error is logged
                log.exception("scheduler tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._scheduler_wake.wait(), timeout=interval)
            self._scheduler_wake.clear()

    async def render_job(
        self, user: User, text: str, case_number: int | None, kind: str
    ) -> list[Reply]:
        """A scheduled message for its recipient: the text, and the case card with its buttons."""
        with use_locale(user.locale):
            reply = Reply(text=text)
            case = await self.store.get_case(case_number) if case_number else None
            if case is not None:
                customer = await self.store.get_customer(case.customer_id)
                names = self.store.user_names()
                viewer = Actor(user.id, user.role, "reminder", user.tenant_id, user.display_name)
                card = case_card(
                    case,
                    customer,
                    viewer,
                    user.time_zone,
                    names,
                    self.clock.now(),
                    tenant_key(customer) if customer else None,
                )
                if kind == "loop":
                    # The close-the-loop DM: exactly Customer informed, Snooze, Reassign.
                    wanted = {"informed", "assign"}
                    card.buttons = [b for b in card.buttons if b.action.name in wanted]
                    card.buttons.insert(
                        1,
                        Button(_("Snooze"), ActionRef("snooze", case.id, case.stage)),
                    )
                reply.card = card
            return [reply]

    async def deliver(self, user: User, replies: list[Reply]) -> bool:
        """Send to ``user`` on a channel where they are reachable; the local inbox otherwise."""
        remote = [c for c in ("slack", "teams") if c in user.identities and c in self.deliverers]
        for channel in remote:
            try:
                if await self.deliverers[channel](user, replies):
                    return True
            except Exception:  # noqa: BLE001 - one failing channel must not stop the others
                log.exception("delivery on %s to %s failed", channel, user.id)
        if remote:
            return False  # reachable only remotely, and that failed: retried with backoff
        await self.add_to_inbox(user.id, replies)
        return True

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
        await self.store.purge_events(self.clock.now())
