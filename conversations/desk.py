"""The billing desk: every command of PRODUCT.md as a channel-neutral flow.

:meth:`Desk.handle` takes one :class:`Message` (typed text, a click or a form
submission) and returns the replies for the sender plus notifications for
other people. Every action is checked by the one authorization policy; every
change goes through the domain and is stored with an optimistic version, so
a stale card or a second click answers "already done" and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, cast

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.domain import (
    TRANSITIONS,
    Actor,
    Case,
    Category,
    Conflict,
    Customer,
    Dispute,
    DomainError,
    InformedVia,
    Kind,
    NotFound,
    Outcome,
    Role,
    ServiceRequest,
    State,
    User,
    format_case_id,
    parse_case_id,
    transition_error,
)
from bot.i18n import N_, _, use_locale
from bot.kernel.model import (
    ActionRef,
    Button,
    ButtonStyle,
    FieldKind,
    Form,
    FormField,
    Message,
    Notification,
    Reply,
)
from bot.kernel.scheduler import (
    loop_key,
    loop_op,
    notify_key,
    notify_op,
    snooze_op,
    stop_loop_op,
    watch_op,
)
from bot.money import Money, MoneyError, parse_money
from bot.policy import Action, Forbidden, allowed, check
from bot.storage import Op, StorageError, Store
from bot.workhours import WorkingHours
from conversations import help as help_texts
from conversations.cards import case_card, full_history, list_line, local_time
from conversations.commands import LIST_FILTERS, Command, parse
from conversations.directory import Directory, tenant_key
from conversations.forms import (
    CATEGORY_LABELS,
    OUTCOME_LABELS,
    SEVERITY_LABELS,
    SNOOZE_LABELS,
    VIA_LABELS,
    ValidationError,
    choices,
    credited_field,
    validate,
)
from conversations.registry import REGISTRY, Registry, TeamsMenu, command, declared
from conversations.text import clean_input, u

log = logging.getLogger(__name__)

# The English words work everywhere; the Chinese ones too (like the command aliases).
CANCEL_WORDS = {"cancel", "quit form", "stop", "abort", "取消"}
SKIP_WORDS = {"skip", "-", "跳过"}
YES = {"yes", "y", "ok", "create", "是", "好", "确定", "创建"}
NO = {"no", "n", "否", "不"}
LIST_LIMIT = 20
MAX_TEXT = 10_000  # a typed command; descriptions and notes in forms have their own limits
# What each form does, checked before a form is opened by a click or taken as submitted.
FORM_ACTIONS = {
    "ask": Action.ASK,
    "dispute": Action.DISPUTE,
    "resolve": Action.RESOLVE,
    "informed": Action.INFORMED,
    "reopen": Action.REOPEN,
    "cancel": Action.CANCEL,
    "note": Action.NOTE,
    "assign": Action.ASSIGN,
    "escalate": Action.ESCALATE,
    "snooze": Action.SNOOZE,
}


@dataclass(slots=True)
class Result:
    """What handling one message produced."""

    replies: list[Reply] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)


@dataclass(slots=True)
class Turn:
    """Everything a flow needs about the message being handled."""

    msg: Message
    user: User
    actor: Actor
    now: datetime
    clicked: ActionRef | None = None
    case_number: int | None = None  # the case this turn works on, once loaded


Handler = Callable[[Turn, Command], Awaitable[Result]]
FieldsFn = Callable[
    [Turn, dict[str, str], dict[str, str]], Awaitable[tuple[str, list[FormField], str | None]]
]
CompleteFn = Callable[[Turn, dict[str, str], dict[str, str], Op], Awaitable[Result]]


@dataclass(slots=True)
class FormSpec:
    """A form added by a flow module (see :meth:`Desk.add_form`).

    ``fields(turn, context, answers so far)`` gives title, fields and intro;
    ``complete(turn, values, context, clear_op)`` acts on the validated values
    and must commit ``clear_op`` (which ends the form) with its own change.
    """

    fields: FieldsFn
    complete: CompleteFn


class _Stale(Exception):
    """A click on a card older than the case: answered with the current card."""

    def __init__(self, case: Case) -> None:
        super().__init__(case.id)
        self.case = case


async def _nothing_due(user: User, at: datetime) -> list[tuple[datetime, str, str]]:
    return []


def _require_move(case: Case, target: State) -> None:
    """Refuse early (before a form asks anything) when ``case`` cannot move to ``target``."""
    if target not in TRANSITIONS[case.state]:
        raise DomainError(transition_error(case, target))


def applied_key(message_id: str | None) -> str:
    return f"applied:{message_id}"


def _reply(text: str, **kw: Any) -> Result:
    return Result([Reply(text=text, **kw)])


class Desk:
    """The conversation flows, shared by every channel."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Clock | None = None,
        commands: Registry | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock or SystemClock()
        self.directory = Directory(store, settings)
        # Set by the runtime: what the scheduler would send to a person by a time.
        self.scheduler_view: Callable[[User, datetime], Awaitable[list[tuple[datetime, str, str]]]]
        self.scheduler_view = _nothing_due
        self.forms: dict[str, FormSpec] = {}
        # The commands this desk knows: each declared once, on its handler (``@command``).
        self.commands = commands if commands is not None else REGISTRY
        self.handlers: dict[str, Handler] = {}
        self.add_commands(self)

    # ------------------------------------------------------------------ entry
    async def handle(self, msg: Message) -> Result:
        """Answer one message. Never raises for bad input: errors become friendly replies."""
        msg.text = clean_input(msg.text)
        if msg.form_values is not None:
            msg.form_values = {k: clean_input(str(v)) for k, v in msg.form_values.items()}
        if len(msg.text) > MAX_TEXT:
            with use_locale(msg.locale):  # the person is not looked up yet: the platform's
                text = _("That message is too long for me: at most {n} characters.")
            return _reply(text.format(n=MAX_TEXT), kind="error")
        try:
            user, actor = await self.directory.resolve(msg)
        except StorageError as exc:
            log.error("storage error while resolving a user: %s", exc)
            with use_locale(msg.locale):
                text = _("The billing desk's storage is not available right now.")
            return _reply(text, kind="error")
        with use_locale(user.locale or msg.locale):
            turn = Turn(msg, user, actor, self.clock.now(), msg.action)
            done = self.store.event(applied_key(msg.id)) if msg.id else None
            if done is not None:
                return await self._already_applied(turn, done)
            try:
                return await self._dispatch(turn)
            except _Stale as stale:
                return await self._stale_reply(turn, stale.case)
            except (DomainError, MoneyError) as exc:
                return await self._error(turn, exc)
            except StorageError as exc:
                log.error("storage error while handling a message: %s", exc)
                return _reply(
                    _(
                        "I could not save that: the billing desk's storage is not writable right "
                        "now. Nothing was changed; please try again in a minute."
                    ),
                    kind="error",
                )

    async def _error(self, turn: Turn, exc: Exception) -> Result:
        out = _reply(str(exc), kind="error")
        if isinstance(exc, Conflict) and turn.case_number is not None:
            # Someone else's change won the race: show what the case looks like now.
            case = await self.store.get_case(turn.case_number)
            if case:
                out.replies[0].kind = "stale"
                out.replies.append(
                    Reply(card=await self._card(turn, case), replace=turn.clicked is not None)
                )
        return out

    async def _already_applied(self, turn: Turn, done: dict[str, Any]) -> Result:
        """The same request again (a redelivery after a crash): show the result, do nothing."""
        number = done.get("case")
        case = await self.store.get_case(int(number)) if number else None
        if case is not None:
            tenant = await self._customer_tenant(case)
            if not allowed(turn.actor, Action.STATUS, case, customer_tenant=tenant):
                case = None  # a replayed id shows nobody a case they may not see
        if case is None:
            return _reply(_("Already done."), kind="stale")
        return Result(
            [
                Reply(
                    text=_("Already done: {case}.").format(case=case.id),
                    card=await self._card(turn, case),
                    kind="stale",
                )
            ]
        )

    def _applied(self, turn: Turn, case_number: int) -> list[Op]:
        """Marks this request as done, in the same commit as the change it made."""
        if not turn.msg.id:
            return []
        doc = {"case": case_number, "expires": (turn.now + timedelta(days=2)).isoformat()}
        return [self.store.event_record_op(applied_key(turn.msg.id), doc, expect=None)]

    async def _dispatch(self, turn: Turn) -> Result:
        msg = turn.msg
        if msg.form_values is not None and msg.form_id:
            return await self._submit_form(turn, msg.form_id, msg.form_values, msg.form_context)
        state = await self.store.get_conversation(self._conv_key(msg))
        if state and state.get("form"):
            text = msg.text
            if msg.action and msg.action.name == "answer":
                text = msg.action.value or ""
            elif msg.action:
                # A click on a card while a form is open: drop the form, do the click.
                await self.store.save_conversation(self._conv_key(msg), None)
                return await self._command(turn, self._click_command(msg.action))
            return await self._form_step(turn, state, text)
        if msg.action:
            if msg.action.name == "answer":
                return _reply(
                    _("That question is no longer open. Type `help` to see what I can do.")
                )
            if msg.action.name == "open_form":
                form_id = msg.action.value or "ask"
                await self._check_form(turn, form_id, {})
                return await self._start_form(turn, form_id, {}, prefill={})
            return await self._command(turn, self._click_command(msg.action))
        return await self._command(turn, parse(msg.text, self.commands))

    @staticmethod
    def _click_command(action: ActionRef) -> Command:
        return Command(action.name, " ".join(p for p in (action.case_id, action.value) if p))

    @staticmethod
    def _conv_key(msg: Message) -> str:
        return f"{msg.channel.value}|{msg.conversation}|{msg.user}"

    async def _command(self, turn: Turn, cmd: Command) -> Result:
        handler = self.handlers.get(cmd.name)
        spec = self.commands.get(cmd.name)
        if handler is None or spec is None:
            text = _("I don't know the command “{word}”.").format(word=u(cmd.name[:40]))
            out = await self.cmd_help(turn, Command("help", ""))
            out.replies.insert(0, Reply(text=text, kind="error"))
            return out
        if not spec.handler_checks:
            # The declared action; a ``handler_checks`` handler checks it itself (on the
            # case it loads: tenant and owner rules; or auditing a refusal).
            check(turn.actor, spec.action)
        return await handler(turn, cmd)

    # ---------------------------------------------------------------- helpers
    async def _names(self) -> dict[str, str]:
        return self.store.user_names()

    async def _customer_tenant(self, case: Case) -> str | None:
        customer = await self.store.get_customer(case.customer_id)
        return tenant_key(customer) if customer else None

    async def _card(self, turn: Turn, case: Case) -> Any:
        customer = await self.store.get_customer(case.customer_id)
        return case_card(
            case,
            customer,
            turn.actor,
            turn.user.time_zone,
            await self._names(),
            turn.now,
            tenant_key(customer) if customer else None,
        )

    async def _load_case(self, turn: Turn, number: int | None, action: Action, usage: str) -> Case:
        if number is None:
            raise DomainError(_("Which case? Use it like this: `{usage}`").format(usage=usage))
        case = await self.store.get_case(number)
        if case is None:
            raise NotFound(_("I can't find {case}.").format(case=format_case_id(number)))
        turn.case_number = case.number
        tenant = await self._customer_tenant(case)
        if self._stale(turn, case):
            check(turn.actor, Action.STATUS, case, customer_tenant=tenant)
            raise _Stale(case)
        check(turn.actor, action, case, customer_tenant=tenant)
        return case

    def _stale(self, turn: Turn, case: Case) -> bool:
        clicked = turn.clicked
        return bool(
            clicked
            and clicked.case_id == case.id
            and clicked.version is not None
            and clicked.version != case.stage
        )

    async def _stale_reply(self, turn: Turn, case: Case) -> Result:
        return Result(
            [
                Reply(
                    text=_(
                        "Already done: {case} changed since this card was shown. Here it is now."
                    ).format(case=case.id),
                    kind="stale",
                    private=True,
                ),
                Reply(card=await self._card(turn, case), replace=True),
            ]
        )

    async def _save_and_show(
        self,
        turn: Turn,
        case: Case,
        text: str,
        notifications: list[Notification] | None = None,
        extra_ops: list[Op] | None = None,
    ) -> Result:
        await self.store.save_case(case, [*(extra_ops or []), *self._applied(turn, case.number)])
        card = await self._card(turn, case)
        return Result(
            [Reply(text=text, card=card, replace=turn.clicked is not None)],
            notifications or [],
        )

    def _ensure_started(self, turn: Turn, case: Case) -> None:
        """Work on an open or reopened case starts it (and gives it an owner if it has none)."""
        if case.state in (State.OPEN, State.REOPENED):
            if case.owner is None:
                case.set_owner(turn.actor.user_id, turn.actor, turn.now)
            case.start(turn.actor, turn.now)

    def _notify_op(self, user_id: str, case: Case, kind: str, text: str, turn: Turn) -> Op:
        """A durable notification job, written in the same commit as the change it reports."""
        key = notify_key(case.id, case.stage, kind, user_id)
        return notify_op(key, user_id, text, case.number, turn.now)

    # ---------------------------------------------------------------- commands
    @command(
        "help",
        aliases=("?", "h", "帮助"),
        action=Action.HELP,
        usage="help [command]",
        help=N_("this help, or help on one command"),
        teams_menu=TeamsMenu(1, "What the billing desk can do"),
    )
    async def cmd_help(self, turn: Turn, cmd: Command) -> Result:
        check(turn.actor, Action.HELP)
        topic = cmd.args.strip().lower()
        text = help_texts.help_text(turn.actor.role, topic, self.commands, self.handlers)
        return _reply(text, kind="help")

    @command(
        "resources",
        aliases=("资源",),
        action=Action.RESOURCES,
        usage="resources",
        help=N_("Microsoft's resources for billing questions"),
        teams_menu=TeamsMenu(10, "Microsoft resources for billing questions"),
    )
    async def cmd_resources(self, turn: Turn, cmd: Command) -> Result:
        check(turn.actor, Action.RESOURCES)
        return _reply(help_texts.resources_text(), kind="help")

    @command(
        "ask",
        aliases=("提问",),
        action=Action.ASK,
        usage="ask [text]",
        help=N_("a new billing question (a short form)"),
        form="ask",
        teams_menu=TeamsMenu(2, "A new billing question (a short form)"),
    )
    async def cmd_ask(self, turn: Turn, cmd: Command) -> Result:
        check(turn.actor, Action.ASK)
        return await self._start_form(turn, "ask", {}, prefill={"description": cmd.args})

    @command(
        "dispute",
        aliases=("争议",),
        action=Action.DISPUTE,
        usage="dispute [invoice]",
        help=N_("a new billing dispute to report to Microsoft"),
        form="dispute",
        teams_menu=TeamsMenu(3, "A billing dispute to report to Microsoft"),
    )
    async def cmd_dispute(self, turn: Turn, cmd: Command) -> Result:
        check(turn.actor, Action.DISPUTE)
        invoice = cmd.words[0] if cmd.words else ""
        return await self._start_form(turn, "dispute", {}, prefill={"invoice": invoice})

    @command(
        "status",
        aliases=("show", "状态"),
        action=Action.STATUS,
        usage="status BILL-n",
        help=N_("a case card and its history (or just BILL-n)"),
        handler_checks=True,
        teams_menu=TeamsMenu(5, "A case card and its history: status BILL-7"),
    )
    async def cmd_status(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self._load_case(turn, number, Action.STATUS, "status BILL-7")
        card = await self._card(turn, case)
        history = full_history(case, turn.actor, turn.user.time_zone, await self._names())
        text = _("History of {case}:").format(case=case.id) + "\n" + "\n".join(history)
        return Result([Reply(card=card, replace=turn.clicked is not None), Reply(text=text)])

    @command(
        "list",
        aliases=("ls", "cases", "列表"),
        action=Action.LIST,
        usage="list [mine|open|unassigned|escalated|awaiting-customer|all] [customer NAME]",
        help=N_("cases, newest activity first"),
        teams_menu=TeamsMenu(4, "Cases: mine, open, unassigned, escalated, all"),
    )
    async def cmd_list(self, turn: Turn, cmd: Command) -> Result:
        check(turn.actor, Action.LIST)
        words = cmd.words
        flt = "open"
        customer_name: str | None = None
        if words and words[0].lower() in LIST_FILTERS:
            flt = words[0].lower()
            words = words[1:]
        if words and words[0].lower() == "customer":
            customer_name = " ".join(words[1:]).strip()
            if not customer_name:
                raise DomainError(_("Which customer? `list customer Contoso`"))
        elif words:
            raise DomainError(
                _("I can list: {filters}, optionally followed by `customer NAME`.").format(
                    filters=", ".join(LIST_FILTERS)
                )
            )
        customer: Customer | None = None
        if customer_name:
            customer = await self.directory.find_customer(customer_name)
            if customer is None or (
                turn.actor.role == Role.CUSTOMER and tenant_key(customer) != turn.actor.tenant_id
            ):
                raise NotFound(
                    _("I don't know a customer called {name}.").format(name=u(customer_name))
                )
        # Only a customer's view is limited to tenants; staff need no pass over every customer.
        tenants = (
            {c.id: tenant_key(c) for c in await self.store.customers()}
            if turn.actor.role == Role.CUSTOMER
            else {}
        )
        me = turn.actor.user_id

        def visible(customer_id: str) -> bool:
            if turn.actor.role == Role.CUSTOMER:
                return tenants.get(customer_id) == turn.actor.tenant_id
            return True

        def keep(c: Case) -> bool:
            if not visible(c.customer_id) or (customer and c.customer_id != customer.id):
                return False
            return {
                "mine": c.owner == me and c.is_live and c.state != State.CUSTOMER_INFORMED,
                "open": c.state not in (State.CLOSED, State.CANCELLED, State.CUSTOMER_INFORMED),
                "unassigned": c.owner is None and c.state in (State.OPEN, State.REOPENED),
                "escalated": c.state == State.ESCALATED,
                "awaiting-customer": c.state == State.RESOLVED,
                "all": True,
            }[flt]

        narrow: dict[str, Any] = {}
        if flt == "mine":
            narrow["owner"] = me  # through the owner index, not a scan of every live case
        elif flt == "unassigned":
            narrow["owner"] = None
        cases, total = await self.store.list_cases(
            predicate=keep,
            include_archived=flt == "all",
            **narrow,
            summary_predicate=lambda s: (
                visible(s.customer_id) and (customer is None or s.customer_id == customer.id)
            ),
            limit=LIST_LIMIT,
        )
        titles = {
            "mine": _("Your cases"),
            "open": _("Open cases"),
            "unassigned": _("Cases nobody has taken"),
            "escalated": _("Cases escalated to Microsoft"),
            "awaiting-customer": _("Resolved, customer not told yet"),
            "all": _("All cases"),
        }
        title = titles[flt]
        if customer:
            title = _("{title} of {customer}").format(title=title, customer=u(customer.name))
        if not cases:
            return _reply(_("{title}: none.").format(title=title), kind="list")
        names = await self._names()
        customers = {
            cid: await self.store.get_customer(cid) for cid in {c.customer_id for c in cases}
        }
        lines = [list_line(c, customers.get(c.customer_id), names, turn.now) for c in cases]
        text = f"{title} ({total}):\n" + "\n".join(lines)
        if total > len(cases):
            text += "\n" + _("…and {n} more.").format(n=total - len(cases))
        return _reply(text, kind="list")

    @command(
        "take",
        aliases=("接手",),
        action=Action.TAKE,
        usage="take BILL-n",
        help=N_("the case becomes yours"),
        handler_checks=True,
        teams_menu=TeamsMenu(6, "Take a case: take BILL-7"),
    )
    async def cmd_take(self, turn: Turn, cmd: Command) -> Result:
        number, _rest = cmd.case_and_rest()
        case = await self._load_case(turn, number, Action.TAKE, "take BILL-7")
        if case.state in (State.CANCELLED, State.CLOSED):
            raise DomainError(transition_error(case, State.IN_PROGRESS))
        if case.owner == turn.actor.user_id and case.state not in (State.OPEN, State.REOPENED):
            raise DomainError(_("{case} is already yours.").format(case=case.id))
        if case.owner != turn.actor.user_id:
            case.set_owner(turn.actor.user_id, turn.actor, turn.now)
        if case.state in (State.OPEN, State.REOPENED):
            case.start(turn.actor, turn.now)
        return await self._save_and_show(turn, case, _("{case} is yours now.").format(case=case.id))

    @command(
        "assign",
        aliases=("assign-to", "分配"),
        action=Action.ASSIGN,
        usage="assign BILL-n USER",
        help=N_("give the case to someone (@mention or name)"),
        form="assign",
        handler_checks=True,
    )
    async def cmd_assign(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self._load_case(turn, number, Action.ASSIGN, "assign BILL-7 @maria")
        if not rest:
            return await self._start_form(turn, "assign", self._case_ctx(case), prefill={})
        return await self._do_assign(turn, case, rest.split()[0])

    async def _do_assign(self, turn: Turn, case: Case, who: str) -> Result:
        assignee = await self.directory.find_assignee(who, turn.msg)
        if assignee is None:
            raise NotFound(
                _(
                    "I don't know anyone called {name}. Use an @mention or a name from the config."
                ).format(name=u(who))
            )
        if assignee.role not in (Role.AGENT, Role.LEAD):
            raise DomainError(
                _("{name} is not on the billing team, so cannot own cases.").format(
                    name=u(assignee.display_name)
                )
            )
        case.set_owner(assignee.id, turn.actor, turn.now)
        if case.state in (State.OPEN, State.REOPENED) and assignee.id == turn.actor.user_id:
            case.start(turn.actor, turn.now)
        ops: list[Op] = []
        if assignee.id != turn.actor.user_id:
            with use_locale(assignee.locale):  # the assignee reads it, in their language
                note = _("{who} assigned {case} to you.").format(
                    who=turn.user.display_name, case=case.id
                )
            ops.append(self._notify_op(assignee.id, case, "assigned", note, turn))
        return await self._save_and_show(
            turn,
            case,
            _("{case} now belongs to {name}.").format(case=case.id, name=u(assignee.display_name)),
            extra_ops=ops,
        )

    @command(
        "note",
        aliases=("comment", "备注"),
        action=Action.NOTE,
        usage="note BILL-n text",
        help=N_("an internal note, never shown to the customer"),
        form="note",
        handler_checks=True,
    )
    async def cmd_note(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self._load_case(turn, number, Action.NOTE, "note BILL-7 called the customer")
        to_microsoft = False
        if rest.startswith("--microsoft"):
            to_microsoft = True
            rest = rest[len("--microsoft") :].strip()
        if not rest:
            return await self._start_form(turn, "note", self._case_ctx(case), prefill={})
        if case.state == State.CANCELLED:
            raise DomainError(
                _("{case} was cancelled; open a new case instead.").format(case=case.id)
            )
        case.add_note(rest, turn.actor, turn.now, to_microsoft=to_microsoft)
        return await self._save_and_show(
            turn, case, _("Internal note added to {case}.").format(case=case.id)
        )

    @command(
        "escalate",
        aliases=("上报",),
        action=Action.ESCALATE,
        usage="escalate BILL-n",
        help=N_("file a Microsoft service request for the case"),
        form="escalate",
        handler_checks=True,
    )
    async def cmd_escalate(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self._load_case(turn, number, Action.ESCALATE, "escalate BILL-7")
        if case.state not in (State.OPEN, State.IN_PROGRESS, State.REOPENED):
            raise DomainError(transition_error(case, State.ESCALATED))
        if rest:
            return await self._do_escalate(turn, case, {"request_id": rest.split()[0]})
        return await self._start_form(turn, "escalate", self._case_ctx(case), prefill={})

    async def _do_escalate(self, turn: Turn, case: Case, values: dict[str, str]) -> Result:
        request_field = FormField("request_id", _("Service request number"))
        request_id = validate(request_field, values.get("request_id", "")).value
        self._ensure_started(turn, case)
        case.escalate(
            ServiceRequest(
                id=request_id,
                mode="manual",
                status="open",
                filed_at=turn.now,
                title=self._sr_title(case),
            ),
            turn.actor,
            turn.now,
        )
        if values.get("severity"):
            case.audit[-1].details["severity"] = values["severity"]
        return await self._save_and_show(
            turn,
            case,
            _("{case} is escalated to Microsoft as service request {sr}.").format(
                case=case.id, sr=u(request_id)
            ),
        )

    @command(
        "resolve",
        aliases=("解决",),
        action=Action.RESOLVE,
        usage="resolve BILL-n text",
        help=N_("the outcome; a dispute: credit 120.00 EUR, partial 50.00 EUR or denied text"),
        form="resolve",
        handler_checks=True,
        teams_menu=TeamsMenu(7, "Record the outcome: resolve BILL-7 what was done"),
    )
    async def cmd_resolve(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self._load_case(turn, number, Action.RESOLVE, "resolve BILL-7 what was done")
        if not rest:
            return await self._start_form(turn, "resolve", self._case_ctx(case), prefill={})
        if case.kind == Kind.DISPUTE:
            outcome, credited, text = self._parse_outcome(case, rest)
            return await self._do_resolve(turn, case, text, outcome, credited)
        return await self._do_resolve(turn, case, rest, None, None)

    def _parse_outcome(self, case: Case, rest: str) -> tuple[Outcome, Money | None, str]:
        words = rest.split()
        head = words[0].lower()
        usage = _(
            "Resolve a dispute with Microsoft's outcome: `resolve {case} credit 120.00 EUR`, "
            "`resolve {case} partial 50.00 EUR` or `resolve {case} denied reason`."
        ).format(case=case.id)
        kinds = {
            "credit": Outcome.CREDIT_GRANTED,
            "partial": Outcome.PARTIAL_CREDIT,
            "denied": Outcome.DENIED,
        }
        if head not in kinds:
            raise DomainError(usage)
        outcome = kinds[head]
        if outcome == Outcome.DENIED:
            text = " ".join(words[1:])
            if not text:
                raise DomainError(
                    _("Say why Microsoft denied it: `resolve {case} denied reason`.").format(
                        case=case.id
                    )
                )
            return outcome, None, text
        if len(words) < 3:
            raise DomainError(usage)
        credited = parse_money(" ".join(words[1:3]))
        text = " ".join(words[3:]) or _("{outcome}: {amount}").format(
            outcome=_(OUTCOME_LABELS[outcome]), amount=str(credited)
        )
        return outcome, credited, text

    async def _do_resolve(
        self, turn: Turn, case: Case, text: str, outcome: Outcome | None, credited: Money | None
    ) -> Result:
        self._ensure_started(turn, case)
        case.resolve(text, turn.actor, turn.now, outcome=outcome, credited=credited)
        # The close-the-loop reminders start in the same commit as the resolution.
        return await self._save_and_show(
            turn,
            case,
            _(
                "{case} is resolved. Now tell the customer, then record it with "
                "`informed {case} email` (or call, chat, ticket, meeting)."
            ).format(case=case.id),
            extra_ops=[loop_op(case, turn.now)],
        )

    @command(
        "informed",
        aliases=("inform", "已告知"),
        action=Action.INFORMED,
        usage="informed BILL-n email|call|chat|ticket|meeting [text]",
        help=N_("the customer has been told the result: reminders stop"),
        form="informed",
        handler_checks=True,
        teams_menu=TeamsMenu(8, "The customer was told: informed BILL-7 email"),
    )
    async def cmd_informed(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self._load_case(turn, number, Action.INFORMED, "informed BILL-7 email")
        if not rest:
            return await self._start_form(turn, "informed", self._case_ctx(case), prefill={})
        head, _sep, text = rest.partition(" ")
        try:
            via = InformedVia(head.lower())
        except ValueError:
            raise DomainError(
                _("How was the customer told? One of: email, call, chat, ticket, meeting.")
            ) from None
        return await self._do_informed(turn, case, via, text.strip())

    async def _do_informed(self, turn: Turn, case: Case, via: InformedVia, text: str) -> Result:
        case.mark_informed(via, text, turn.actor, turn.now)
        job = await self.store.get_job(loop_key(case.number))
        if job is not None:
            case.audit[-1].details["reminders_sent"] = int(job.get("count", 0))
        return await self._save_and_show(
            turn,
            case,
            _("Recorded: the customer was told about {case} by {via}. Reminders stop.").format(
                case=case.id, via=_(VIA_LABELS[via])
            ),
            extra_ops=[stop_loop_op(case)],
        )

    async def _do_reopen(self, turn: Turn, case: Case, reason: str) -> Result:
        case.reopen(reason, turn.actor, turn.now)
        return await self._save_and_show(
            turn,
            case,
            _("{case} is reopened.").format(case=case.id),
            extra_ops=[stop_loop_op(case), watch_op(case, turn.now, self.settings)],
        )

    async def _do_cancel(self, turn: Turn, case: Case, reason: str) -> Result:
        case.cancel(reason, turn.actor, turn.now)
        return await self._save_and_show(
            turn,
            case,
            _("{case} is cancelled.").format(case=case.id),
            extra_ops=[stop_loop_op(case)],
        )

    @command(
        "reopen",
        aliases=("重新打开",),
        action=Action.REOPEN,
        usage="reopen BILL-n text",
        help=N_("work on a resolved or closed case again"),
        form="reopen",
        handler_checks=True,
    )
    async def cmd_reopen(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self._load_case(turn, number, Action.REOPEN, "reopen BILL-7 reason")
        if not rest:
            _require_move(case, State.REOPENED)  # before asking why
            return await self._start_form(turn, "reopen", self._case_ctx(case), prefill={})
        return await self._do_reopen(turn, case, rest)

    @command(
        "cancel",
        aliases=("取消",),
        action=Action.CANCEL,
        usage="cancel BILL-n reason",
        help=N_("cancel a case, e.g. a duplicate"),
        form="cancel",
        handler_checks=True,
    )
    async def cmd_cancel(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self._load_case(
            turn, number, Action.CANCEL, "cancel BILL-7 duplicate of BILL-3"
        )
        if not rest:
            _require_move(case, State.CANCELLED)  # before asking why
            return await self._start_form(turn, "cancel", self._case_ctx(case), prefill={})
        return await self._do_cancel(turn, case, rest)

    @command(
        "close",
        aliases=("关闭",),
        action=Action.CLOSE,
        usage="close BILL-n",
        help=N_("close a case once the customer was informed"),
        handler_checks=True,
    )
    async def cmd_close(self, turn: Turn, cmd: Command) -> Result:
        number, _rest = cmd.case_and_rest()
        case = await self._load_case(turn, number, Action.CLOSE, "close BILL-7")
        case.close(turn.actor, turn.now)
        return await self._save_and_show(
            turn, case, _("{case} is closed.").format(case=case.id), extra_ops=[stop_loop_op(case)]
        )

    @command(
        "snooze",
        aliases=("稍后提醒",),
        action=Action.SNOOZE,
        usage="snooze BILL-n 1h|4h|tomorrow",
        help=N_("pause the close-the-loop reminders"),
        form="snooze",
        handler_checks=True,
    )
    async def cmd_snooze(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self._load_case(turn, number, Action.SNOOZE, "snooze BILL-7 4h")
        if case.state != State.RESOLVED:
            raise DomainError(
                _("{case} has no reminders to snooze: only resolved cases remind.").format(
                    case=case.id
                )
            )
        if not rest:
            return await self._start_form(turn, "snooze", self._case_ctx(case), prefill={})
        return await self._do_snooze(turn, case, rest.split()[0].lower())

    async def _do_snooze(self, turn: Turn, case: Case, until: str) -> Result:
        if until not in SNOOZE_LABELS:
            raise DomainError(_("Snooze for 1h, 4h or until tomorrow: `snooze BILL-7 4h`."))
        job = await self.store.get_job(loop_key(case.number))
        if job is None or case.state != State.RESOLVED:
            raise DomainError(
                _("{case} has no reminders to snooze: only resolved cases remind.").format(
                    case=case.id
                )
            )
        hours = WorkingHours.parse(
            turn.user.time_zone,
            self.settings.reminders.working_hours,
            frozenset(self.settings.reminders.working_days),
        )
        when = {
            "1h": turn.now + timedelta(hours=1),
            "4h": turn.now + timedelta(hours=4),
            "tomorrow": hours.next_morning(turn.now),
        }[until]
        case.note_snooze(when, turn.actor, turn.now)
        await self.store.save_case(
            case, [snooze_op(job, case.number, when), *self._applied(turn, case.number)]
        )
        return _reply(
            _("Snoozed: I will remind you about {case} again at {when}.").format(
                case=case.id, when=local_time(when, turn.user.time_zone)
            ),
            replace=False,
        )

    @command(
        "reminders",
        aliases=("提醒",),
        action=Action.REMINDERS,
        usage="reminders",
        help=N_("what is due for you, and when"),
        teams_menu=TeamsMenu(9, "What is due for you"),
    )
    async def cmd_reminders(self, turn: Turn, cmd: Command) -> Result:
        check(turn.actor, Action.REMINDERS)
        user = turn.user
        items = await self.scheduler_view(user, turn.now + timedelta(days=365))
        if not items:
            return _reply(_("Nothing is due for you. Well done!"))
        lines = [
            _("{when} · {case} · {why}").format(
                when=local_time(when, user.time_zone), case=case_id, why=why
            )
            for when, case_id, why in items[:LIST_LIMIT]
        ]
        return _reply(_("Due for you:") + "\n" + "\n".join(lines), kind="list")

    @command(
        "language",
        aliases=("语言",),
        action=Action.LANGUAGE,
        usage="language en|zh",
        help=N_("the language I answer you in"),
    )
    async def cmd_language(self, turn: Turn, cmd: Command) -> Result:
        check(turn.actor, Action.LANGUAGE)
        choice = cmd.args.strip().lower()
        locales = {
            "en": "en",
            "english": "en",
            "zh": "zh_CN",
            "zh_cn": "zh_CN",
            "zh-cn": "zh_CN",
            "中文": "zh_CN",
        }
        if choice not in locales:
            return _reply(_("Choose `language en` or `language zh` (中文)."), kind="error")
        user = turn.user
        user.locale = locales[choice]
        user.locale_explicit = True
        await self.store.save_user(user)
        with use_locale(user.locale):
            return _reply(_("From now on I answer you in English."))

    @command(
        "customers",
        aliases=("客户列表",),
        action=Action.CUSTOMERS,
        usage="customers",
        help=N_("customers and their open cases"),
    )
    async def cmd_customers(self, turn: Turn, cmd: Command) -> Result:
        check(turn.actor, Action.CUSTOMERS)
        customers = await self.store.customers()
        if not customers:
            return _reply(_("No customers yet. They are created when a case first names them."))
        live = await self.store.live_cases()
        names = await self._names()
        lines = []
        for c in customers:
            n = sum(
                1
                for case in live
                if case.customer_id == c.id and case.state != State.CUSTOMER_INFORMED
            )
            owner = names.get(c.owner or "", c.owner or _("no owner"))
            lines.append(
                _("{name} · tenant {tenant} · owner {owner} · {n} open").format(
                    name=u(c.name), tenant=u(c.tenant_id or _("unknown")), owner=u(owner), n=n
                )
            )
        return _reply(
            _("Customers ({n}):").format(n=len(customers)) + "\n" + "\n".join(lines), kind="list"
        )

    @command(
        "customer",
        aliases=("客户",),
        action=Action.CUSTOMER,
        usage="customer NAME",
        help=N_("one customer and its open cases"),
    )
    async def cmd_customer(self, turn: Turn, cmd: Command) -> Result:
        check(turn.actor, Action.CUSTOMER)
        name = cmd.args.strip()
        if not name:
            raise DomainError(_("Which customer? `customer Contoso`"))
        customer = await self.directory.find_customer(name)
        if customer is None:
            raise NotFound(
                _("I don't know a customer called {name}. `customers` lists them all.").format(
                    name=u(name)
                )
            )
        out = await self.cmd_list(turn, Command("list", f"open customer {customer.name}"))
        names = await self._names()
        head = _("{name} · tenant {tenant} · owner {owner}").format(
            name=u(customer.name),
            tenant=u(customer.tenant_id or _("unknown")),
            owner=u(names.get(customer.owner or "", customer.owner or _("no owner"))),
        )
        out.replies.insert(0, Reply(text=head))
        return out

    # ------------------------------------------------------------------ forms
    async def _check_form(self, turn: Turn, form_id: str, ctx: dict[str, str]) -> None:
        """Raise :class:`Forbidden` unless the sender may do what form ``form_id`` does."""
        action = FORM_ACTIONS.get(form_id)
        if action is None:
            return  # a flow module's own form: its ``complete`` checks
        number = parse_case_id(ctx.get("case", ""))
        case = await self.store.get_case(number) if number else None
        if case is None:
            check(turn.actor, action)
            return
        check(turn.actor, action, case, customer_tenant=await self._customer_tenant(case))

    @staticmethod
    def _case_ctx(case: Case) -> dict[str, str]:
        return {"case": case.id, "version": str(case.stage)}

    def _sr_title(self, case: Case) -> str:
        if case.kind == Kind.DISPUTE:
            return _("Billing dispute for {case}").format(case=case.id)
        return _("Billing question for {case}").format(case=case.id)

    def add_command(self, name: str, handler: Handler) -> None:
        """Handle the declared command ``name`` with ``handler`` (a flow taking it over).

        The command keeps its declaration (aliases, action, help); an undeclared name is
        refused (:class:`~conversations.registry.RegistryError`): declare it with ``@command``.
        """
        self.commands.spec(name)
        self.handlers[name] = handler

    def add_commands(self, owner: object) -> None:
        """Handle every command ``owner``'s methods declare (``@command``) with those methods.

        Flow modules call this from their ``register``; a declaration this desk's
        registry does not hold (a test's fresh registry) is left out.
        """
        for spec, handler in declared(owner):
            if self.commands.get(spec.name) == spec:
                self.handlers[spec.name] = cast(Handler, handler)

    def add_form(self, form_id: str, spec: FormSpec) -> None:
        """Add (or replace) a form; it is filled the same way on every channel."""
        self.forms[form_id] = spec

    async def _fields(
        self, turn: Turn, form_id: str, ctx: dict[str, str], values: dict[str, str]
    ) -> tuple[str, list[FormField], str | None]:
        """Title, fields (given the answers so far) and intro text of a form."""
        if form_id in self.forms:
            return await self.forms[form_id].fields(turn, ctx, values)
        customer_field = FormField("customer", _("Customer"), hint=_("The customer's company name"))
        if form_id == "ask":
            fields = [
                customer_field,
                FormField("subscription_id", _("Subscription id"), required=False),
                FormField("invoice", _("Invoice number"), required=False),
                FormField(
                    "category", _("Category"), FieldKind.CHOICE, choices=choices(CATEGORY_LABELS)
                ),
                FormField("description", _("Question"), FieldKind.LONG_TEXT),
            ]
            if turn.actor.role == Role.CUSTOMER:
                fields = fields[1:]
            return _("New billing question"), fields, None
        if form_id == "dispute":
            fields = [
                customer_field,
                FormField("invoice", _("Invoice number")),
                FormField(
                    "amount", _("Disputed amount"), FieldKind.AMOUNT, hint=_("For example 120.00")
                ),
                FormField("currency", _("Currency"), FieldKind.CURRENCY, hint=_("EUR, USD, CNY…")),
                FormField("reason", _("Reason"), FieldKind.LONG_TEXT),
            ]
            if turn.actor.role == Role.CUSTOMER:
                fields = fields[1:]
            return _("New billing dispute"), fields, None
        number = parse_case_id(ctx.get("case", ""))
        case = await self.store.get_case(number) if number else None
        if case is None:
            raise NotFound(_("That case no longer exists."))
        if form_id == "resolve":
            if case.kind == Kind.DISPUTE:
                fields = [
                    FormField(
                        "outcome",
                        _("Microsoft's outcome"),
                        FieldKind.CHOICE,
                        choices=choices(OUTCOME_LABELS),
                    )
                ]
                if values.get("outcome") != Outcome.DENIED.value:
                    fields.append(credited_field())
                fields.append(
                    FormField(
                        "resolution",
                        _("What was done"),
                        FieldKind.LONG_TEXT,
                        required=values.get("outcome") == Outcome.DENIED.value,
                    )
                )
            else:
                fields = [FormField("resolution", _("What was done"), FieldKind.LONG_TEXT)]
            return _("Resolve {case}").format(case=case.id), fields, None
        if form_id == "informed":
            return (
                _("Customer informed about {case}").format(case=case.id),
                [
                    FormField(
                        "via",
                        _("How was the customer told?"),
                        FieldKind.CHOICE,
                        choices=choices(VIA_LABELS),
                    ),
                    FormField("text", _("Anything to add"), FieldKind.LONG_TEXT, required=False),
                ],
                None,
            )
        if form_id in ("reopen", "cancel"):
            title = _("Reopen {case}") if form_id == "reopen" else _("Cancel {case}")
            return (
                title.format(case=case.id),
                [FormField("reason", _("Reason"), FieldKind.LONG_TEXT)],
                None,
            )
        if form_id == "snooze":
            return (
                _("Snooze the reminders for {case}").format(case=case.id),
                [
                    FormField(
                        "until",
                        _("Remind me again in"),
                        FieldKind.CHOICE,
                        choices=choices(SNOOZE_LABELS),
                    )
                ],
                None,
            )
        if form_id == "note":
            return (
                _("Note on {case}").format(case=case.id),
                [FormField("text", _("Internal note"), FieldKind.LONG_TEXT)],
                None,
            )
        if form_id == "assign":
            return (
                _("Assign {case}").format(case=case.id),
                [
                    FormField(
                        "user", _("Assign to"), hint=_("An @mention or a name from the config")
                    )
                ],
                None,
            )
        if form_id == "escalate":
            customer = await self.store.get_customer(case.customer_id)
            intro = _(
                "No Partner Center credentials are set, so file it by hand: in Partner Center "
                "open Support → Customer requests → New request for {customer}, paste this, then "
                "give me the request number.\n\nTitle: {title}\nDescription: {description}"
            ).format(
                customer=u(customer.name if customer else case.customer_id),
                title=self._sr_title(case),
                description=u(self._sr_description(case, customer)),
            )
            return (
                _("Escalate {case} to Microsoft").format(case=case.id),
                [
                    FormField(
                        "severity",
                        _("Severity"),
                        FieldKind.CHOICE,
                        choices=choices(SEVERITY_LABELS),
                        value="moderate",
                    ),
                    FormField("request_id", _("Service request number")),
                ],
                intro,
            )
        raise DomainError(_("Unknown form."))

    @staticmethod
    def _sr_description(case: Case, customer: Customer | None) -> str:
        parts = [
            f"Customer: {customer.name if customer else case.customer_id}"
            + (f" (tenant {customer.tenant_id})" if customer and customer.tenant_id else ""),
        ]
        if case.subscription_id:
            parts.append(f"Subscription: {case.subscription_id}")
        if case.invoice:
            parts.append(f"Invoice: {case.invoice}")
        if case.dispute:
            parts.append(f"Disputed: {case.dispute.amount} on invoice {case.dispute.invoice}")
            parts.append(f"Reason: {case.dispute.reason}")
        if not case.dispute or case.description != case.dispute.reason:
            parts.append(case.description)
        return "\n".join(parts)

    async def _start_form(
        self, turn: Turn, form_id: str, ctx: dict[str, str], prefill: dict[str, str]
    ) -> Result:
        values = {k: v for k, v in prefill.items() if v}
        title, fields, intro = await self._fields(turn, form_id, ctx, values)
        form = Form(
            form_id=form_id,
            title=title,
            fields=[replace(f, value=values.get(f.name, f.value)) for f in fields],
            submit_label=_("Submit"),
            intro=intro,
            context=ctx,
        )
        state = {"form": form_id, "values": {}, "prefill": values, "context": ctx, "confirm": None}
        await self.store.save_conversation(self._conv_key(turn.msg), state)
        first = await self._prompt(turn, state)
        # Channels that can show a whole form (modal, card) use ``form``; text channels the prompt.
        first.replies[0].form = form
        if intro:
            first.replies.insert(0, Reply(text=intro))
        return first

    async def _prompt(self, turn: Turn, state: dict[str, Any]) -> Result:
        """Ask the next unanswered field (text channels)."""
        title, fields, _intro = await self._fields(
            turn, state["form"], state["context"], state["values"]
        )
        pending = [f for f in fields if f.name not in state["values"]]
        field_ = pending[0]
        prefill = state["prefill"].get(field_.name) or field_.value
        question = field_.label
        if field_.hint:
            question += f" ({field_.hint})"
        if not field_.required:
            question += " — " + _("optional, `skip` to leave it out")
        buttons = [Button(c.label, ActionRef("answer", value=c.value)) for c in field_.choices]
        if prefill and field_.kind != FieldKind.CHOICE:
            question += "\n" + _("Suggested: {value} (send `ok` to keep it)").format(
                value=u(prefill)
            )
        elif prefill:
            question += "\n" + _("Suggested: {value} (send `ok` to keep it)").format(value=prefill)
        step = len(state["values"]) + 1
        header = _("{title} — step {step} of {total}. `cancel` stops.").format(
            title=title, step=step, total=len(state["values"]) + len(pending)
        )
        return Result([Reply(text=f"{header}\n{question}", buttons=buttons, kind="form")])

    async def _form_step(self, turn: Turn, state: dict[str, Any], text: str) -> Result:
        key = self._conv_key(turn.msg)
        answer = text.strip()
        low = answer.lower()
        if low in CANCEL_WORDS:
            await self.store.save_conversation(key, None)
            return _reply(_("Cancelled. Nothing was saved."))
        if state.get("confirm"):
            return await self._confirm_customer(turn, state, low)
        title, fields, _intro = await self._fields(
            turn, state["form"], state["context"], state["values"]
        )
        pending = [f for f in fields if f.name not in state["values"]]
        field_ = pending[0]
        prefill = state["prefill"].get(field_.name) or field_.value
        if low in SKIP_WORDS:
            if field_.required:
                out = _reply(
                    _("{label} is required; it cannot be skipped.").format(label=field_.label),
                    kind="error",
                )
                out.replies.extend((await self._prompt(turn, state)).replies)
                return out
            answer = ""
        elif low == "ok" and prefill:
            answer = prefill
        try:
            parsed = validate(field_, answer)
        except ValidationError as exc:
            out = _reply(str(exc), kind="error")
            out.replies.extend((await self._prompt(turn, state)).replies)
            return out
        if field_.name == "customer" and turn.actor.role != Role.CUSTOMER:
            existing = await self.directory.find_customer(parsed.value)
            if existing is None:
                state["confirm"] = parsed.value
                await self.store.save_conversation(key, state)
                return Result(
                    [
                        Reply(
                            text=_("I don't know a customer called {name} yet. Create it?").format(
                                name=u(parsed.value)
                            ),
                            buttons=[
                                Button(
                                    _("Yes, create it"),
                                    ActionRef("answer", value="yes"),
                                    ButtonStyle.PRIMARY,
                                ),
                                Button(_("No"), ActionRef("answer", value="no")),
                            ],
                            kind="form",
                        )
                    ]
                )
            parsed = type(parsed)(existing.name, parsed.also)
        state["values"][field_.name] = parsed.value
        for other, value in parsed.also:
            state["values"].setdefault(other, value)
        return await self._advance(turn, state)

    async def _confirm_customer(self, turn: Turn, state: dict[str, Any], low: str) -> Result:
        key = self._conv_key(turn.msg)
        name = state["confirm"]
        state["confirm"] = None
        if low in YES:
            customer = await self.directory.ensure_customer(name)
            state["values"]["customer"] = customer.name
            out = await self._advance(turn, state)
            out.replies.insert(
                0, Reply(text=_("Customer {name} created.").format(name=u(customer.name)))
            )
            return out
        await self.store.save_conversation(key, state)
        if low in NO:
            return await self._prompt(turn, state)
        out = _reply(_("Please answer yes or no."), kind="error")
        state["confirm"] = name
        await self.store.save_conversation(key, state)
        return out

    async def _advance(self, turn: Turn, state: dict[str, Any]) -> Result:
        key = self._conv_key(turn.msg)
        title, fields, _intro = await self._fields(
            turn, state["form"], state["context"], state["values"]
        )
        if any(f.name not in state["values"] for f in fields):
            await self.store.save_conversation(key, state)
            return await self._prompt(turn, state)
        values = {f.name: state["values"][f.name] for f in fields}
        return await self._complete(turn, state["form"], values, state["context"], clear=key)

    async def _submit_form(
        self, turn: Turn, form_id: str, raw: dict[str, str], ctx: dict[str, str]
    ) -> Result:
        """A whole form at once (modal, card, web): validate every field, then complete."""
        # Before anything is shown or stored: a forged submission must not see a form's
        # intro (another tenant's case) nor create a customer on its way to a refusal.
        await self._check_form(turn, form_id, ctx)
        values: dict[str, str] = {}
        errors: dict[str, str] = {}
        # Fields can depend on earlier answers (a denied dispute has no credit): two passes.
        for _pass in range(2):
            title, fields, intro = await self._fields(turn, form_id, ctx, values)
            values, errors = {}, {}
            for f in fields:
                try:
                    parsed = validate(f, raw.get(f.name, ""))
                except ValidationError as exc:
                    errors[f.name] = str(exc)
                    continue
                values[f.name] = parsed.value
                for other, value in parsed.also:
                    if not raw.get(other):
                        raw = {**raw, other: value}
        if errors:
            form = Form(
                form_id=form_id,
                title=title,
                fields=[replace(f, value=raw.get(f.name) or f.value) for f in fields],
                submit_label=_("Submit"),
                intro=intro,
                errors=errors,
                context=ctx,
            )
            summary = "\n".join(
                f"{next(f.label for f in fields if f.name == k)}: {v}" for k, v in errors.items()
            )
            return Result(
                [Reply(text=_("Please fix the form:") + "\n" + summary, form=form, kind="error")]
            )
        notes: list[Reply] = []
        if "customer" in values:
            existing = await self.directory.find_customer(values["customer"])
            if existing is None:
                created = await self.directory.ensure_customer(values["customer"])
                notes.append(
                    Reply(text=_("New customer {name} created.").format(name=u(created.name)))
                )
                values["customer"] = created.name
        out = await self._complete(turn, form_id, values, ctx, clear=self._conv_key(turn.msg))
        out.replies[:0] = notes
        return out

    async def _complete(
        self, turn: Turn, form_id: str, values: dict[str, str], ctx: dict[str, str], clear: str
    ) -> Result:
        clear_op = self.store.conversation_op(clear, None)
        if form_id in self.forms:
            return await self.forms[form_id].complete(turn, values, ctx, clear_op)
        if form_id in ("ask", "dispute"):
            return await self._create_case(turn, form_id, values, clear_op)
        number = parse_case_id(ctx.get("case", ""))
        case = await self.store.get_case(number) if number else None
        if case is None:
            await self.store.commit([clear_op])
            raise NotFound(_("That case no longer exists."))
        action = {
            "resolve": Action.RESOLVE,
            "informed": Action.INFORMED,
            "reopen": Action.REOPEN,
            "cancel": Action.CANCEL,
            "note": Action.NOTE,
            "assign": Action.ASSIGN,
            "escalate": Action.ESCALATE,
            "snooze": Action.SNOOZE,
        }[form_id]
        check(turn.actor, action, case, customer_tenant=await self._customer_tenant(case))
        version = ctx.get("version")
        await self.store.commit([clear_op])
        if version and version.isdigit() and int(version) != case.stage:
            return await self._stale_reply(turn, case)
        turn.clicked = None
        if form_id == "resolve":
            outcome = Outcome(values["outcome"]) if values.get("outcome") else None
            credited = None
            if values.get("credited"):
                currency = values.get("currency") or (
                    case.dispute.amount.currency if case.dispute else ""
                )
                from decimal import Decimal

                credited = Money(Decimal(values["credited"]), currency)
            text = values.get("resolution") or _("{outcome}: {amount}").format(
                outcome=_(OUTCOME_LABELS[outcome]) if outcome else "",
                amount=str(credited) if credited else "",
            )
            return await self._do_resolve(turn, case, text, outcome, credited)
        if form_id == "informed":
            return await self._do_informed(
                turn, case, InformedVia(values["via"]), values.get("text", "")
            )
        if form_id == "reopen":
            return await self._do_reopen(turn, case, values["reason"])
        if form_id == "cancel":
            return await self._do_cancel(turn, case, values["reason"])
        if form_id == "snooze":
            return await self._do_snooze(turn, case, values["until"])
        if form_id == "note":
            case.add_note(values["text"], turn.actor, turn.now)
            return await self._save_and_show(
                turn, case, _("Internal note added to {case}.").format(case=case.id)
            )
        if form_id == "assign":
            return await self._do_assign(turn, case, values["user"])
        return await self._do_escalate(turn, case, values)

    async def _create_case(
        self, turn: Turn, form_id: str, values: dict[str, str], clear_op: Op
    ) -> Result:
        actor = turn.actor
        if actor.role == Role.CUSTOMER:
            customer = await self._customer_of(actor)
        else:
            customer = await self.directory.ensure_customer(values["customer"])
        check(actor, Action.ASK if form_id == "ask" else Action.DISPUTE)
        if form_id == "ask":
            category = Category(values["category"])

            def build(number: int) -> Case:
                return Case.new(
                    number,
                    kind=Kind.QUESTION,
                    customer_id=customer.id,
                    category=category,
                    description=values["description"],
                    actor=actor,
                    now=turn.now,
                    subscription_id=values.get("subscription_id") or None,
                    invoice=values.get("invoice") or None,
                )
        else:
            from decimal import Decimal

            currency = values.get("currency", "")
            amount = Money(Decimal(values["amount"]), currency)
            from bot.money import parse_amount

            parse_amount(values["amount"], currency)  # decimal places fit the currency

            def build(number: int) -> Case:
                return Case.new(
                    number,
                    kind=Kind.DISPUTE,
                    customer_id=customer.id,
                    category=Category.CHARGES,
                    description=values["reason"],
                    actor=actor,
                    now=turn.now,
                    invoice=values["invoice"],
                    dispute=Dispute(values["invoice"], amount, values["reason"]),
                )

        case = await self.store.create_case(
            build,
            lambda new: [
                clear_op,
                watch_op(new, turn.now, self.settings),
                *self._applied(turn, new.number),
            ],
        )
        card = await self._card(turn, case)
        if form_id == "ask":
            text = _("Thanks! Your question is {case}. The billing team will pick it up.").format(
                case=case.id
            )
        else:
            text = _(
                "Thanks! Your dispute is {case}. The billing team will report it to Microsoft."
            ).format(case=case.id)
        return Result([Reply(text=text, card=card)])

    async def _customer_of(self, actor: Actor) -> Customer:
        for customer in await self.store.customers():
            if tenant_key(customer) == actor.tenant_id:
                return customer
        raise Forbidden(_("This conversation is not linked to a customer; ask the billing team."))


__all__ = ["Desk", "Result", "Turn"]
