"""Case cards and list lines: what a viewer may see of a case, and the buttons that fit."""

from __future__ import annotations

from datetime import datetime

from bot.attachments import size_text
from bot.domain import (
    STATE_LABELS,
    Actor,
    AuditEntry,
    Case,
    Customer,
    Kind,
    Role,
    State,
    User,
    audit_wording,
    visible_attachments,
    visible_audit,
)
from bot.i18n import N_, _, format_amount, format_days, format_time, ngettext
from bot.kernel.model import ActionRef, Button, ButtonStyle, CardFact, CaseCard
from bot.money import Money
from bot.policy import allowed, can_see_internal
from conversations.forms import CATEGORY_LABELS, OUTCOME_LABELS, VIA_LABELS
from conversations.registry import REGISTRY
from conversations.text import u

# A Microsoft service request's status and how it was filed: in English the words of
# `srstatus` and the config, translated for other locales.
SR_STATUS_LABELS = {
    "open": N_("open"),
    "attention_needed": N_("attention_needed"),
    "closed": N_("closed"),
}
SR_MODE_LABELS = {"api": N_("api"), "manual": N_("manual")}


def sr_status_label(status: str) -> str:
    """A service request status (``attention_needed``…) in the current locale."""
    return _(SR_STATUS_LABELS[status]) if status in SR_STATUS_LABELS else status


def sr_mode_label(mode: str) -> str:
    """How a service request was filed (``api`` or ``manual``), in the current locale."""
    return _(SR_MODE_LABELS[mode]) if mode in SR_MODE_LABELS else mode


ROLE_LABELS = {"lead": N_("lead"), "agent": N_("agent"), "customer": N_("customer")}


def role_label(role: str) -> str:
    """A role's value (``lead``…) as people read it, in the current locale."""
    return _(ROLE_LABELS[role]) if role in ROLE_LABELS else role


# Where a change was made (an audit entry's channel), as people read it.
CHANNEL_LABELS = {
    "local": N_("terminal chat"),
    "web": N_("web page"),
    "slack": N_("Slack"),
    "teams": N_("Teams"),
    "cli": N_("command line"),
    "partner-center": N_("Partner Center"),
    "partner_center": N_("Partner Center"),
    "reminder": N_("billing-bot"),
    "scheduler": N_("billing-bot"),
}


def channel_label(channel: str) -> str:
    """An audit entry's channel (``local``, ``web``…) in the current locale."""
    return _(CHANNEL_LABELS[channel]) if channel in CHANNEL_LABELS else channel


def via_label(via: object) -> str:
    """How the customer was told (an ``InformedVia`` or its value), in the current locale."""
    for key, label in VIA_LABELS.items():
        if via == key or via == key.value:
            return _(label)
    return str(via)


def local_time(when: datetime, tz: str) -> str:
    """A UTC time shown in the viewer's time zone and locale."""
    return format_time(when, tz)


def money(value: Money) -> str:
    return format_amount(value.amount, value.currency)


def age(since: datetime, now: datetime) -> str:
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 3600:
        n = max(1, seconds // 60)
        return ngettext("{n} minute", "{n} minutes", n).format(n=n)
    if seconds < 86400 * 2:
        n = seconds // 3600
        return ngettext("{n} hour", "{n} hours", n).format(n=n)
    return format_days(seconds // 86400)


def state_label(state: State) -> str:
    return _(STATE_LABELS[state])


def _button(label: str, name: str, case: Case, style: ButtonStyle = ButtonStyle.DEFAULT) -> Button:
    return Button(label, ActionRef(name, case.id, case.stage), style)


def buttons_for(case: Case, viewer: Actor, customer_tenant: str | None) -> list[Button]:
    """Exactly the buttons that fit the case's state and the viewer's role.

    A button runs the command it names; whether the viewer may press it is the
    policy's answer for that command's declared action (:mod:`conversations.registry`).
    """
    if viewer.role not in (Role.AGENT, Role.LEAD):
        return []
    candidates: list[Button] = []
    s = case.state
    if s in (State.OPEN, State.REOPENED) or (
        s == State.IN_PROGRESS and case.owner != viewer.user_id
    ):
        if case.owner != viewer.user_id:
            candidates.append(_button(_("Take"), "take", case, ButtonStyle.PRIMARY))
    if s in (State.OPEN, State.IN_PROGRESS, State.REOPENED):
        candidates.append(_button(_("Escalate"), "escalate", case))
    if s in (State.OPEN, State.IN_PROGRESS, State.ESCALATED, State.REOPENED):
        candidates.append(_button(_("Resolve"), "resolve", case, ButtonStyle.PRIMARY))
        candidates.append(_button(_("Note"), "note", case))
    if s == State.RESOLVED:
        candidates.append(_button(_("Customer informed"), "informed", case, ButtonStyle.PRIMARY))
    if s in (State.OPEN, State.IN_PROGRESS, State.ESCALATED, State.RESOLVED, State.REOPENED):
        label = _("Reassign") if case.owner else _("Assign")
        candidates.append(_button(label, "assign", case))
    if s == State.CUSTOMER_INFORMED:
        candidates.append(_button(_("Close"), "close", case, ButtonStyle.PRIMARY))
    if s in (State.RESOLVED, State.CUSTOMER_INFORMED, State.CLOSED):
        candidates.append(_button(_("Reopen"), "reopen", case))
    if s in (State.OPEN, State.IN_PROGRESS, State.ESCALATED):
        candidates.append(_button(_("Cancel case"), "cancel", case, ButtonStyle.DANGER))
    shown = []
    for b in candidates:
        spec = REGISTRY.get(b.action.name)
        # A command no module declared in this process (a flow not wired in) has no button.
        if spec is not None and allowed(viewer, spec.action, case, customer_tenant=customer_tenant):
            shown.append(b)
    return shown


def case_card(
    case: Case,
    customer: Customer | None,
    viewer: Actor,
    viewer_tz: str,
    names: dict[str, str],
    now: datetime,
    customer_tenant: str | None,
) -> CaseCard:
    """The card of ``case`` as ``viewer`` may see it (no internal notes for customers)."""
    internal = can_see_internal(viewer)
    kind = _("Dispute") if case.kind == Kind.DISPUTE else _("Question")
    title = _("{case} · {kind} · {customer}").format(
        case=case.id, kind=kind, customer=u(customer.name if customer else case.customer_id)
    )
    facts = [
        CardFact(_("State"), state_label(case.state)),
        CardFact(
            _("Owner"), u(names.get(case.owner, case.owner)) if case.owner else _("nobody yet")
        ),
        CardFact(_("Category"), _(CATEGORY_LABELS[case.category])),
        CardFact(_("Age"), age(case.created_at, now)),
    ]
    if case.subscription_id:
        facts.append(CardFact(_("Subscription"), u(case.subscription_id)))
    if case.invoice:
        facts.append(CardFact(_("Invoice"), u(case.invoice)))
    if case.dispute:
        facts.append(CardFact(_("Disputed"), money(case.dispute.amount)))
        facts.append(CardFact(_("Reason"), u(case.dispute.reason)))
        if case.dispute.outcome:
            outcome = _(OUTCOME_LABELS[case.dispute.outcome])
            if case.dispute.credited:
                outcome = _("{outcome}: {amount}").format(
                    outcome=outcome, amount=money(case.dispute.credited)
                )
            facts.append(CardFact(_("Outcome"), outcome))
    if not case.dispute or case.description != case.dispute.reason:
        facts.append(CardFact(_("Description"), u(case.description)))
    if case.resolution:
        facts.append(CardFact(_("Resolution"), u(case.resolution)))
    if case.cancel_reason:
        facts.append(CardFact(_("Cancelled because"), u(case.cancel_reason)))
    comments = case.comments
    if comments:
        last_comment = comments[-1]
        facts.append(
            CardFact(
                ngettext("{n} comment", "{n} comments", len(comments)).format(n=len(comments)),
                _("latest by {who}: {text}").format(
                    who=u(names.get(last_comment.actor, last_comment.actor)),
                    text=u(str(last_comment.details.get("text", ""))),
                ),
            )
        )
    if case.informed_at and case.informed_via:
        told = _("{via}, {when}").format(
            via=via_label(case.informed_via), when=local_time(case.informed_at, viewer_tz)
        )
        if case.informed_text:
            told = _("{how} — {text}").format(how=told, text=u(case.informed_text))
        facts.append(CardFact(_("Customer told"), told))
    if internal and case.service_request:
        sr = case.service_request
        facts.append(
            CardFact(
                _("Microsoft request"),
                _("{id} ({mode}, {status})").format(
                    id=u(sr.id),
                    mode=sr_mode_label(sr.mode),
                    status=sr_status_label(sr.status),
                ),
            )
        )
    if internal and case.notes:
        last = case.notes[-1]
        facts.append(
            CardFact(
                ngettext("{n} internal note", "{n} internal notes", len(case.notes)).format(
                    n=len(case.notes)
                ),
                _("latest by {who}: {text}").format(
                    who=u(names.get(last.author, last.author)), text=u(last.text)
                ),
            )
        )
    files = attachment_lines(case, viewer, viewer_tz, names)
    if files:
        facts.append(
            CardFact(
                ngettext("{n} attachment", "{n} attachments", len(files)).format(n=len(files)),
                "\n".join(files),
            )
        )
    history = [
        _("{when} · {who} {what}").format(
            when=local_time(entry.at, viewer_tz),
            who=u(names.get(entry.actor, entry.actor)),
            what=audit_label(entry, internal=internal),
        )
        for entry in visible_audit(case.audit, internal=internal)[-4:]
    ]
    return CaseCard(
        case_id=case.id,
        title=title,
        state=case.state.value,
        state_label=state_label(case.state),
        facts=facts,
        history=history,
        buttons=buttons_for(case, viewer, customer_tenant),
        stage=case.stage,
    )


def attachment_path(case_id: str, attachment_id: str) -> str:
    """Where the web page serves a file kept in the store (to those who may see the case)."""
    return f"/cases/{case_id}/attachments/{attachment_id}"


def attachment_lines(case: Case, viewer: Actor, viewer_tz: str, names: dict[str, str]) -> list[str]:
    """One line per file the viewer may see: name, size, who, when, and where it is."""
    internal = can_see_internal(viewer)
    lines = []
    for a in visible_attachments(case.attachments, internal=internal):
        where = a.link or (attachment_path(case.id, a.id) if a.stored else "")
        parts = [u(a.name)]
        if a.size is not None:
            parts.append(size_text(a.size))
        parts.append(u(names.get(a.by, a.by)))
        parts.append(local_time(a.at, viewer_tz))
        if internal and a.internal:
            parts.append(_("internal"))
        if where:
            parts.append(u(where))
        lines.append(" · ".join(parts))
    return lines


def audit_label(entry: AuditEntry, *, internal: bool) -> str:
    """What an audit entry says the actor did, worded for the viewer, in the current locale."""
    wording = audit_wording(entry.action, internal=internal)
    return _(wording) if wording else ""


def list_line(
    case: Case, customer: Customer | None, names: dict[str, str], now: datetime, viewer: Actor
) -> str:
    owner = u(names.get(case.owner, case.owner)) if case.owner else _("unassigned")
    desc = case.description if len(case.description) <= 60 else case.description[:57] + "…"
    return _("{case} · {customer} · {state} · {owner} · {age} ago — {desc}").format(
        case=case.id,
        customer=u(customer.name if customer else case.customer_id),
        state=state_label(case.state),
        owner=owner,
        age=age(case.last_activity(internal=can_see_internal(viewer)), now),
        desc=u(desc),
    )


# The kinds whose words (a resolution, a reason, a comment, what the customer was told)
# the full history shows after the event.
DETAILED = frozenset(
    {"resolved", "cancelled", "withdrawn", "reopened", "customer_informed", "commented"}
)


def full_history(case: Case, viewer: Actor, viewer_tz: str, names: dict[str, str]) -> list[str]:
    """Every audit entry the viewer may see as a line (:data:`bot.domain.AUDIT_KINDS`)."""
    internal = can_see_internal(viewer)
    lines = []
    for entry in visible_audit(case.audit, internal=internal):
        details = ""
        if entry.action in DETAILED:
            text = (
                entry.details.get("resolution")
                or entry.details.get("reason")
                or entry.details.get("text")  # what `informed BILL-7 call <text>` recorded
                or ""
            )
            via = entry.details.get("via")
            via = via_label(via) if via else via
            details = " — " + ", ".join(str(x) for x in (via, text) if x) if (via or text) else ""
            details = u(details) if details else ""
        lines.append(
            _("{when} · {who} {what}{details} (via {channel})").format(
                when=local_time(entry.at, viewer_tz),
                who=u(names.get(entry.actor, entry.actor)),
                what=audit_label(entry, internal=internal),
                details=details,
                channel=channel_label(entry.channel),
            )
        )
    return lines


__all__ = [
    "User",
    "attachment_lines",
    "attachment_path",
    "audit_label",
    "buttons_for",
    "case_card",
    "full_history",
    "list_line",
    "local_time",
    "age",
]
