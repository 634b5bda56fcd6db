"""Escalation to Microsoft: Partner Center service requests from chat, in API or manual mode.

``register(runtime, partner_center)`` (called by the composition root, with the
Partner Center client every flow shares) adds the ``escalate`` command and its
form (API or manual mode), wraps ``note`` so ``note BILL-n --microsoft text`` also
reaches the service request, adds ``srstatus`` (record a status by hand), and
adds two job types to the scheduler:

``sr_poll:N``    one per escalated case, written in the same commit as the
                 escalation. API mode: read the request every
                 ``partner_center_poll_minutes`` and, when Microsoft's status
                 changes, record it on the case and DM the owner. Manual mode:
                 ask the owner every ``partner_center_manual_check_hours`` to
                 check the request in the portal and record what they see.
``sr_pending:N`` the escalation being filed: its ``MS-RequestId`` and body,
                 written *before* the create call. A double click, a resubmitted
                 form or a retry after a timeout reuses that id, so Partner Center
                 files at most one request. Deleted in the commit that records
                 the request on the case; if the outcome stayed unknown, it tells
                 the person once that a retry is safe, then expires.

API mode is on when the Partner Center client has all its credentials
(``PartnerCenterClient.configured``); otherwise the bot hands the owner the
text to paste into the portal and records the number they paste back.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.domain import (
    Actor,
    Case,
    Conflict,
    Customer,
    DomainError,
    NotFound,
    Role,
    ServiceRequest,
    State,
    User,
    parse_case_id,
    transition_error,
)
from bot.i18n import N_, _, ngettext, plural_count, use_locale
from bot.kernel.model import ActionRef, Button, ButtonStyle, Choice, FieldKind, Reply, read_stage
from bot.kernel.scheduler import iso, notify_key
from bot.partner_center import (
    PartnerCenterAuthError,
    PartnerCenterClient,
    PartnerCenterError,
    PartnerCenterInputError,
    PartnerCenterProtocolError,
    PartnerCenterRejected,
    PartnerCenterUnavailable,
    ServiceRequestInfo,
    SupportTopic,
    new_request_id,
)
from bot.policy import Action
from bot.storage import Op, Store, VersionConflict
from conversations.cards import sr_status_label, state_label
from conversations.commands import Command
from conversations.desk import Desk
from conversations.desk_forms import REQUEST_ID, SEVERITY, load_customer
from conversations.formengine import Answers, Field, FormDecl, FormEnv, case_context
from conversations.forms import ValidationError, request_number
from conversations.registry import command
from conversations.text import u
from conversations.turn import Result, Turn

if TYPE_CHECKING:
    from conversations.runtime import Runtime

log = logging.getLogger(__name__)

POLL_JOB = "sr_poll"
PENDING_JOB = "sr_pending"
# Cases that may be escalated (the domain moves open/reopened cases to in_progress first).
ESCALATABLE = frozenset({State.OPEN, State.IN_PROGRESS, State.REOPENED})
# Statuses a person may record by hand (Partner Center's ``none`` is not one of them).
MANUAL_STATUSES = ("open", "attention_needed", "closed")
# Microsoft's statuses the owner is told about.
NEWS_STATUSES = frozenset({"attention_needed", "closed"})
# Who changed a status the poll read from Partner Center (shown in the case history).
MICROSOFT = Actor("Microsoft", Role.LEAD, "partner-center", display_name="Microsoft")
# A failed or unfinished escalation is remembered this long (a retry reuses its request id).
PENDING_REMIND = timedelta(hours=1)
PENDING_KEEP = timedelta(days=7)
# After this many failed reads in a row the owner is told polling does not work.
POLL_ERRORS_BEFORE_TELLING = 3
SAVE_TRIES = 3

_EMAIL = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+")
_LOCALES = {
    "en": "en-US",
    "de": "de-DE",
    "fr": "fr-FR",
    "es": "es-ES",
    "it": "it-IT",
    "ja": "ja-JP",
    "nl": "nl-NL",
    "pt": "pt-BR",
    "zh": "zh-CN",
}


def poll_key(number: int) -> str:
    return f"{POLL_JOB}:{number}"


def pending_key(number: int) -> str:
    return f"{PENDING_JOB}:{number}"


def agent_locale(locale: str | None) -> str:
    """The ``{agent-locale}`` of the create call from a user's locale (``zh_CN`` → ``zh-CN``)."""
    text = (locale or "").replace("_", "-").strip()
    if re.fullmatch(r"[a-z]{2,3}-[A-Za-z]{2,4}", text):
        return text
    return _LOCALES.get(text.split("-")[0].lower(), "en-US")


def parse_contact(text: str) -> dict[str, str] | None:
    """``PrimaryContact`` from ``jane@contoso.com`` or ``Jane Doe <jane@contoso.com>``."""
    text = (text or "").strip()
    if not text:
        return None
    match = _EMAIL.search(text)
    if match is None:
        raise DomainError(
            _("The primary contact must be an email address, like Jane Doe <jane@contoso.com>.")
        )
    name = (text[: match.start()] + text[match.end() :]).replace("<", " ").replace(">", " ")
    words = name.split()
    contact = {"Email": match.group(0)}
    if words:
        contact["FirstName"] = words[0]
    if len(words) > 1:
        contact["LastName"] = " ".join(words[1:])
    return contact


def _contact(env: FormEnv, text: str) -> str:
    """The contact field's check: an email in it (see :func:`parse_contact`)."""
    try:
        parse_contact(text)
    except DomainError as exc:
        raise ValidationError(str(exc)) from None
    return text


def case_op(case: Case) -> Op:
    """The guarded write of ``case`` (as ``Store.save_case`` does), for a combined commit."""
    return Store.case_op(case)


def flow_of(runtime: Runtime) -> EscalationFlow:
    """The escalation flow ``register`` attached to ``runtime`` (tests swap its client)."""
    return runtime.flow(EscalationFlow)


class EscalationFlow:
    """The escalate / note --microsoft / srstatus flows and the service request jobs."""

    def __init__(self, runtime: Runtime, client: PartnerCenterClient) -> None:
        self.runtime = runtime
        self.desk: Desk = runtime.desk
        self.store = runtime.store
        self.settings = runtime.settings
        self.scheduler = runtime.scheduler
        self.client = client  # handed over by the composition root (shared by the flows)
        self._builtin_note = self.desk.handlers["note"]
        # One filing per case at a time in this process; the pending record covers the rest.
        self._locks: dict[int, asyncio.Lock] = {}

    # ---- setup ------------------------------------------------------------------
    @property
    def api_mode(self) -> bool:
        return self.client.configured

    @property
    def poll_every(self) -> timedelta:
        return timedelta(minutes=self.settings.partner_center_poll_minutes)

    @property
    def manual_every(self) -> timedelta:
        return timedelta(hours=self.settings.partner_center_manual_check_hours)

    def _lock(self, number: int) -> asyncio.Lock:
        return self._locks.setdefault(number, asyncio.Lock())

    def poll_op(self, case: Case, mode: str, now: datetime) -> Op:
        """Start tracking ``case``'s service request (same commit as the escalation)."""
        every = self.poll_every if mode == "api" else self.manual_every
        doc = {"type": POLL_JOB, "case": case.number, "mode": mode, "due": iso(now + every)}
        return self.store.job_op(poll_key(case.number), doc)

    # ---- escalate -----------------------------------------------------------------
    @command(
        "escalate",
        needs="case",
        aliases=("上报",),
        action=Action.ESCALATE,
        usage="escalate BILL-n",
        help=N_("file a Microsoft service request for the case"),
        form="escalate",
        handler_checks=True,
        after="note",
    )
    async def cmd_escalate(self, turn: Turn, cmd: Command) -> Result:
        """``escalate BILL-n`` (form), ``escalate BILL-n NUMBER`` (filed by hand), ``… retry``."""
        number, rest = cmd.case_and_rest()
        case = await self.desk.load_case(turn, number, Action.ESCALATE, "escalate BILL-7")
        if case.state not in ESCALATABLE:
            raise DomainError(transition_error(case, State.ESCALATED))
        word = rest.split()[0] if rest else ""
        if word.lower() == "retry":
            return await self._retry(turn, case)
        if word:
            return await self._record_manual(turn, case, word, "", [])
        ctx = case_context(case)
        if not self.api_mode:
            return await self.desk.forms.start(turn, "escalate", ctx, prefill={})
        await self._topics(case)  # a topics error is said before any form opens
        pending = await self.store.get_job(pending_key(case.number))
        prefill = dict(pending.get("values") or {}) if pending else {}
        return await self.desk.forms.start(turn, "escalate", ctx, prefill=prefill)

    # The escalate form (see register): these fields, intro and end.
    def fields(self) -> tuple[Field, ...]:
        """API mode: title, description, severity, topic, contact; manual: severity, number."""

        def api(env: FormEnv) -> bool:
            return self.api_mode

        def manual(env: FormEnv) -> bool:
            return not self.api_mode

        def title(env: FormEnv) -> str:
            assert env.case is not None
            return self.sr_title(env.case, env.data.get("customer"))[:255]

        def description(env: FormEnv) -> str:
            assert env.case is not None
            return self.desk.sr_description(env.case, env.data.get("customer"))

        def topics(env: FormEnv) -> tuple[Choice, ...]:
            return _topic_choices(env.data["topics"])

        def billing_topic(env: FormEnv) -> str:
            options, found = topics(env), env.data["topics"]
            return next(
                (c for c, t in zip(options, found, strict=True) if "billing" in t.name.casefold()),
                options[0],
            ).value

        return (
            Field("title", N_("Title"), default=title, max_length=255, when=api),
            Field(
                "description", N_("Description"), FieldKind.LONG_TEXT, default=description, when=api
            ),
            SEVERITY,
            Field(
                "topic",
                N_("Support topic"),
                FieldKind.CHOICE,
                choices=topics,
                default=billing_topic,
                when=api,
            ),
            Field(
                "contact",
                N_("Primary contact"),
                required=False,
                hint=N_("an email Microsoft may write to, e.g. Jane Doe <jane@contoso.com>"),
                checks=(_contact,),
                when=api,
            ),
            replace(REQUEST_ID, when=manual),
        )

    async def form_load(self, env: FormEnv) -> None:
        """The case's customer, and in API mode the live support topics."""
        await load_customer(env)
        if self.api_mode:
            assert env.case is not None
            env.data["topics"] = await self._topics(env.case)

    def form_intro(self, env: FormEnv) -> str:
        case = env.case
        assert case is not None
        customer = env.data.get("customer")
        if not self.api_mode:
            return self._manual_intro(case, customer)
        return _(
            "This files a service request in Partner Center on behalf of {customer}. Microsoft "
            "reads the title and description as written; check them before you submit."
        ).format(customer=u(customer.name if customer else case.customer_id))

    def sr_title(self, case: Case, customer: Customer | None) -> str:
        parts = [customer.name if customer else case.customer_id]
        if case.dispute:
            parts.append(f"invoice {case.dispute.invoice}, {case.dispute.amount}")
        elif case.invoice:
            parts.append(f"invoice {case.invoice}")
        return f"{self.desk.sr_title(case)}: {', '.join(parts)}"

    def _manual_intro(self, case: Case, customer: Customer | None) -> str:
        return _(
            "No Partner Center credentials are set, so file it by hand: in Partner Center open "
            "Support → Customer requests → New request for {customer}, choose a billing topic, "
            "paste this, then give me the request number. I will remind you to check it.\n\n"
            "Title: {title}\nDescription: {description}"
        ).format(
            customer=u(customer.name if customer else case.customer_id),
            title=u(self.sr_title(case, customer)),
            description=u(self.desk.sr_description(case, customer)),
        )

    async def _topics(self, case: Case) -> list[SupportTopic]:
        """The live support topics (cached by the client); an error is said plainly."""
        try:
            topics = await self.client.support_topics()
        except PartnerCenterError as exc:
            log.warning("support topics for %s: %s", case.id, exc.detail)
            raise DomainError(
                _(
                    "I could not load Microsoft's support topics, so I can't file the service "
                    "request now: {message} You can also file it by hand in the Partner Center "
                    "portal and record its number with `escalate {case} NUMBER`."
                ).format(message=exc.user_message, case=case.id)
            ) from None
        if not topics:
            raise DomainError(
                _(
                    "Partner Center lists no support topics, so I can't file the service request. "
                    "File it by hand in the portal and record it with `escalate {case} NUMBER`."
                ).format(case=case.id)
            )
        return topics

    async def form_complete(self, env: FormEnv, values: Answers, clear_op: Op) -> Result:
        """The form's end (the engine checked the policy): file it, or record the number."""
        turn, ctx = env.turn, env.ctx
        number = parse_case_id(ctx.get("case", ""))
        # Ends the form: committed with the change, or on its own by the finally below
        # (a form left open with every field answered would have nothing left to ask).
        first_ops = [clear_op]
        try:
            async with self._lock(number or 0):
                case = await self.store.get_case(number) if number else None
                if case is None:
                    raise NotFound(_("That case no longer exists."))
                stage = read_stage(ctx)  # also the older "version" of a form sent before
                if stage is not None and stage != case.stage:
                    # A second submit of the same form, or a form older than the case.
                    await self._flush(first_ops)
                    return await self.desk.stale_reply(turn, case)
                turn.clicked = None
                if case.state not in ESCALATABLE:
                    raise DomainError(transition_error(case, State.ESCALATED))
                if "request_id" in values:
                    return await self._record_manual(
                        turn, case, values["request_id"], values.get("severity", ""), first_ops
                    )
                return await self._file(turn, case, values, first_ops)
        finally:
            await self._flush(first_ops)

    async def _flush(self, ops: list[Op]) -> None:
        """Commit ``ops`` if not done yet (they are emptied once written)."""
        if ops:
            await self.store.commit(ops)
            ops.clear()

    async def _retry(self, turn: Turn, case: Case) -> Result:
        """``escalate BILL-n retry`` / Try again: the last values, the same request id if owed."""
        pending = await self.store.get_job(pending_key(case.number))
        if not self.api_mode or not pending or not pending.get("values"):
            return await self.cmd_escalate(turn, Command("escalate", case.id))
        async with self._lock(case.number):
            fresh = await self.store.get_case(case.number)
            if fresh is None or fresh.state not in ESCALATABLE:
                raise DomainError(transition_error(fresh or case, State.ESCALATED))
            return await self._file(turn, fresh, dict(pending["values"]), [])

    async def _file(
        self, turn: Turn, case: Case, values: dict[str, str], first_ops: list[Op]
    ) -> Result:
        """File the service request by API (the caller holds the case's lock)."""
        try:
            contact = parse_contact(values.get("contact", ""))
        except DomainError as exc:
            await self._flush(first_ops)
            return await self._reopen(turn, case, values, str(exc), "contact")
        topics = await self._topics(case)
        topic = next((t for c, t in zip(_topic_choices(topics), topics, strict=True)
                      if c.value == values.get("topic")), None)  # fmt: skip
        if topic is None:
            await self._flush(first_ops)
            return await self._reopen(
                turn, case, values, _("That support topic is no longer offered; pick another."),
                "topic",
            )  # fmt: skip
        body: dict[str, Any] = {
            "title": values["title"],
            "description": values["description"],
            "severity": values["severity"],
            "topic_id": topic.id,
            "topic": topic.name,
            "contact": contact,
        }
        key = pending_key(case.number)
        pending = await self.store.get_job(key)
        notes: list[Reply] = []
        if pending and pending.get("outcome") in ("sending", "unknown") and pending.get("body"):
            # Partner Center may already have this one: send it again, same id, same body.
            rid = str(pending["request_id"])
            if pending["body"] != body:
                body = dict(pending["body"])
                notes.append(
                    Reply(
                        text=_(
                            "Partner Center may already have the first version of this request, "
                            "so I sent that one again with the same request id. Add what changed "
                            "with `note {case} --microsoft …` once it is filed."
                        ).format(case=case.id)
                    )
                )
        else:
            rid = new_request_id()
        version = int(pending.get("version", 0)) if pending else 0
        doc: dict[str, Any] = {
            "type": PENDING_JOB,
            "case": case.number,
            "request_id": rid,
            "body": body,
            "values": dict(values),
            "outcome": "sending",
            "by": turn.user.id,
            "at": iso(turn.now),
            "due": iso(turn.now + PENDING_REMIND),
            "version": version + 1,
        }
        try:
            # The request id is stored before the call: any repeat of this filing reuses it.
            await self.store.commit(
                [*first_ops, self.store.job_op(key, doc, expect=version if pending else None)]
            )
            first_ops.clear()
        except VersionConflict:
            return Result(
                [
                    Reply(
                        text=_(
                            "{case} is being escalated right now (another click or another "
                            "person). Wait a moment, then look at `status {case}`."
                        ).format(case=case.id),
                        kind="stale",
                    )
                ]
            )
        try:
            info = await self.client.create_service_request(
                agent_locale(turn.user.locale),
                body["title"],
                body["description"],
                body["severity"],
                body["topic_id"],
                body["contact"],
                request_id=rid,
            )
        except PartnerCenterError as exc:
            return await self._filing_failed(turn, case, doc, values, exc)
        out = await self._filed(turn, case.number, info, body, rid)
        out.replies[:0] = notes
        return out

    async def _filed(
        self, turn: Turn, number: int, info: ServiceRequestInfo, body: dict[str, Any], rid: str
    ) -> Result:
        """Record the filed request on the case, with its poll job, in one commit."""
        status = info.status if info.status in MANUAL_STATUSES else "open"
        for attempt in range(SAVE_TRIES):
            case = await self.store.get_case(number)
            if case is None:
                raise NotFound(_("That case no longer exists."))
            if case.service_request is not None and case.service_request.id == info.id:
                await self.store.commit([self.store.job_op(pending_key(number), None)])
                break
            if case.state not in ESCALATABLE:
                # It moved on while Microsoft was filing: keep the number where people look.
                case.add_note(
                    _("Microsoft service request {sr} was filed while the case changed.").format(
                        sr=info.id
                    ),
                    turn.actor,
                    turn.now,
                )
                await self.store.save_case(case, [self.store.job_op(pending_key(number), None)])
                raise DomainError(
                    _(
                        "Partner Center filed service request {sr}, but {case} is {state} now, so "
                        "I only noted the number on the case."
                    ).format(sr=info.id, case=case.id, state=state_label(case.state))
                )
            self.desk.ensure_started(turn, case)
            case.escalate(
                ServiceRequest(info.id, "api", status, turn.now, body["title"]),
                turn.actor,
                turn.now,
            )
            case.audit[-1].details.update(
                severity=body["severity"], support_topic=body["topic"], ms_request_id=rid
            )
            ops = [
                self.store.job_op(pending_key(number), None),
                self.poll_op(case, "api", turn.now),
            ]
            try:
                await self.store.save_case(case, ops)
                break
            except Conflict:
                if attempt == SAVE_TRIES - 1:
                    raise
        assert case is not None
        log.info("%s escalated as service request %s (MS-RequestId=%s)", case.id, info.id, rid)
        minutes = f"{self.settings.partner_center_poll_minutes:g}"
        text = (
            _(
                "{case} is escalated to Microsoft: Partner Center filed service request {sr} "
                "({topic}, {severity})."
            ).format(case=case.id, sr=u(info.id), topic=u(body["topic"]), severity=body["severity"])
            + " "
            + ngettext(
                "I check it every {n} minute and tell the owner when Microsoft answers.",
                "I check it every {n} minutes and tell the owner when Microsoft answers.",
                plural_count(minutes),
            ).format(n=minutes)
        )
        card = await self.desk.card_for(turn, case)
        return Result([Reply(text=text, card=card)])

    async def _filing_failed(
        self,
        turn: Turn,
        case: Case,
        doc: dict[str, Any],
        values: dict[str, str],
        exc: PartnerCenterError,
    ) -> Result:
        """Nothing is written on the case; the pending record says whether a retry reuses the id."""
        log.warning("escalating %s failed: %s", case.id, exc.detail)
        unknown = isinstance(exc, PartnerCenterProtocolError) or (
            isinstance(exc, PartnerCenterUnavailable) and exc.outcome_unknown
        )
        current = await self.store.get_job(pending_key(case.number))
        version = int(current.get("version", 0)) if current else 0
        doc = {
            **doc,
            "outcome": "unknown" if unknown else "failed",
            "error": exc.user_message,
            "due": iso(turn.now + (PENDING_REMIND if unknown else PENDING_KEEP)),
            "version": version + 1,
            "claimed_until": None,
        }
        await self.store.commit([self.store.job_op(pending_key(case.number), doc)])
        retry = Button(
            _("Try again"), ActionRef("escalate", case.id, case.stage, "retry"), ButtonStyle.PRIMARY
        )
        if unknown:
            text = _("{case} is unchanged. {message}").format(
                case=case.id, message=exc.user_message
            )
            return Result([Reply(text=text, buttons=[retry], kind="error")])
        text = _("The service request was not filed and {case} is unchanged: {message}").format(
            case=case.id, message=exc.user_message
        )
        if isinstance(exc, PartnerCenterRejected | PartnerCenterInputError):
            return await self._reopen(turn, case, values, text, None)
        if isinstance(exc, PartnerCenterAuthError):
            text += "\n" + _(
                "Until that is fixed, file it by hand in the Partner Center portal and record "
                "its number with `escalate {case} NUMBER`."
            ).format(case=case.id)
            return Result([Reply(text=text, kind="error")])
        return Result([Reply(text=text, buttons=[retry], kind="error")])

    async def _reopen(
        self, turn: Turn, case: Case, values: dict[str, str], error: str, field: str | None
    ) -> Result:
        """Show the form again with what was entered, and what to fix."""
        out = await self.desk.forms.start(turn, "escalate", case_context(case), values)
        for reply in out.replies:
            if reply.form is not None and field:
                reply.form.errors = {field: error}
        out.replies.insert(0, Reply(text=error, kind="error"))
        return out

    async def _record_manual(
        self, turn: Turn, case: Case, number: str, severity: str, first_ops: list[Op]
    ) -> Result:
        """A request filed by hand in the portal: its number goes on the case, tracking starts."""
        try:
            request_id = request_number(None, number)
        except ValidationError as exc:
            raise DomainError(str(exc)) from None
        self.desk.ensure_started(turn, case)
        case.escalate(
            ServiceRequest(
                request_id,
                "manual",
                "open",
                turn.now,
                self.sr_title(case, await self.store.get_customer(case.customer_id)),
            ),
            turn.actor,
            turn.now,
        )
        if severity:
            case.audit[-1].details["severity"] = severity
        # With credentials the API can read a request filed in the portal too.
        mode = "api" if self.api_mode else "manual"
        if mode == "api":
            minutes = f"{self.settings.partner_center_poll_minutes:g}"
            follow = ngettext(
                "I check it every {n} minute.",
                "I check it every {n} minutes.",
                plural_count(minutes),
            ).format(n=minutes)
        else:
            hours = f"{self.settings.partner_center_manual_check_hours:g}"
            follow = ngettext(
                "I will ask you to check it in the portal every {n} hour; record what "
                "Microsoft says with `srstatus {case} attention_needed|closed text`.",
                "I will ask you to check it in the portal every {n} hours; record what "
                "Microsoft says with `srstatus {case} attention_needed|closed text`.",
                plural_count(hours),
            ).format(n=hours, case=case.id)
        out = await self.desk.save_and_show(
            turn,
            case,
            _("{case} is escalated to Microsoft as service request {sr}.").format(
                case=case.id, sr=u(request_id)
            )
            + " "
            + follow,
            extra_ops=[*first_ops, self.poll_op(case, mode, turn.now)],
        )
        first_ops.clear()
        return out

    # ---- notes to Microsoft ---------------------------------------------------------
    async def cmd_note(self, turn: Turn, cmd: Command) -> Result:
        """``note BILL-n --microsoft text``: the internal note, then the same text to Microsoft."""
        number, rest = cmd.case_and_rest()
        if not rest.startswith("--microsoft"):
            return await self._builtin_note(turn, cmd)
        text = rest[len("--microsoft") :].strip()
        if not text:
            raise DomainError(
                _("What should Microsoft read? `note {case} --microsoft the text`").format(
                    case=f"BILL-{number}" if number else "BILL-7"
                )
            )
        out = await self._builtin_note(turn, cmd)  # checks, and saves the note (to_microsoft)
        case = await self.store.get_case(number) if number else None
        sr = case.service_request if case else None
        if case is None or sr is None:
            out.replies.append(
                Reply(
                    text=_(
                        "{case} has no Microsoft service request yet, so the note stays internal. "
                        "Escalate it first."
                    ).format(case=f"BILL-{number}")
                )
            )
        elif self.api_mode:
            try:
                await self.client.add_note(sr.id, text)
            except PartnerCenterError as exc:
                log.warning("note to service request %s failed: %s", sr.id, exc.detail)
                out.replies.append(
                    Reply(
                        text=_(
                            "The note is saved on {case}, but it did not reach Microsoft: {message}"
                        ).format(case=case.id, message=exc.user_message),
                        kind="error",
                    )
                )
            else:
                out.replies.append(
                    Reply(
                        text=_("Also added to Microsoft service request {sr}.").format(sr=u(sr.id))
                    )
                )
        else:
            out.replies.append(
                Reply(
                    text=_(
                        "No Partner Center credentials are set: add the note to service request "
                        "{sr} in the Partner Center portal yourself (Support → Customer requests)."
                    ).format(sr=u(sr.id))
                )
            )
        return out

    # ---- status by hand ---------------------------------------------------------------
    @command(
        "srstatus",
        needs="case",
        action=Action.ESCALATE,
        aliases=("请求状态",),
        usage="srstatus BILL-n open|attention_needed|closed [text]",
        help=N_("record the Microsoft service request's status by hand (manual mode)"),
        handler_checks=True,
        after="escalate",
        words={
            "open": ("打开", "未结"),
            "attention_needed": ("attention", "需要关注", "需关注"),
            "closed": ("已关闭", "关闭"),
        },
    )
    async def cmd_srstatus(self, turn: Turn, cmd: Command) -> Result:
        """``srstatus BILL-n open|attention_needed|closed [text]``: what the portal shows."""
        usage = "srstatus BILL-7 closed Microsoft credited 120.00 EUR"
        number, rest = cmd.case_and_rest()
        case = await self.desk.load_case(turn, number, Action.ESCALATE, usage)
        words = rest.split(maxsplit=1)
        status = cmd.keyword(words[0].replace("-", "_")) if words else ""
        if status not in MANUAL_STATUSES:
            raise DomainError(
                _("Which status? `srstatus {case} open|attention_needed|closed [text]`").format(
                    case=case.id
                )
            )
        sr = case.service_request
        if sr is None:
            raise DomainError(
                _("{case} has no Microsoft service request yet: `escalate {case}` first.").format(
                    case=case.id
                )
            )
        text = words[1].strip() if len(words) > 1 else ""
        if sr.status == status and not text:
            raise DomainError(
                _("Service request {sr} is already {status}.").format(
                    sr=u(sr.id), status=sr_status_label(status)
                )
            )
        if sr.status != status:
            case.record_service_request_status(status, turn.actor, turn.now)
        if text:
            case.add_note(_("Microsoft: {text}").format(text=text), turn.actor, turn.now)
        ops: list[Op] = []
        job = await self.store.get_job(poll_key(case.number))
        if case.state == State.ESCALATED:
            if status == "closed":
                ops.append(self.store.job_op(poll_key(case.number), None))
            else:
                mode = (job or {}).get("mode", "api" if self.api_mode else "manual")
                ops.append(self.poll_op(case, mode, turn.now))
        if status == "closed":
            reply = _(
                "Recorded: Microsoft closed service request {sr}. Now resolve {case} with "
                "Microsoft's answer (Resolve, or `resolve {case} …`); that starts the reminders "
                "to tell the customer."
            )
        elif status == "attention_needed":
            reply = _(
                "Recorded: service request {sr} needs your attention. Answer Microsoft in the "
                "Partner Center portal (or `note {case} --microsoft …`)."
            )
        else:
            reply = _("Recorded: service request {sr} is open.")
        return await self.desk.save_and_show(
            turn, case, reply.format(sr=u(sr.id), case=case.id), extra_ops=ops
        )

    # ---- jobs -----------------------------------------------------------------------
    async def run_poll(self, key: str, job: dict[str, Any], now: datetime) -> int:
        """``sr_poll``: read the request (API) or ask the owner to check it (manual)."""
        case = await self.store.get_case(int(job["case"]))
        if case is None or case.service_request is None or case.state != State.ESCALATED:
            await self.scheduler.finish(key, None)  # resolved, cancelled, gone: stop
            return 0
        if job.get("mode") == "api" and self.api_mode:
            return await self._poll_api(key, job, case, now)
        return await self._remind_manual(key, job, case, now)

    async def _recipients(self, case: Case) -> list[User]:
        owner = await self.store.get_user(case.owner) if case.owner else None
        return [owner] if owner else await self.scheduler.leads()

    async def _poll_api(self, key: str, job: dict[str, Any], case: Case, now: datetime) -> int:
        sr = case.service_request
        assert sr is not None
        nxt = {**job, "due": iso(now + self.poll_every), "attempts": 0}
        try:
            info = await self.client.get_service_request(sr.id)
        except PartnerCenterError as exc:
            errors = int(job.get("errors", 0)) + 1
            log.warning("polling service request %s of %s: %s", sr.id, case.id, exc.detail)
            extra: list[Op] = []
            if errors == POLL_ERRORS_BEFORE_TELLING:
                for user in await self._recipients(case):
                    with use_locale(user.locale):
                        text = ngettext(
                            "I could not read Microsoft service request {sr} of {case} "
                            "{n} time in a row: {message} Check it in the Partner Center portal; "
                            "`srstatus {case} …` records what you see.",
                            "I could not read Microsoft service request {sr} of {case} "
                            "{n} times in a row: {message} Check it in the Partner Center portal; "
                            "`srstatus {case} …` records what you see.",
                            errors,
                        ).format(sr=sr.id, case=case.id, n=errors, message=exc.user_message)
                    extra.append(self._notify(f"pollerror:{sr.id}", user, text, case, now))
            await self.scheduler.finish(key, {**nxt, "errors": errors}, extra)
            return 0
        nxt["errors"] = 0
        if info.status == sr.status or info.status not in MANUAL_STATUSES:
            await self.scheduler.finish(key, nxt)
            return 0
        case.record_service_request_status(info.status, MICROSOFT, now)
        extra = [case_op(case)]
        if info.status in NEWS_STATUSES:
            tag = f"{info.status}:{len(case.audit)}"
            for user in await self._recipients(case):
                text = self._news(user, case, info.status)
                extra.append(self._notify(f"sr:{case.number}:{tag}", user, text, case, now))
        # Closed: nothing more to read; the owner resolves the case with Microsoft's answer.
        try:
            await self.scheduler.finish(key, None if info.status == "closed" else nxt, extra)
        except VersionConflict:  # the case changed this instant: read again shortly
            await self.scheduler.finish(key, {**job, "due": iso(now + timedelta(minutes=1))})
        return 0

    def _news(self, user: User, case: Case, status: str) -> str:
        sr = case.service_request
        assert sr is not None
        with use_locale(user.locale):
            if status == "closed":
                return _(
                    "Microsoft closed service request {sr} for {case}. Record Microsoft's answer "
                    "with Note, then press Resolve with the outcome; resolving starts the "
                    "reminders to tell the customer."
                ).format(sr=sr.id, case=case.id)
            return _(
                "Microsoft needs something from you on {case}: service request {sr} is waiting "
                "for your answer. Read it in the Partner Center portal, note what they ask with "
                "Note, and answer with `note {case} --microsoft your answer`."
            ).format(sr=sr.id, case=case.id)

    def _notify(self, tag: str, user: User, text: str, case: Case, now: datetime) -> Op:
        """A durable DM with the case card, sent in the recipient's working hours."""
        due = self.scheduler.hours_of(user).next_working(now)
        key = notify_key(tag, user.id)
        return self.scheduler.notify_op(key, user.id, text, case.number, due)

    async def _remind_manual(self, key: str, job: dict[str, Any], case: Case, now: datetime) -> int:
        sr = case.service_request
        assert sr is not None
        recipients = await self._recipients(case)
        if not recipients:
            await self.scheduler.finish(key, {**job, "due": iso(now + timedelta(hours=1))})
            return 0
        user = recipients[0]
        hours = self.scheduler.hours_of(user)
        if not hours.is_working(now):
            await self.scheduler.finish(key, {**job, "due": iso(hours.next_working(now))})
            return 0
        with use_locale(user.locale):
            text = _(
                "Please check Microsoft service request {sr} of {case} in the Partner Center "
                "portal (Support → Customer requests), then record what you see: "
                "`srstatus {case} open`, `srstatus {case} attention_needed what they ask` or "
                "`srstatus {case} closed their answer`. When Microsoft has answered, press Resolve."
            ).format(sr=sr.id, case=case.id)
        if not await self.scheduler.send(key, job, user, text, case.number, now):
            return 0  # send() rescheduled the job with backoff
        count = int(job.get("count", 0)) + 1
        await self.scheduler.finish(
            key, {**job, "count": count, "attempts": 0, "due": iso(now + self.manual_every)}
        )
        return 1

    async def run_pending(self, key: str, job: dict[str, Any], now: datetime) -> int:
        """``sr_pending``: tell the person once if a filing's outcome stayed unknown; expire."""
        case = await self.store.get_case(int(job["case"]))
        done = case is None or case.service_request is not None or case.state not in ESCALATABLE
        if done or job.get("outcome") not in ("unknown", "sending") or job.get("reminded"):
            await self.scheduler.finish(key, None)
            return 0
        assert case is not None
        user = await self.store.get_user(str(job.get("by", "")))
        if user is None:
            await self.scheduler.finish(key, None)
            return 0
        with use_locale(user.locale):
            text = _(
                "The escalation of {case} to Microsoft did not finish: Partner Center may or may "
                "not have filed it. Press Escalate (or `escalate {case} retry`) to try again; it "
                "reuses request id {rid}, so Microsoft files it at most once."
            ).format(case=case.id, rid=job.get("request_id"))
        if not await self.scheduler.send(key, job, user, text, case.number, now):
            return 0
        await self.scheduler.finish(
            key, {**job, "reminded": True, "attempts": 0, "due": iso(now + PENDING_KEEP)}
        )
        return 1


def _topic_choices(topics: list[SupportTopic]) -> tuple[Choice, ...]:
    """Topics as choices; the name is the value (readable when typed), made unique if needed."""
    seen: dict[str, int] = {}
    for topic in topics:
        seen[topic.name.casefold()] = seen.get(topic.name.casefold(), 0) + 1
    out = []
    for topic in topics:
        name = topic.name or topic.id
        value = name if seen.get(topic.name.casefold(), 0) == 1 else f"{name} ({topic.id})"
        out.append(Choice(value, value))
    return tuple(out)


def describe_poll(job: dict[str, Any], user: User, case: Case | None) -> str | None:
    """For `reminders`: the owner's next look at Microsoft's service request."""
    if case is None or case.owner != user.id or case.state != State.ESCALATED:
        return None
    if job.get("mode") == "api":
        return _("Microsoft service request status check")
    return _("check the Microsoft service request in the Partner Center portal")


def register(runtime: Runtime, partner_center: PartnerCenterClient) -> EscalationFlow:
    """Add the escalation commands, form and job types to ``runtime``."""
    flow = EscalationFlow(runtime, partner_center)
    desk = runtime.desk
    # The flow's own commands (escalate, srstatus), and note with its --microsoft option.
    desk.add_commands(flow)
    desk.add_command("note", flow.cmd_note)
    desk.forms.add(
        FormDecl(
            "escalate",
            Action.ESCALATE,
            N_("Escalate {case} to Microsoft"),
            flow.fields(),
            flow.form_complete,
            on_case=True,
            intro=flow.form_intro,
            load=flow.form_load,
        )
    )
    runtime.scheduler.add_job_type(POLL_JOB, flow.run_poll, describe_poll)
    runtime.scheduler.add_job_type(PENDING_JOB, flow.run_pending)
    runtime.add_flow(flow)
    return flow


__all__ = [
    "EscalationFlow",
    "agent_locale",
    "flow_of",
    "parse_contact",
    "pending_key",
    "poll_key",
    "register",
]
