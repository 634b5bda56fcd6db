"""The scheduler: close-the-loop reminders, first-response and idle pings, notifications.

Due work lives in storage (the ``jobs`` table), never only in memory: a
restart loses nothing, and a job that came due while the bot was down runs
once on start (its next time is computed from *now*, not replayed per missed
interval). Delivery is at-least-once: a job is **claimed** in storage, sent,
then **marked** (rescheduled or deleted); a claim left by a crash expires
after ``claim_timeout`` and the job is retried. Without a crash nothing is
sent twice. Every reminder re-reads its case when it fires and drops itself
if the case moved on.

Job kinds (key → document):

``loop:N``   close-the-loop reminder for resolved case N: DM the owner every
             N working hours until someone records that the customer was told;
             after K unanswered reminders the lead is pinged too.
``watch:N``  first-response and idle watch for live case N.
``notify:…`` a one-off message for a person (assignment, lead ping).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.clock import Clock
from bot.config import ReminderPolicy, Settings, configured_user
from bot.domain import Case, Role, State, User
from bot.i18n import _, ngettext, use_locale
from bot.storage import Op, Store, VersionConflict
from bot.workhours import WorkingHours

if TYPE_CHECKING:
    from bot.kernel.model import Reply

log = logging.getLogger(__name__)

LOOP_STATES = frozenset({State.RESOLVED})
CATCH_UP_GRACE = timedelta(minutes=30)
TICK_CONCURRENCY = 16  # due jobs run at once in one tick
FORECAST_STEPS = 1000  # a loop's DMs foreseen at most (``reminders --at`` far ahead)
WATCH_DONE = frozenset({State.RESOLVED, State.CUSTOMER_INFORMED, State.CLOSED, State.CANCELLED})

# Sends replies to a person on their channel; False when they could not be reached.
Deliver = Callable[[User, "list[Reply]"], Awaitable[bool]]
# Runs a claimed job of a kind a flow module added: (key, job, now) → messages sent.
JobHandler = Callable[[str, dict[str, Any], datetime], Awaitable[int]]
# Says why a module's job concerns a person: (job, user, case or None) → reason or None.
Describe = Callable[[dict[str, Any], User, "Case | None"], "str | None"]
# Renders a job's message for its recipient: (text, case number or None) → replies.
Render = Callable[[User, str, "int | None", str], Awaitable["list[Reply]"]]


def notify_key(*parts: object) -> str:
    """The key of a one-off notification job: ``notify:`` and ``parts`` joined by ``:``."""
    return ":".join(["notify", *(f"{part}" for part in parts)])


def loop_key(number: int) -> str:
    return f"loop:{number}"


def watch_key(number: int) -> str:
    return f"watch:{number}"


def iso(when: datetime) -> str:
    """Stored times are UTC ISO strings, so they compare as text."""
    return when.astimezone(UTC).isoformat()


async def escalation_leads(store: Store, settings: Settings) -> list[User]:
    """Who gets escalations and the unassigned queue's pings: the configured target, else
    every lead (first-response watches, lead pings, news of a case nobody has taken)."""
    users = await store.users()
    target = settings.reminders.escalation_target
    if target:
        found = [u for u in users if u.id == target]
        if found:
            return found
    leads = [u for u in users if u.role == Role.LEAD]
    if leads:
        return leads
    # Leads from the config who never spoke to the bot yet.
    out = []
    for cfg in settings.users:
        if cfg.role == Role.LEAD:
            out.append(configured_user(cfg, settings.time_zone))
            await store.save_user(out[-1])
    return out


# ---- jobs written by flows, in the same commit as the change they follow ------------
def loop_op(case: Case, now: datetime) -> Op:
    """Start the close-the-loop reminders: the first DM goes out at once (in working hours)."""
    return Store.job_op(
        loop_key(case.number),
        {"type": "loop", "case": case.number, "due": iso(now), "count": 0, "escalated": False},
    )


def watch_op(case: Case, now: datetime, settings: Settings) -> Op:
    """Start the first-response / idle watch of a live case."""
    policy = settings.reminders
    due = WorkingHours.parse(
        settings.time_zone, policy.working_hours, frozenset(policy.working_days)
    ).add_working(now, timedelta(hours=policy.first_response_hours))
    return Store.job_op(
        watch_key(case.number), {"type": "watch", "case": case.number, "due": iso(due)}
    )


def stop_loop_op(case: Case) -> Op:
    return Store.job_op(loop_key(case.number), None)


def stop_watch_op(case: Case) -> Op:
    return Store.job_op(watch_key(case.number), None)


def snooze_op(job: dict[str, Any], number: int, until: datetime) -> Op:
    return Store.job_op(loop_key(number), {**job, "due": iso(until), "claimed_until": None})


def notify_op(key: str, user_id: str, text: str, case: int | None, due: datetime) -> Op:
    return Store.job_op(
        key, {"type": "notify", "user_id": user_id, "case": case, "text": text, "due": iso(due)}
    )


class Scheduler:
    """Runs due jobs from storage; :meth:`tick` is called by ``serve`` every second or so."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Clock,
        deliver: Deliver,
        render: Render,
    ) -> None:
        self.store = store
        self.settings = settings
        self.policy: ReminderPolicy = settings.reminders
        self.clock = clock
        self.deliver = deliver
        self.render = render
        self.handlers: dict[str, JobHandler] = {}
        self.describers: dict[str, Describe] = {}
        self.sent: list[dict[str, Any]] = []  # what was sent this process (simulations, tests)

    # ---- calendars ---------------------------------------------------------
    def hours_of(self, user: User | None) -> WorkingHours:
        cfg = self.settings.user_by_name(user.id) if user else None
        tz = (user.time_zone if user else None) or self.settings.time_zone
        hours = (
            cfg.working_hours if cfg and cfg.working_hours else None
        ) or self.policy.working_hours
        return WorkingHours.parse(tz, hours, frozenset(self.policy.working_days))

    async def leads(self) -> list[User]:
        """Who gets escalations: the configured target, else every lead."""
        return await escalation_leads(self.store, self.settings)

    def notify_op(self, key: str, user_id: str, text: str, case: int | None, due: datetime) -> Op:
        return notify_op(key, user_id, text, case, due)

    # ---- the loop ----------------------------------------------------------------
    async def tick(self) -> int:
        """Run every due job once; returns how many messages went out.

        A job may make another due at once (a lead ping with the reminder that
        triggered it): up to three passes, each over the jobs not yet run.
        """
        now = self.clock.now()
        sent = 0
        done: set[str] = set()
        # Jobs are independent (each claims and finishes only its own key), so several run
        # at once: their claims and finishes then share the storage's group-commit fsyncs
        # instead of waiting for one each, one job after the other.
        gate = asyncio.Semaphore(TICK_CONCURRENCY)

        async def run(key: str, job: dict[str, Any]) -> int:
            async with gate:
                return await self._claim_and_run(key, job, now)

        for _pass in range(3):
            due = [(k, j) for k, j in await self.store.due_jobs(now) if k not in done]
            if not due:
                break
            done.update(key for key, _job in due)
            results = await asyncio.gather(*(run(k, j) for k, j in due), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result  # a failed claim (storage down): the loop logs it and retries
                sent += result
        return sent

    async def _claim_and_run(self, key: str, job: dict[str, Any], now: datetime) -> int:
        claimed = job.get("claimed_until")
        if claimed and claimed > iso(now):
            return 0
        version = job.get("version", 0)
        claim = {
            **job,
            "claimed_until": iso(now + timedelta(minutes=self.policy.claim_timeout_minutes)),
            "version": version + 1,
        }
        try:
            await self.store.commit([self.store.job_op(key, claim, expect=version)])
        except VersionConflict:
            return 0
        try:
            return await self._run(key, claim, now)
        except Exception:  # noqa: BLE001 - the claim expires and the job is retried
            log.exception("scheduled job %s failed; it will be retried", key)
            return 0

    async def finish(
        self, key: str, job: dict[str, Any] | None, extra: list[Op] | None = None
    ) -> None:
        """Reschedule (``job`` with a new ``due``) or delete (None) a claimed job."""
        ops = [self.store.job_op(key, None if job is None else {**job, "claimed_until": None})]
        await self.store.commit(ops + (extra or []))

    def add_job_type(
        self, kind: str, handler: JobHandler, describe: Describe | None = None
    ) -> None:
        """Let a flow module run its own kind of job (e.g. service-request polling).

        The handler gets ``(key, job, now)`` on a claimed job, returns how many
        messages it sent, and must end by rescheduling or deleting the job with
        :meth:`finish` (else the claim expires and the job runs again).
        ``describe(job, user, case)`` says why the job concerns ``user`` (for the
        ``reminders`` command), or None when it does not.
        """
        self.handlers[kind] = handler
        if describe is not None:
            self.describers[kind] = describe

    async def _run(self, key: str, job: dict[str, Any], now: datetime) -> int:
        kind = job.get("type")
        if kind in self.handlers:
            return await self.handlers[str(kind)](key, job, now)
        if kind == "loop":
            return await self._loop(key, job, now)
        if kind == "watch":
            return await self._watch(key, job, now)
        if kind == "notify":
            return await self._notify(key, job, now)
        log.warning("dropping a job of unknown type %r (%s)", kind, key)
        await self.finish(key, None)
        return 0

    async def send(
        self, key: str, job: dict[str, Any], user: User, text: str, case: int | None, now: datetime
    ) -> bool:
        """A job's message, delivered with backoff; after the last attempt the lead is told."""
        replies = await self.render(user, text, case, job.get("type", "notify"))

        async def tell_the_lead() -> None:
            await self._unreachable(key, job, user, case, now)

        return await self.deliver_with_backoff(
            key,
            job,
            user,
            replies,
            now,
            sent={"case": case, "type": job.get("type")},
            give_up=tell_the_lead,
        )

    async def deliver_with_backoff(
        self,
        key: str,
        job: dict[str, Any],
        user: User,
        replies: list[Reply],
        now: datetime,
        *,
        sent: dict[str, Any],
        max_backoff_minutes: int = 60,
        give_up: Callable[[], Awaitable[None]] | None = None,
    ) -> bool:
        """Deliver a claimed job's ``replies``; on failure reschedule it with backoff.

        The one send-with-backoff of every job (reminders, notifications, a flow
        module's DMs): a success is logged in :attr:`sent` (with ``sent``'s
        fields); a failure retries after 2, 4, 8 … minutes (at most
        ``max_backoff_minutes``), and after ``max_delivery_attempts`` failures
        ``give_up`` runs instead (it reschedules the job itself), if given.
        """
        try:
            ok = await self.deliver(user, replies)
        except Exception:  # noqa: BLE001 - a channel error is a failed delivery
            log.exception("delivering %s to %s failed", key, user.id)
            ok = False
        if ok:
            self.sent.append({"key": key, "user": user.id, "at": now, **sent})
            return True
        attempts = int(job.get("attempts", 0)) + 1
        if give_up is not None and attempts >= self.policy.max_delivery_attempts:
            await give_up()
            return False
        backoff = timedelta(minutes=min(2**attempts, max_backoff_minutes))
        await self.finish(key, {**job, "attempts": attempts, "due": iso(now + backoff)})
        return False

    async def _unreachable(
        self, key: str, job: dict[str, Any], user: User, case: int | None, now: datetime
    ) -> None:
        """The last attempt failed: the leads are told, the job waits a reminder interval."""
        log.error("%s stayed unreachable for %s; telling the lead", user.id, key)
        extra = []
        for lead in await self.leads():
            if lead.id == user.id:
                continue
            with use_locale(lead.locale):
                note = _("{name} could not be reached about {case}: please follow up.").format(
                    name=user.display_name, case=f"BILL-{case}" if case else key
                )
            extra.append(
                self.notify_op(notify_key("unreachable", key, lead.id), lead.id, note, case, now)
            )
        job = {
            **job,
            "attempts": 0,
            "due": iso(
                self.hours_of(user).add_working(
                    now, timedelta(hours=self.policy.repeat_every_hours)
                )
            ),
        }
        await self.finish(key, job, extra)

    # ---- the close-the-loop schedule: what _loop does, and what due_for foresees ---------
    async def loop_recipient(self, case: Case) -> User | None:
        """Who a case's close-the-loop DMs go to: its owner, else the first lead."""
        owner = await self.store.get_user(case.owner) if case.owner else None
        if owner is not None:
            return owner
        leads = await self.leads()
        return leads[0] if leads else None

    def escalates(self, count: int, escalated: bool) -> bool:
        """Whether the lead is pinged along with the DM that ``count`` DMs went before.

        ``count`` DMs went out before this one: the first, then count - 1 reminders.
        K reminders unanswered → the lead is pinged along with the next one (once).
        """
        return not escalated and count - 1 >= self.policy.escalate_after

    def next_loop_due(self, hours: WorkingHours, planned: datetime, now: datetime) -> datetime:
        """The DM after one sent at ``now`` (planned for ``planned``), N working hours on.

        Keep to the schedule (a tick a little late must not push every later reminder),
        but after downtime start again from now: one catch-up, not one per missed slot.
        """
        repeat = timedelta(hours=self.policy.repeat_every_hours)
        base = planned if now - planned <= CATCH_UP_GRACE else now
        nxt = hours.add_working(base, repeat)
        return nxt if nxt > now else hours.add_working(now, repeat)

    def loop_steps(
        self, job: dict[str, Any], hours: WorkingHours, until: datetime
    ) -> Iterator[tuple[datetime, int, bool]]:
        """The DMs of a loop job by ``until`` if nobody records that the customer was told.

        (when, DMs before it, whether the lead is pinged with it), in the recipient's
        working ``hours``; at most ``FORECAST_STEPS`` (an ``--at`` years ahead).
        """
        due = datetime.fromisoformat(job["due"])
        count, escalated = int(job.get("count", 0)), bool(job.get("escalated"))
        for _step in range(FORECAST_STEPS):
            sent_at = hours.next_working(due)  # out of hours, _loop moves it there
            if sent_at > until:
                return
            pinged = self.escalates(count, escalated)
            yield sent_at, count, pinged
            escalated = escalated or pinged
            due = self.next_loop_due(hours, sent_at, sent_at)
            count += 1

    async def _loop(self, key: str, job: dict[str, Any], now: datetime) -> int:
        case = await self.store.get_case(int(job["case"]))
        if case is None or case.state not in LOOP_STATES:
            await self.finish(key, None)  # informed, reopened, cancelled, closed: stop
            return 0
        user = await self.loop_recipient(case)
        if user is None:
            await self.finish(key, {**job, "due": iso(now + timedelta(hours=1))})
            return 0
        hours = self.hours_of(user)
        if not hours.is_working(now):
            await self.finish(key, {**job, "due": iso(hours.next_working(now))})
            return 0
        count = int(job.get("count", 0))
        since = case.resolved_at or now
        with use_locale(user.locale):
            waited = max(1, int((now - since).total_seconds() // 3600))
            if count == 0:
                text = _(
                    "{case} is resolved. Please tell the customer the result, then press "
                    "Customer informed."
                ).format(case=case.id)
            else:
                text = ngettext(
                    "Reminder: {case} was resolved {n} hour ago; the customer was not told yet.",
                    "Reminder: {case} was resolved {n} hours ago; the customer was not told yet.",
                    waited,
                ).format(case=case.id, n=waited)
        if not await self.send(key, job, user, text, case.number, now):
            return 0
        extra: list[Op] = []
        escalated = bool(job.get("escalated"))
        if self.escalates(count, escalated):
            escalated = True
            for lead in await self.leads():
                if lead.id == user.id:
                    continue
                with use_locale(lead.locale):
                    note = escalation_text(case, user, count)
                due = self.hours_of(lead).next_working(now)
                extra.append(
                    self.notify_op(
                        notify_key("escalated", case.number, lead.id),
                        lead.id,
                        note,
                        case.number,
                        due,
                    )
                )
        count += 1
        nxt = self.next_loop_due(hours, datetime.fromisoformat(job["due"]), now)
        await self.finish(
            key,
            {
                **job,
                "count": count,
                "escalated": escalated,
                "attempts": 0,
                "due": iso(nxt),
                "last_sent": iso(now),
            },
            extra,
        )
        return 1

    async def _watch(self, key: str, job: dict[str, Any], now: datetime) -> int:
        case = await self.store.get_case(int(job["case"]))
        if case is None or case.state in WATCH_DONE:
            await self.finish(key, None)
            return 0
        policy = self.policy
        if case.owner is None:
            leads = await self.leads()
            calendar = self.hours_of(leads[0] if leads else None)
            due_at = calendar.add_working(
                case.created_at, timedelta(hours=policy.first_response_hours)
            )
            if now < due_at:
                await self.finish(key, {**job, "due": iso(due_at)})
                return 0
            sent = 0
            for lead in leads:
                hours = self.hours_of(lead)
                if not hours.is_working(now):
                    continue
                with use_locale(lead.locale):
                    text = _(
                        "{case} has waited for a first response: nobody has taken it yet."
                    ).format(case=case.id)
                if await self.send(key, job, lead, text, case.number, now):
                    sent += 1
            if sent or not leads:
                nxt = calendar.add_working(now, timedelta(hours=policy.first_response_hours))
            else:
                nxt = min(self.hours_of(lead).next_working(now) for lead in leads)
            current = await self.store.get_job(key)
            if current is not None:
                await self.finish(key, {**current, "due": iso(nxt), "attempts": 0})
            return sent
        owner = await self.store.get_user(case.owner)
        hours = self.hours_of(owner)
        last = case.updated_at or case.created_at
        due_at = hours.add_working(
            last, timedelta(hours=self._working_day_hours() * policy.idle_days)
        )
        if now < due_at:
            await self.finish(key, {**job, "due": iso(due_at)})
            return 0
        if owner is None:
            await self.finish(key, {**job, "due": iso(now + timedelta(hours=1))})
            return 0
        if not hours.is_working(now):
            await self.finish(key, {**job, "due": iso(hours.next_working(now))})
            return 0
        with use_locale(owner.locale):
            days = max(1, int((now - last).total_seconds() // 86400))
            text = ngettext(
                "{case} has had no activity for {n} day. Is it still moving?",
                "{case} has had no activity for {n} days. Is it still moving?",
                days,
            ).format(case=case.id, n=days)
        if not await self.send(key, job, owner, text, case.number, now):
            return 0
        nxt = hours.add_working(now, timedelta(hours=self._working_day_hours() * policy.idle_days))
        await self.finish(key, {**job, "due": iso(nxt), "attempts": 0})
        return 1

    def _working_day_hours(self) -> float:
        day = WorkingHours.parse("UTC", self.policy.working_hours)
        return (day.end.hour * 60 + day.end.minute - day.start.hour * 60 - day.start.minute) / 60

    async def _notify(self, key: str, job: dict[str, Any], now: datetime) -> int:
        user = await self.store.get_user(job["user_id"])
        if user is None or user.role == Role.NONE:
            await self.finish(key, None)
            return 0
        if not await self.send(key, job, user, job["text"], job.get("case"), now):
            return 0
        await self.finish(key, None)
        return 1

    # ---- what is due for a person -------------------------------------------------
    async def due_for(
        self, user: User, at: datetime, *, repeats: bool = True
    ) -> list[tuple[datetime, str, str]]:
        """(when, case id, why) for every message that would reach ``user`` by ``at``.

        ``when`` is the job's due time moved into the recipient's working hours,
        which is when it would really go out. A close-the-loop job is followed as it
        will run if nobody records that the customer was told: its DMs (each one by
        ``at``, or with ``repeats=False`` only the next) and the lead's escalation ping.
        """
        out: list[tuple[datetime, str, str]] = []
        leads = {u.id for u in await self.leads()}
        hours = self.hours_of(user)
        for _key, job in await self.store.jobs():
            number = job.get("case")
            kind = job.get("type")
            if kind == "loop":
                case = await self.store.get_case(int(number)) if number else None
                if case and case.state in LOOP_STATES:
                    out += await self._loop_forecast(job, case, user, leads, at, repeats)
                continue
            due = hours.next_working(datetime.fromisoformat(job["due"]))
            if due > at:
                continue
            case = await self.store.get_case(int(number)) if number else None
            with use_locale(user.locale):
                if kind == "notify" and job.get("user_id") == user.id:
                    out.append((due, f"BILL-{number}" if number else "", job.get("text", "")))
                elif str(kind) in self.describers:
                    reason = self.describers[str(kind)](job, user, case)
                    if reason:
                        out.append((due, case.id if case else "", reason))
                elif kind == "watch" and case and case.state not in WATCH_DONE:
                    if case.owner is None and user.id in leads:
                        out.append((due, case.id, _("nobody has taken it yet (first response)")))
                    elif case.owner == user.id:
                        out.append((due, case.id, _("check for activity (idle watch)")))
        out.sort(key=lambda t: t[0])
        return out

    async def _loop_forecast(
        self,
        job: dict[str, Any],
        case: Case,
        user: User,
        leads: set[str],
        at: datetime,
        repeats: bool,
    ) -> list[tuple[datetime, str, str]]:
        """A loop's DMs to ``user`` by ``at`` (the recipient's), and the lead's ping (a lead's)."""
        recipient = await self.loop_recipient(case)
        if recipient is None:
            return []
        mine = recipient.id == user.id
        pinged_lead = not mine and user.id in leads
        out: list[tuple[datetime, str, str]] = []
        with use_locale(user.locale):
            for when, count, pinged in self.loop_steps(job, self.hours_of(recipient), at):
                if mine:
                    why = _("tell the customer the result (reminder {n})").format(n=count + 1)
                    out.append((when, case.id, why))
                    if not repeats:
                        break
                elif pinged_lead and pinged:
                    ping = self.hours_of(user).next_working(when)
                    if ping <= at:
                        out.append((ping, case.id, escalation_text(case, recipient, count)))
                    break
                elif not pinged_lead or bool(job.get("escalated")):
                    break  # nothing of this loop reaches ``user``
        return out


def escalation_text(case: Case, owner: User, count: int) -> str:
    """The lead's ping when ``owner`` left the DM that ``count`` DMs went before unanswered."""
    unanswered = count - 1
    return ngettext(
        "{case} is resolved, but after {n} reminder {owner} has not "
        "confirmed that the customer was told.",
        "{case} is resolved, but after {n} reminders {owner} has not "
        "confirmed that the customer was told.",
        unanswered,
    ).format(case=case.id, owner=owner.display_name, n=unanswered)
