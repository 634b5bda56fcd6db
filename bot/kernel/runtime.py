"""The kernel's runtime: the durable request queue, delivery and the job loop, for every channel.

It knows no flow: the desk (``conversations.runtime.Runtime``) extends it with
the conversation pipeline and the case cards of scheduled messages, channel
adapters plug in their request handlers, routes and deliverers, and the
composition root (``bot.app``) wires them together.

Notifications (an assignment, later reminders) are written as durable jobs
in the same commit as the change they report; :meth:`Runtime.deliver_due`
sends them on the recipient's channel and deletes the job only after the
send succeeded (at-least-once, never lost by a crash).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.domain import User
from bot.kernel.model import Reply
from bot.kernel.scheduler import Scheduler
from bot.kernel.serialize import reply_to_dict
from bot.storage import Store, VersionConflict

log = logging.getLogger(__name__)

# A deliverer sends replies to a user on one channel; False when it could not.
Deliverer = Callable[[User, list[Reply]], Awaitable[bool]]
# An request handler does the work a channel request asked for, after the request was acked.
RequestHandler = Callable[[dict[str, Any]], Awaitable[None]]
# An request route names an item's (destination, lane): see Runtime.drain_requests.
RequestRoute = Callable[[dict[str, Any]], tuple[str, str]]

EVENT_TTL = timedelta(days=2)
MAX_REQUEST_ATTEMPTS = 5
REQUEST_RETRY_SECONDS = 1.0  # after the request queue itself could not be written
MAX_REQUEST_LANES = 32  # lanes worked on at once (each a person or conversation) ...
BURST_SECONDS = 1.0  # ... but while requests came in this recently (a burst, acks first) ...
FRESH_SECONDS = 1.0  # ... one item at a time, not counting those waiting this long (on I/O)
DESTINATION_PAUSE_AFTER = 3  # network failures in a row that pause a destination ...
DESTINATION_MAX_PAUSE = 60.0  # ... for 1 s, doubling up to this many seconds
# The request worker lets requests waiting for their HTTP answer go first (see _answers_first):
ANSWERS_FIRST_MAX_WAIT = 0.1  # s it waits at most per item, so the work keeps moving
ANSWERS_FIRST_QUIET = 0.005  # s without a new request that count as a gap in the traffic
ANSWERS_FIRST_MAX_DELAY = 2.0  # s an item may wait after its ack before it stops yielding
ANSWERS_FIRST_MAX_BACKLOG = 10_000  # queued items past which it stops yielding at all
CLAIM_POLL_SECONDS = 1.0  # a request another replica holds is looked at again this often
HOUSEKEEPING_SECONDS = 600.0  # how often serve drops expired request ids

# Ids made in this process: random per process, then a counter (uuid4 per id reads
# os.urandom each time, a measurable share of a request's ack).
_PROCESS_ID = uuid.uuid4().hex
_SEQUENCE = itertools.count(1)


def destination_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says the destination failed (network, timeout, 5xx, 429), not the item.

    Only these pause a destination: an item that fails for its own reasons (a
    bug, a payload the code cannot handle) must not hold up everyone else's.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError | TimeoutError):  # aiohttp's and requests' too
            return True
        status = getattr(current, "status", None)
        response = getattr(current, "response", None)
        if status is None and response is not None:
            status = getattr(response, "status_code", None) or getattr(response, "status", None)
        if isinstance(status, int) and (status >= 500 or status == 429):
            return True
        current = current.__cause__ or current.__context__
    return False


def mailbox_key(user_id: str) -> str:
    """The conversation key of a person's mailbox (what ``billing-bot chat`` shows at start)."""
    return f"inbox|{user_id}"  # the on-disk key of stores written before the rename


def unique_id() -> str:
    """An id no other call, process or restart makes (128 random bits per process + a counter)."""
    return f"{_PROCESS_ID}{next(_SEQUENCE):x}"


class Kernel:
    """The request queue, delivery and jobs of a running bot, independent of HTTP and of flows."""

    def __init__(self, settings: Settings, store: Store, clock: Clock | None = None) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock or SystemClock()
        self.deliverers: dict[str, Deliverer] = {}
        self.scheduler = Scheduler(store, settings, self.clock, self.deliver, self.render_job)
        self.inline_scheduling = True  # ``serve`` turns this off and runs scheduler_loop
        self._scheduler_wake = asyncio.Event()
        self.request_handlers: dict[str, RequestHandler] = {}
        self.request_routes: dict[str, RequestRoute] = {}
        # The request queue in memory, by lane (see drain_requests); the store holds the items.
        self._lanes: dict[str, list[str]] = {}  # lane -> its queued requests' ids, oldest first
        self._lane_destination: dict[str, str] = {}
        self._placed: set[str] = set()  # ids put on a lane
        self._ready: set[str] = set()  # lanes whose first item may start now
        self._parked: set[str] = set()  # lanes waiting for a paused destination
        self._busy: dict[str, str] = {}  # lane -> id of its running item
        self._started_at: dict[str, float] = {}  # lane -> monotonic time its item started
        self._retry_at: dict[str, float] = {}  # lane -> monotonic time its first item retries
        self._destination_failures: dict[str, int] = {}  # network failures in a row
        self._paused_until: dict[str, float] = {}  # destination -> monotonic time of next probe
        self._requests_wake = asyncio.Event()
        self._requests_idle = asyncio.Event()
        self._requests_idle.set()
        # Requests between arrival and their HTTP answer (the server counts them): the
        # request worker lets them go first, see _answers_first.
        self._answering = 0
        self._last_request = 0.0  # time.monotonic() of the latest request's arrival
        self._none_answering = asyncio.Event()
        self._none_answering.set()
        self._queued_at: dict[str, float] = {}  # queued request -> time.monotonic() of its ack
        # Called on shutdown (flow modules' HTTP sessions, channel clients).
        self.closers: list[Callable[[], Awaitable[None]]] = []

    async def close(self) -> None:
        """Release what flow modules and channels opened (HTTP sessions)."""
        for close in reversed(self.closers):
            try:
                await close()
            except Exception:  # noqa: BLE001 - shutdown goes on
                log.exception("closing %r failed", close)

    # ---- the durable request queue: record before the ack, work after it ---------
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
        case/action/stage) and the queued request are written in one commit, so a
        retry or a double click can never be queued twice, and a queued item
        survives a crash and is worked off after a restart. ``handed_over``: the
        payload is a request body as parsed from JSON or a form, which the caller
        never changes again, so the store keeps it instead of a copy (see ``Op``).
        """
        now = self.clock.now()
        # Sorted by arrival (the request queue is worked off in key order), unique across restarts.
        item_id = f"{now.strftime('%Y%m%d%H%M%S%f')}-{_PROCESS_ID[:8]}{next(_SEQUENCE):08x}"
        item = {"channel": channel, "payload": payload, "received": now.isoformat(), "attempts": 0}
        ops = [self.store.queued_request_op(item_id, item, handed_over=handed_over)]
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
        self._place(item_id, item)
        self._requests_idle.clear()
        self._requests_wake.set()
        return True

    def _place(self, key: str, item: dict[str, Any]) -> None:
        """Put a queued request on its lane (ids sort by arrival, so the lane stays in order)."""
        if key in self._placed:
            return
        destination, lane = self._route(item)
        keys = self._lanes.setdefault(lane, [])
        if not keys or keys[-1] < key:
            keys.append(key)
        else:
            bisect.insort(keys, key)
        self._lane_destination[lane] = destination
        self._placed.add(key)
        if lane not in self._busy:
            self._ready.add(lane)

    def _route(self, item: dict[str, Any]) -> tuple[str, str]:
        """(destination, lane) of a queued request: see :meth:`drain_requests`."""
        channel = str(item.get("channel"))
        route = self.request_routes.get(channel)
        if route is not None:
            try:
                destination, lane = route(item.get("payload") or {})
                return f"{channel}|{destination}", f"{channel}|{lane}"
            except Exception:  # noqa: BLE001 - an odd payload still gets worked off, alone
                log.warning("no route for a queued %s request; it runs on its own lane", channel)
        return channel, f"{channel}|?"

    def _start_budget(self, running: dict[str, asyncio.Task[str]], now: float) -> int:
        """How many more items may start now.

        Out of a burst, up to ``MAX_REQUEST_LANES`` lanes run at once: the whole
        answer comes sooner. In a burst (a request within ``BURST_SECONDS``) the
        acks go first, so items run one at a time as before lanes: one starts
        only when no item started less than ``FRESH_SECONDS`` ago is still
        running. An item waiting longer than that is waiting on I/O (a slow or
        hung destination), costs no CPU, and holds up nobody.
        """
        free = MAX_REQUEST_LANES - len(running)
        if free <= 0 or now - self._last_request >= BURST_SECONDS:
            return max(free, 0)
        fresh = sum(1 for lane in running if now - self._started_at.get(lane, 0.0) < FRESH_SECONDS)
        return 0 if fresh else 1

    def _start_ready(
        self, running: dict[str, asyncio.Task[str]], now: float, budget: int
    ) -> list[str]:
        """The lanes' first items to start now: lanes free, due, destination not paused."""
        self._ready |= self._parked
        self._parked.clear()
        busy_destinations = {self._lane_destination.get(lane) for lane in self._busy}
        start: list[str] = []
        for lane in sorted(self._ready, key=lambda name: self._lanes.get(name) or [""]):
            if len(start) >= budget:
                break  # the rest stay ready
            self._ready.discard(lane)
            keys = self._lanes.get(lane)
            while keys:
                item = self.store.queued_request(keys[0])
                if item is not None and not item.get("dead"):
                    break
                self._placed.discard(keys.pop(0))  # done elsewhere, or kept aside as dead
            if not keys:
                self._lanes.pop(lane, None)
                self._lane_destination.pop(lane, None)
                continue
            if lane in self._busy or self._retry_at.get(lane, 0.0) > now:
                continue  # running, or backing off: woken by its task or its timer
            destination = self._lane_destination[lane]
            paused = self._paused_until.get(destination)
            if paused is not None:
                # A failing destination: paused, then probed by one item at a time (it stays
                # in _paused_until until an item for it succeeds).
                if paused > now or destination in busy_destinations:
                    self._parked.add(lane)
                    continue
                busy_destinations.add(destination)
            self._retry_at.pop(lane, None)
            self._busy[lane] = keys[0]
            start.append(lane)
        return start

    def _next_due(self) -> float | None:
        """When a backed-off item, a paused destination or a held start may go on (monotonic)."""
        now = time.monotonic()
        held = [t + FRESH_SECONDS for t in self._started_at.values()]
        if self._ready and now - self._last_request < BURST_SECONDS:
            held.append(self._last_request + BURST_SECONDS)
        times = [
            t for t in (*self._retry_at.values(), *self._paused_until.values(), *held) if t > now
        ]
        return min(times) if times else None

    def _place_stored(self) -> None:
        """Put every live stored request not yet on a lane on its lane (after a restart)."""
        queued = self.store.queued_requests()
        if len(self._placed) == len(queued):
            return  # the usual case: every stored item was placed by enqueue
        for key, item in sorted(queued.items()):
            if key not in self._placed and not item.get("dead"):
                self._place(key, item)

    async def drain_requests(self) -> int:
        """Work off every queued item, oldest first per lane; returns how many were done.

        Items run concurrently on **lanes** (a channel's route says which: a
        Slack user, a Teams conversation), one at a time per lane so that a
        person's messages are answered in order, at most
        ``MAX_REQUEST_LANES`` lanes at once. A failing item never delays the
        others: its retry is scheduled for later (``2**attempts × 0.1`` s, at
        most 5 s, then kept aside as dead after ``MAX_REQUEST_ATTEMPTS``) instead
        of slept inline, and only its own lane waits for it. A **destination**
        (a Teams ``serviceUrl``; Slack's Web API) that fails
        ``DESTINATION_PAUSE_AFTER`` times in a row with a network-shaped error
        is paused on its own (1 s, doubling up to ``DESTINATION_MAX_PAUSE``),
        then probed by one item at a time until it answers again. Returns when
        no live item is left (dead ones stay for a person to see).
        """
        done = 0
        running: dict[str, asyncio.Task[str]] = {}  # lane -> its running item's task
        wake: asyncio.Task[Any] | None = None
        self._place_stored()
        self._ready |= set(self._lanes)
        try:
            while True:
                self._requests_wake.clear()
                now = time.monotonic()
                for lane, at in list(self._retry_at.items()):
                    if at <= now:
                        self._ready.add(lane)
                while (budget := self._start_budget(running, time.monotonic())) > 0:
                    lanes = self._start_ready(running, time.monotonic(), min(budget, 1))
                    if not lanes:
                        break
                    key = self._busy[lanes[0]]
                    await self._answers_first(self._queued_at.pop(key, None))
                    running[lanes[0]] = asyncio.create_task(
                        self._work_item(key, lanes[0]), name=f"request:{key}"
                    )
                    self._started_at[lanes[0]] = time.monotonic()
                if not running and not self._lanes:
                    self._requests_idle.set()
                    return done
                self._requests_idle.clear()
                if wake is None or wake.done():
                    wake = asyncio.create_task(self._requests_wake.wait())
                due = self._next_due()
                timeout = None if due is None else max(0.0, due - time.monotonic())
                finished, _pending = await asyncio.wait(
                    [*running.values(), wake], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                for lane, task in list(running.items()):
                    if task not in finished:
                        continue
                    del running[lane]
                    self._started_at.pop(lane, None)
                    key = self._busy.pop(lane)
                    outcome = task.result()
                    if outcome != "retry":
                        keys = self._lanes.get(lane, [])
                        if keys and keys[0] == key:
                            keys.pop(0)
                        self._placed.discard(key)
                        if not keys:
                            self._lanes.pop(lane, None)
                            self._lane_destination.pop(lane, None)
                        done += outcome == "done"
                    self._ready.add(lane)
        finally:
            if wake is not None:
                wake.cancel()
            for task in running.values():
                task.cancel()
            for lane in running:
                self._busy.pop(lane, None)
                self._started_at.pop(lane, None)
                self._ready.add(lane)

    async def _work_item(self, key: str, lane: str) -> str:
        """Do one queued request: "done", "retry" (its lane waits, then retries) or "dead"."""
        item = self.store.queued_request(key)
        if item is None:
            return "gone"  # done meanwhile (a restart's replay, a test draining by hand)
        destination = self._lane_destination.get(lane, str(item.get("channel")))
        handler = self.request_handlers.get(item["channel"])
        if handler is None:
            log.error("no handler for queued request of channel %s; keeping it", item["channel"])
            await self.store.commit([self.store.queued_request_op(key, {**item, "dead": True})])
            return "dead"
        lease = self.settings.claim_lease_seconds
        if not await self.store.claim_request(key, lease):
            if self.store.queued_request(key) is None:
                return "gone"  # done by another replica
            # Another replica works it: look again shortly (it is gone then, and the lane
            # goes on), until its lease runs out if that replica died (then it is taken over).
            self._retry_at[lane] = time.monotonic() + min(lease, CLAIM_POLL_SECONDS)
            return "retry"
        try:
            await handler(item["payload"])
        except Exception as exc:  # noqa: BLE001 - retried later, then kept aside for a person
            attempts = int(item.get("attempts", 0)) + 1
            log.exception("queued request %s failed (attempt %d)", key, attempts)
            dead = attempts >= MAX_REQUEST_ATTEMPTS
            if destination_failure(exc):
                self._destination_failed(destination)
            await self.store.commit(
                [self.store.queued_request_op(key, {**item, "attempts": attempts, "dead": dead})]
            )
            if dead:
                return "dead"
            self._retry_at[lane] = time.monotonic() + min(2**attempts * 0.1, 5)
            return "retry"
        self._destination_failures.pop(destination, None)
        self._paused_until.pop(destination, None)
        await self.store.commit([self.store.queued_request_op(key, None)])
        return "done"

    def _destination_failed(self, destination: str) -> None:
        failures = self._destination_failures.get(destination, 0) + 1
        self._destination_failures[destination] = failures
        if failures >= DESTINATION_PAUSE_AFTER:
            pause = min(2 ** (failures - DESTINATION_PAUSE_AFTER), DESTINATION_MAX_PAUSE)
            log.warning(
                "destination %s failed %d times in a row; paused for %g s",
                destination,
                failures,
                pause,
            )
            self._paused_until[destination] = time.monotonic() + pause

    def paused_destinations(self) -> dict[str, float]:
        """Destinations paused after repeated failures: seconds until the next probe."""
        now = time.monotonic()
        return {d: max(0.0, until - now) for d, until in self._paused_until.items()}

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
        if self.store.queued_request_count() > ANSWERS_FIRST_MAX_BACKLOG:
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

    async def request_worker(self) -> None:
        """Runs inside ``serve``: works off the request queue whenever something is queued.

        It never stops: when the request queue itself cannot be written (a full disk), the
        items stay queued and are tried again until storage works again.
        """
        while True:
            try:
                await self.drain_requests()
            except Exception:  # noqa: BLE001 - e.g. StorageError: keep the items, try later
                log.exception("working off the request queue failed; trying again shortly")
                await asyncio.sleep(REQUEST_RETRY_SECONDS)
                continue
            # Woken by a request, or after a claim lease: requests another replica queued
            # (and died holding) are in the store by then, and taken over here.
            # asyncio.wait, not wait_for: wait_for may swallow the task's cancel at shutdown
            # when its timeout fires at the same moment (Python 3.11).
            waiter = asyncio.ensure_future(self._requests_wake.wait())
            try:
                await asyncio.wait({waiter}, timeout=self.settings.claim_lease_seconds)
            finally:
                waiter.cancel()
            self._requests_wake.clear()

    async def wait_idle(self) -> None:
        """Wait until the request queue is empty (tests)."""
        await self._requests_idle.wait()

    async def changed(self) -> None:
        """A request was handled: jobs it made due run now (inline) or the loop is woken."""
        if self.inline_scheduling:
            await self.scheduler.tick()
        else:
            self.kick()

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
        """A scheduled message for its recipient (the desk adds the case card)."""
        return [Reply(text=text)]

    async def deliver(self, user: User, replies: list[Reply]) -> bool:
        """Send to ``user`` on a channel where they are reachable; their mailbox otherwise."""
        remote = [c for c in ("slack", "teams") if c in user.identities and c in self.deliverers]
        for channel in remote:
            try:
                if await self.deliverers[channel](user, replies):
                    return True
            except Exception:  # noqa: BLE001 - one failing channel must not stop the others
                log.exception("delivery on %s to %s failed", channel, user.id)
        if remote:
            return False  # reachable only remotely, and that failed: retried with backoff
        await self.add_to_mailbox(user.id, replies)
        return True

    async def add_to_mailbox(self, user_id: str, replies: list[Reply]) -> None:
        """A person's mailbox (the local channel): shown when ``billing-bot chat`` starts.

        The replies of one delivery share a ``delivery`` id, so that a page showing the
        newest first still shows each delivery's replies in their order (an explanation
        above the text it explains).
        """
        key = mailbox_key(user_id)
        delivery = unique_id()
        added = [{**reply_to_dict(r), "delivery": delivery} for r in replies]
        while True:  # guarded: replicas may deliver to one mailbox at once
            stored = await self.store.get_conversation(key)
            current = stored or {"items": []}
            version = None if stored is None else int(stored.get("version", 0))
            items = [*current.get("items", []), *added][-50:]
            mailbox: dict[str, Any] = {"items": items, "version": (version or 0) + 1}
            try:
                await self.store.commit([self.store.conversation_op(key, mailbox, version)])
                return
            except VersionConflict:
                continue

    async def take_mailbox(self, user_id: str) -> list[dict[str, Any]]:
        key = mailbox_key(user_id)
        while True:
            current = await self.store.get_conversation(key)
            if not current:
                return []
            version = int(current.get("version", 0))
            try:
                await self.store.commit([self.store.conversation_op(key, None, version)])
            except VersionConflict:
                continue  # a delivery came in meanwhile: take it too
            items: list[dict[str, Any]] = current.get("items", [])
            return items

    async def housekeeping(self) -> None:
        await self.store.purge_events(self.clock.now())
