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
from datetime import datetime, timedelta
from decimal import Decimal
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
    transition_error,
)
from bot.i18n import N_, _, use_locale
from bot.kernel.model import (
    ActionRef,
    FieldKind,
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
from bot.money import CURRENCIES, Money, MoneyError, parse_money
from bot.policy import Action, Forbidden, allowed, check
from bot.storage import Op, StorageError, Store
from bot.workhours import WorkingHours
from conversations import help as help_texts
from conversations.cards import case_card, full_history, list_line, local_time
from conversations.commands import LIST_FILTERS, Command, parse
from conversations.directory import Directory, tenant_key
from conversations.formengine import (
    Answers,
    Field,
    FormDecl,
    FormEngine,
    FormEnv,
    NewValue,
    Rule,
    case_context,
)
from conversations.forms import (
    CATEGORY_LABELS,
    OUTCOME_LABELS,
    SEVERITY_LABELS,
    SNOOZE_LABELS,
    VIA_LABELS,
    ValidationError,
    invoice_number,
    request_number,
    subscription_id,
)
from conversations.registry import REGISTRY, Registry, TeamsMenu, command, declared
from conversations.text import clean_input, u
from conversations.turn import Result, Turn

log = logging.getLogger(__name__)

LIST_LIMIT = 20
MAX_TEXT = 10_000  # a typed command; descriptions and notes in forms have their own limits

Handler = Callable[[Turn, Command], Awaitable[Result]]


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
        self.forms = FormEngine(
            store, self, self._customer_tenant, self._run_in_form, self._command_needs
        )
        for decl in FORMS:
            self.forms.add(decl)
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
                return await self.stale_reply(turn, stale.case)
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
                    Reply(card=await self.card_for(turn, case), replace=turn.clicked is not None)
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
                    card=await self.card_for(turn, case),
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
            return await self.forms.submit(turn, msg.form_id, msg.form_values, msg.form_context)
        state = await self.forms.open_state(msg)
        if state:
            text = msg.text
            if msg.action and msg.action.name == "answer":
                text = msg.action.value or ""
            elif msg.action:
                # A click on a card while a form is open: drop the form, do the click.
                await self.forms.close(msg)
                return await self._command(turn, self._click_command(msg.action))
            return await self.forms.step(turn, state, text)
        if msg.action:
            if msg.action.name == "answer":
                return _reply(
                    _("That question is no longer open. Type `help` to see what I can do.")
                )
            if msg.action.name == "open_form":
                form_id = msg.action.value or "ask"
                await self.forms.guard(turn, form_id, {})
                return await self.forms.start(turn, form_id, {}, prefill={})
            return await self._command(turn, self._click_command(msg.action))
        return await self._command(turn, parse(msg.text, self.commands))

    async def _run_in_form(self, turn: Turn, cmd: Command) -> Result:
        """A command line typed into a form, run because the person said so."""
        try:
            return await self._command(turn, cmd)
        except _Stale as stale:
            return await self.stale_reply(turn, stale.case)
        except (DomainError, MoneyError) as exc:
            return await self._error(turn, exc)

    def _command_needs(self) -> dict[str, str | None]:
        """Every command the desk knows and what it needs to run as typed."""
        return {name: self.commands.spec(name).needs for name in self.handlers}

    @staticmethod
    def _click_command(action: ActionRef) -> Command:
        return Command(action.name, " ".join(p for p in (action.case_id, action.value) if p))

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

    async def card_for(self, turn: Turn, case: Case) -> Any:
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

    async def load_case(self, turn: Turn, number: int | None, action: Action, usage: str) -> Case:
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

    async def stale_reply(self, turn: Turn, case: Case) -> Result:
        return Result(
            [
                Reply(
                    text=_(
                        "Already done: {case} changed since this card was shown. Here it is now."
                    ).format(case=case.id),
                    kind="stale",
                    private=True,
                ),
                Reply(card=await self.card_for(turn, case), replace=True),
            ]
        )

    async def save_and_show(
        self,
        turn: Turn,
        case: Case,
        text: str,
        notifications: list[Notification] | None = None,
        extra_ops: list[Op] | None = None,
    ) -> Result:
        await self.store.save_case(case, [*(extra_ops or []), *self._applied(turn, case.number)])
        card = await self.card_for(turn, case)
        return Result(
            [Reply(text=text, card=card, replace=turn.clicked is not None)],
            notifications or [],
        )

    def ensure_started(self, turn: Turn, case: Case) -> None:
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
        return await self.forms.start(turn, "ask", {}, prefill={"description": cmd.args})

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
        return await self.forms.start(turn, "dispute", {}, prefill={"invoice": invoice})

    @command(
        "status",
        needs="case",
        aliases=("show", "状态"),
        action=Action.STATUS,
        usage="status BILL-n",
        help=N_("a case card and its history (or just BILL-n)"),
        handler_checks=True,
        teams_menu=TeamsMenu(5, "A case card and its history: status BILL-7"),
    )
    async def cmd_status(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self.load_case(turn, number, Action.STATUS, "status BILL-7")
        card = await self.card_for(turn, case)
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
        needs="case",
        aliases=("接手",),
        action=Action.TAKE,
        usage="take BILL-n",
        help=N_("the case becomes yours"),
        handler_checks=True,
        teams_menu=TeamsMenu(6, "Take a case: take BILL-7"),
    )
    async def cmd_take(self, turn: Turn, cmd: Command) -> Result:
        number, _rest = cmd.case_and_rest()
        case = await self.load_case(turn, number, Action.TAKE, "take BILL-7")
        if case.state in (State.CANCELLED, State.CLOSED):
            raise DomainError(transition_error(case, State.IN_PROGRESS))
        if case.owner == turn.actor.user_id and case.state not in (State.OPEN, State.REOPENED):
            raise DomainError(_("{case} is already yours.").format(case=case.id))
        if case.owner != turn.actor.user_id:
            case.set_owner(turn.actor.user_id, turn.actor, turn.now)
        if case.state in (State.OPEN, State.REOPENED):
            case.start(turn.actor, turn.now)
        return await self.save_and_show(turn, case, _("{case} is yours now.").format(case=case.id))

    @command(
        "assign",
        needs="case",
        aliases=("assign-to", "分配"),
        action=Action.ASSIGN,
        usage="assign BILL-n USER",
        help=N_("give the case to someone (@mention or name)"),
        form="assign",
        handler_checks=True,
    )
    async def cmd_assign(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self.load_case(turn, number, Action.ASSIGN, "assign BILL-7 @maria")
        if not rest:
            return await self.forms.start(turn, "assign", case_context(case), prefill={})
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
        return await self.save_and_show(
            turn,
            case,
            _("{case} now belongs to {name}.").format(case=case.id, name=u(assignee.display_name)),
            extra_ops=ops,
        )

    @command(
        "note",
        needs="case",
        aliases=("comment", "备注"),
        action=Action.NOTE,
        usage="note BILL-n text",
        help=N_("an internal note, never shown to the customer"),
        form="note",
        handler_checks=True,
    )
    async def cmd_note(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self.load_case(turn, number, Action.NOTE, "note BILL-7 called the customer")
        to_microsoft = False
        if rest.startswith("--microsoft"):
            to_microsoft = True
            rest = rest[len("--microsoft") :].strip()
        if not rest:
            return await self.forms.start(turn, "note", case_context(case), prefill={})
        if case.state == State.CANCELLED:
            raise DomainError(
                _("{case} was cancelled; open a new case instead.").format(case=case.id)
            )
        case.add_note(rest, turn.actor, turn.now, to_microsoft=to_microsoft)
        return await self.save_and_show(
            turn, case, _("Internal note added to {case}.").format(case=case.id)
        )

    @command(
        "escalate",
        needs="case",
        aliases=("上报",),
        action=Action.ESCALATE,
        usage="escalate BILL-n",
        help=N_("file a Microsoft service request for the case"),
        form="escalate",
        handler_checks=True,
    )
    async def cmd_escalate(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self.load_case(turn, number, Action.ESCALATE, "escalate BILL-7")
        if case.state not in (State.OPEN, State.IN_PROGRESS, State.REOPENED):
            raise DomainError(transition_error(case, State.ESCALATED))
        if rest:
            return await self._do_escalate(turn, case, {"request_id": rest.split()[0]})
        return await self.forms.start(turn, "escalate", case_context(case), prefill={})

    async def _do_escalate(self, turn: Turn, case: Case, values: dict[str, str]) -> Result:
        try:
            request_id = request_number(None, values.get("request_id", ""))
        except ValidationError as exc:
            raise DomainError(str(exc)) from None
        self.ensure_started(turn, case)
        case.escalate(
            ServiceRequest(
                id=request_id,
                mode="manual",
                status="open",
                filed_at=turn.now,
                title=self.sr_title(case),
            ),
            turn.actor,
            turn.now,
        )
        if values.get("severity"):
            case.audit[-1].details["severity"] = values["severity"]
        return await self.save_and_show(
            turn,
            case,
            _("{case} is escalated to Microsoft as service request {sr}.").format(
                case=case.id, sr=u(request_id)
            ),
        )

    @command(
        "resolve",
        needs="case",
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
        case = await self.load_case(turn, number, Action.RESOLVE, "resolve BILL-7 what was done")
        if not rest:
            return await self.forms.start(turn, "resolve", case_context(case), prefill={})
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
        self.ensure_started(turn, case)
        case.resolve(text, turn.actor, turn.now, outcome=outcome, credited=credited)
        # The close-the-loop reminders start in the same commit as the resolution.
        return await self.save_and_show(
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
        needs="case",
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
        case = await self.load_case(turn, number, Action.INFORMED, "informed BILL-7 email")
        if not rest:
            return await self.forms.start(turn, "informed", case_context(case), prefill={})
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
        return await self.save_and_show(
            turn,
            case,
            _("Recorded: the customer was told about {case} by {via}. Reminders stop.").format(
                case=case.id, via=_(VIA_LABELS[via])
            ),
            extra_ops=[stop_loop_op(case)],
        )

    async def _do_reopen(self, turn: Turn, case: Case, reason: str) -> Result:
        case.reopen(reason, turn.actor, turn.now)
        return await self.save_and_show(
            turn,
            case,
            _("{case} is reopened.").format(case=case.id),
            extra_ops=[stop_loop_op(case), watch_op(case, turn.now, self.settings)],
        )

    async def _do_cancel(self, turn: Turn, case: Case, reason: str) -> Result:
        case.cancel(reason, turn.actor, turn.now)
        return await self.save_and_show(
            turn,
            case,
            _("{case} is cancelled.").format(case=case.id),
            extra_ops=[stop_loop_op(case)],
        )

    @command(
        "reopen",
        needs="case",
        aliases=("重新打开",),
        action=Action.REOPEN,
        usage="reopen BILL-n text",
        help=N_("work on a resolved or closed case again"),
        form="reopen",
        handler_checks=True,
    )
    async def cmd_reopen(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self.load_case(turn, number, Action.REOPEN, "reopen BILL-7 reason")
        if not rest:
            _require_move(case, State.REOPENED)  # before asking why
            return await self.forms.start(turn, "reopen", case_context(case), prefill={})
        return await self._do_reopen(turn, case, rest)

    @command(
        "cancel",
        needs="case",
        aliases=("取消",),
        action=Action.CANCEL,
        usage="cancel BILL-n reason",
        help=N_("cancel a case, e.g. a duplicate"),
        form="cancel",
        handler_checks=True,
    )
    async def cmd_cancel(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self.load_case(
            turn, number, Action.CANCEL, "cancel BILL-7 duplicate of BILL-3"
        )
        if not rest:
            _require_move(case, State.CANCELLED)  # before asking why
            return await self.forms.start(turn, "cancel", case_context(case), prefill={})
        return await self._do_cancel(turn, case, rest)

    @command(
        "close",
        needs="case",
        aliases=("关闭",),
        action=Action.CLOSE,
        usage="close BILL-n",
        help=N_("close a case once the customer was informed"),
        handler_checks=True,
    )
    async def cmd_close(self, turn: Turn, cmd: Command) -> Result:
        number, _rest = cmd.case_and_rest()
        case = await self.load_case(turn, number, Action.CLOSE, "close BILL-7")
        case.close(turn.actor, turn.now)
        return await self.save_and_show(
            turn, case, _("{case} is closed.").format(case=case.id), extra_ops=[stop_loop_op(case)]
        )

    @command(
        "snooze",
        needs="case",
        aliases=("稍后提醒",),
        action=Action.SNOOZE,
        usage="snooze BILL-n 1h|4h|tomorrow",
        help=N_("pause the close-the-loop reminders"),
        form="snooze",
        handler_checks=True,
    )
    async def cmd_snooze(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self.load_case(turn, number, Action.SNOOZE, "snooze BILL-7 4h")
        if case.state != State.RESOLVED:
            raise DomainError(
                _("{case} has no reminders to snooze: only resolved cases remind.").format(
                    case=case.id
                )
            )
        if not rest:
            return await self.forms.start(turn, "snooze", case_context(case), prefill={})
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
        needs="word",
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
        needs="word",
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
    def sr_title(self, case: Case) -> str:
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

    def add_form(self, decl: FormDecl) -> None:
        """Add (or replace) a form; it is filled the same way on every channel."""
        self.forms.add(decl)

    @staticmethod
    def sr_description(case: Case, customer: Customer | None) -> str:
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

    async def _new_case(
        self,
        turn: Turn,
        values: dict[str, str],
        build: Callable[[int, Customer], Case],
        clear_op: Op,
        text: str,
    ) -> Result:
        """A question or dispute from its form: the case, its watch, the form's end, one commit."""
        actor = turn.actor
        if actor.role == Role.CUSTOMER:
            customer = await self._customer_of(actor)
        else:
            customer = await self.directory.ensure_customer(values["customer"])
        case = await self.store.create_case(
            lambda number: build(number, customer),
            lambda new: [
                clear_op,
                watch_op(new, turn.now, self.settings),
                *self._applied(turn, new.number),
            ],
        )
        card = await self.card_for(turn, case)
        return Result([Reply(text=text.format(case=case.id), card=card)])

    async def _customer_of(self, actor: Actor) -> Customer:
        for customer in await self.store.customers():
            if tenant_key(customer) == actor.tenant_id:
                return customer
        raise Forbidden(_("This conversation is not linked to a customer; ask the billing team."))


# ---------------------------------------------------------------------------- the forms
# Each form is a declaration (conversations/formengine.py runs them): what it asks, the
# checks at each step, the rules across fields, the policy action that guards it and the
# change it ends in. A flow module may replace one (escalation.py: the escalate form).


def _staff(env: FormEnv) -> bool:
    return env.turn.actor.role != Role.CUSTOMER


def _is_dispute(env: FormEnv) -> bool:
    return env.case is not None and env.case.kind == Kind.DISPUTE


def _denied(env: FormEnv) -> bool:
    return env.values.get("outcome") == Outcome.DENIED.value


async def _find_customer(env: FormEnv, name: str) -> str | None:
    customer = await env.host.directory.find_customer(name)
    return customer.name if customer else None


async def _create_customer(env: FormEnv, name: str) -> str:
    customer = await env.host.directory.ensure_customer(name)
    return str(customer.name)


NEW_CUSTOMER = NewValue(
    find=_find_customer,
    create=_create_customer,
    applies=_staff,
    question=N_("I don't know a customer called {name} yet. Create it?"),
    created=N_("Customer {name} created."),
    created_now=N_("New customer {name} created."),
)
CUSTOMER = Field(
    "customer",
    N_("Customer"),
    hint=N_("The customer's company name"),
    when=_staff,  # a customer asks for their own tenant
    new_value=NEW_CUSTOMER,
)


def amount_fits_currency(env: FormEnv, values: Answers) -> None:
    """The disputed amount has no more decimal places than its currency (EUR 2, JPY 0)."""
    currency = values["currency"]
    places = CURRENCIES.get(currency, 2)
    exponent = Decimal(values["amount"]).as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise ValidationError(
            _(
                "{amount} has more decimal places than {currency} allows ({places}); "
                "please type the amount again."
            ).format(amount=values["amount"], currency=currency, places=places)
        )


def credit_fits_dispute(env: FormEnv, text: str) -> str:
    """A credit in the dispute's currency, at most the disputed amount."""
    assert env.case is not None and env.case.dispute is not None
    disputed = env.case.dispute.amount
    try:
        credit = parse_money(text, default_currency=disputed.currency)
    except MoneyError as exc:
        raise ValidationError(str(exc)) from None
    if credit.currency != disputed.currency:
        raise ValidationError(
            _("The credit must be in {currency}, the currency of the dispute.").format(
                currency=disputed.currency
            )
        )
    if credit.amount > disputed.amount:
        raise ValidationError(
            _("The credit ({credit}) is more than the disputed {amount}.").format(
                credit=str(credit), amount=str(disputed)
            )
        )
    return str(credit.amount)


async def assignee(env: FormEnv, who: str) -> str:
    """Someone on the billing team: an @mention or a name from the config."""
    user = await env.host.directory.find_assignee(who, env.turn.msg)
    if user is None:
        raise ValidationError(
            _(
                "I don't know anyone called {name}. Use an @mention or a name from the config."
            ).format(name=u(who))
        )
    if user.role not in (Role.AGENT, Role.LEAD):
        raise ValidationError(
            _("{name} is not on the billing team, so cannot own cases.").format(
                name=u(user.display_name)
            )
        )
    return who


async def _question(env: FormEnv, values: Answers, clear_op: Op) -> Result:
    turn = env.turn
    category = Category(values["category"])

    def build(number: int, customer: Customer) -> Case:
        return Case.new(
            number,
            kind=Kind.QUESTION,
            customer_id=customer.id,
            category=category,
            description=values["description"],
            actor=turn.actor,
            now=turn.now,
            subscription_id=values.get("subscription_id") or None,
            invoice=values.get("invoice") or None,
        )

    text = _("Thanks! Your question is {case}. The billing team will pick it up.")
    return await env.host._new_case(turn, values, build, clear_op, text)


async def _dispute(env: FormEnv, values: Answers, clear_op: Op) -> Result:
    turn = env.turn
    amount = Money(Decimal(values["amount"]), values["currency"])

    def build(number: int, customer: Customer) -> Case:
        return Case.new(
            number,
            kind=Kind.DISPUTE,
            customer_id=customer.id,
            category=Category.CHARGES,
            description=values["reason"],
            actor=turn.actor,
            now=turn.now,
            invoice=values["invoice"],
            dispute=Dispute(values["invoice"], amount, values["reason"]),
        )

    text = _("Thanks! Your dispute is {case}. The billing team will report it to Microsoft.")
    return await env.host._new_case(turn, values, build, clear_op, text)


CaseAct = Callable[[Desk, Turn, Case, Answers], Awaitable[Result]]


def on_case(act: CaseAct) -> Callable[[FormEnv, Answers, Op], Awaitable[Result]]:
    """A form's end on its case: the form ends first; a card older than the case changes nothing."""

    async def complete(env: FormEnv, values: Answers, clear_op: Op) -> Result:
        desk: Desk = env.host
        case = env.case
        assert case is not None  # the engine loaded it (or said it no longer exists)
        await desk.store.commit([clear_op])
        version = env.ctx.get("version")
        if version and version.isdigit() and int(version) != case.stage:
            return await desk.stale_reply(env.turn, case)
        env.turn.clicked = None
        return await act(desk, env.turn, case, values)

    return complete


async def _resolve(desk: Desk, turn: Turn, case: Case, values: Answers) -> Result:
    outcome = Outcome(values["outcome"]) if values.get("outcome") else None
    credited = None
    if values.get("credited") and case.dispute:
        credited = Money(Decimal(values["credited"]), case.dispute.amount.currency)
    text = values.get("resolution") or _("{outcome}: {amount}").format(
        outcome=_(OUTCOME_LABELS[outcome]) if outcome else "",
        amount=str(credited) if credited else "",
    )
    return await desk._do_resolve(turn, case, text, outcome, credited)


async def _informed(desk: Desk, turn: Turn, case: Case, values: Answers) -> Result:
    return await desk._do_informed(turn, case, InformedVia(values["via"]), values.get("text", ""))


async def _reopen(desk: Desk, turn: Turn, case: Case, values: Answers) -> Result:
    return await desk._do_reopen(turn, case, values["reason"])


async def _cancel(desk: Desk, turn: Turn, case: Case, values: Answers) -> Result:
    return await desk._do_cancel(turn, case, values["reason"])


async def _snooze(desk: Desk, turn: Turn, case: Case, values: Answers) -> Result:
    return await desk._do_snooze(turn, case, values["until"])


async def _note(desk: Desk, turn: Turn, case: Case, values: Answers) -> Result:
    case.add_note(values["text"], turn.actor, turn.now)
    return await desk.save_and_show(
        turn, case, _("Internal note added to {case}.").format(case=case.id)
    )


async def _assign(desk: Desk, turn: Turn, case: Case, values: Answers) -> Result:
    return await desk._do_assign(turn, case, values["user"])


async def _escalate(desk: Desk, turn: Turn, case: Case, values: Answers) -> Result:
    return await desk._do_escalate(turn, case, values)


def _manual_escalation_intro(env: FormEnv) -> str:
    desk: Desk = env.host
    case = env.case
    assert case is not None
    customer = env.data.get("customer")
    return _(
        "No Partner Center credentials are set, so file it by hand: in Partner Center "
        "open Support → Customer requests → New request for {customer}, paste this, then "
        "give me the request number.\n\nTitle: {title}\nDescription: {description}"
    ).format(
        customer=u(customer.name if customer else case.customer_id),
        title=desk.sr_title(case),
        description=u(desk.sr_description(case, customer)),
    )


async def load_customer(env: FormEnv) -> None:
    """The case's customer, for intros and suggestions (``env.data["customer"]``)."""
    if env.case is not None:
        env.data["customer"] = await env.host.store.get_customer(env.case.customer_id)


REASON = Field("reason", N_("Reason"), FieldKind.LONG_TEXT)
SEVERITY = Field(
    "severity", N_("Severity"), FieldKind.CHOICE, choices=SEVERITY_LABELS, default="moderate"
)
REQUEST_ID = Field("request_id", N_("Service request number"), checks=(request_number,))

FORMS: tuple[FormDecl, ...] = (
    FormDecl(
        "ask",
        Action.ASK,
        N_("New billing question"),
        fields=(
            CUSTOMER,
            Field(
                "subscription_id", N_("Subscription id"), required=False, checks=(subscription_id,)
            ),
            Field("invoice", N_("Invoice number"), required=False, checks=(invoice_number,)),
            Field("category", N_("Category"), FieldKind.CHOICE, choices=CATEGORY_LABELS),
            Field("description", N_("Question"), FieldKind.LONG_TEXT),
        ),
        complete=_question,
    ),
    FormDecl(
        "dispute",
        Action.DISPUTE,
        N_("New billing dispute"),
        fields=(
            CUSTOMER,
            Field("invoice", N_("Invoice number"), checks=(invoice_number,)),
            Field("amount", N_("Disputed amount"), FieldKind.AMOUNT, hint=N_("For example 120.00")),
            Field("currency", N_("Currency"), FieldKind.CURRENCY, hint=N_("EUR, USD, CNY…")),
            REASON,
        ),
        rules=(Rule(("amount", "currency"), amount_fits_currency, ask_again="amount"),),
        complete=_dispute,
    ),
    FormDecl(
        "resolve",
        Action.RESOLVE,
        N_("Resolve {case}"),
        on_case=True,
        fields=(
            Field(
                "outcome",
                N_("Microsoft's outcome"),
                FieldKind.CHOICE,
                choices=OUTCOME_LABELS,
                when=_is_dispute,
            ),
            Field(
                "credited",
                N_("Credited amount"),
                FieldKind.AMOUNT,
                hint=N_("For example 120.00 EUR"),
                checks=(credit_fits_dispute,),
                when=lambda env: _is_dispute(env) and not _denied(env),
            ),
            Field(
                "resolution",
                N_("What was done"),
                FieldKind.LONG_TEXT,
                required=lambda env: not _is_dispute(env) or _denied(env),
            ),
        ),
        complete=on_case(_resolve),
    ),
    FormDecl(
        "informed",
        Action.INFORMED,
        N_("Customer informed about {case}"),
        on_case=True,
        fields=(
            Field("via", N_("How was the customer told?"), FieldKind.CHOICE, choices=VIA_LABELS),
            Field("text", N_("Anything to add"), FieldKind.LONG_TEXT, required=False),
        ),
        complete=on_case(_informed),
    ),
    FormDecl(
        "reopen", Action.REOPEN, N_("Reopen {case}"), (REASON,), on_case(_reopen), on_case=True
    ),
    FormDecl(
        "cancel", Action.CANCEL, N_("Cancel {case}"), (REASON,), on_case(_cancel), on_case=True
    ),
    FormDecl(
        "snooze",
        Action.SNOOZE,
        N_("Snooze the reminders for {case}"),
        (Field("until", N_("Remind me again in"), FieldKind.CHOICE, choices=SNOOZE_LABELS),),
        on_case(_snooze),
        on_case=True,
    ),
    FormDecl(
        "note",
        Action.NOTE,
        N_("Note on {case}"),
        (Field("text", N_("Internal note"), FieldKind.LONG_TEXT),),
        on_case(_note),
        on_case=True,
    ),
    FormDecl(
        "assign",
        Action.ASSIGN,
        N_("Assign {case}"),
        (
            Field(
                "user",
                N_("Assign to"),
                hint=N_("An @mention or a name from the config"),
                checks=(assignee,),
            ),
        ),
        on_case(_assign),
        on_case=True,
    ),
    # Manual filing only; conversations/escalation.py replaces its fields and end.
    FormDecl(
        "escalate",
        Action.ESCALATE,
        N_("Escalate {case} to Microsoft"),
        (SEVERITY, REQUEST_ID),
        on_case(_escalate),
        on_case=True,
        intro=_manual_escalation_intro,
        load=load_customer,
    ),
)
# What each form does, checked before a form is opened by a click or taken as submitted.
FORM_ACTIONS = {decl.id: decl.action for decl in FORMS}


__all__ = ["FORMS", "FORM_ACTIONS", "Desk", "Result", "Turn"]
