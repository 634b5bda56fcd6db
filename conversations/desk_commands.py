"""The desk's commands: every command of PRODUCT.md the desk answers itself.

``help``, ``resources``, ``ask`` and ``dispute`` (a new case, through its
form), ``status`` and ``list``; the changes of a case (``take``, ``assign``,
``note``, ``resolve``, ``informed``, ``reopen``, ``cancel``, ``close``,
``snooze``, with the ``do_*`` changes the forms end in); then
``reminders``, ``language``, ``customers`` and ``customer``. Each is declared
with ``@command`` on its handler, in the order ``help`` lists them. ``escalate``
is the escalation flow's (conversations/escalation.py), in API and manual mode.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from bot.domain import (
    TRANSITIONS,
    Case,
    Customer,
    DomainError,
    InformedVia,
    Kind,
    NotFound,
    Outcome,
    Role,
    State,
    check_invoice_number,
    transition_error,
)
from bot.i18n import N_, _, ngettext, use_locale
from bot.kernel.model import ActionRef, Button, Reply
from bot.kernel.scheduler import (
    loop_key,
    loop_op,
    snooze_op,
    stop_loop_op,
    stop_watch_op,
    watch_op,
)
from bot.money import Money, is_currency, parse_money
from bot.policy import Action, check
from bot.storage import Op
from bot.workhours import WorkingHours
from conversations import help as help_texts
from conversations.cards import attachment_lines, full_history, list_line, local_time
from conversations.casework import CaseWork, _reply
from conversations.commands import LIST_FILTERS, Command
from conversations.directory import tenant_key
from conversations.formengine import case_context
from conversations.forms import (
    SNOOZE_LABELS,
    VIA_LABELS,
)
from conversations.registry import TeamsMenu, command
from conversations.text import u
from conversations.turn import Result, Turn

LIST_LIMIT = 20

Handler = Callable[[Turn, Command], Awaitable[Result]]


def _excerpt(text: str, limit: int = 300) -> str:
    """A person's words quoted in someone else's DM: one paragraph, at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _require_move(case: Case, target: State) -> None:
    """Refuse early (before a form asks anything) when ``case`` cannot move to ``target``."""
    if target not in TRANSITIONS[case.state]:
        raise DomainError(transition_error(case, target))


class DeskCommands(CaseWork):
    """The desk's own commands (methods of :class:`~conversations.desk.Desk`)."""

    handlers: dict[str, Handler]  # set by the Desk: every command it runs, and its handler

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
        # Refused at once, with the rule it breaks, rather than at the form's step.
        invoice = check_invoice_number(cmd.words[0]) if cmd.words else ""
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
        names = await self._names()
        history = full_history(case, turn.actor, turn.user.time_zone, names)
        text = _("History of {case}:").format(case=case.id) + "\n" + "\n".join(history)
        files = attachment_lines(case, turn.actor, turn.user.time_zone, names)
        if files:
            text += "\n" + _("Attachments:") + "\n" + "\n".join(f"• {line}" for line in files)
        return Result([Reply(card=card, replace=turn.clicked is not None), Reply(text=text)])

    @command(
        "list",
        aliases=("ls", "cases", "列表"),
        action=Action.LIST,
        usage=(
            "list [mine|open|unassigned|escalated|awaiting-customer|all] [customer NAME] [page N]"
        ),
        help=N_("cases, newest activity first"),
        teams_menu=TeamsMenu(4, "Cases: mine, open, unassigned, escalated, all"),
        words={
            "mine": ("我的",),
            "open": ("未结", "未关闭"),
            "unassigned": ("未分配",),
            "escalated": ("已上报",),
            "awaiting-customer": ("待告知",),
            "all": ("全部", "所有"),
            "customer": ("客户",),
            "page": ("页", "第"),
        },
    )
    async def cmd_list(self, turn: Turn, cmd: Command) -> Result:
        check(turn.actor, Action.LIST)
        words = cmd.words
        flt = "open"
        page = 1
        customer_name: str | None = None
        if words and cmd.keyword(words[0]) in LIST_FILTERS:
            flt = cmd.keyword(words[0])
            words = words[1:]
        # ``page N`` before or after ``customer NAME`` (the More button puts it first).
        if len(words) >= 2 and cmd.keyword(words[0]) == "page" and words[1].isdigit():
            page, words = int(words[1]), words[2:]
        elif len(words) >= 2 and cmd.keyword(words[-2]) == "page" and words[-1].isdigit():
            page, words = int(words[-1]), words[:-2]
        if words and cmd.keyword(words[0]) == "customer":
            customer_name = " ".join(words[1:]).strip()
            if not customer_name:
                raise DomainError(_("Which customer? `list customer Contoso`"))
        elif words:
            raise DomainError(
                _(
                    "I can list: {filters}, optionally followed by `customer NAME` and `page N`."
                ).format(filters=", ".join(LIST_FILTERS))
            )
        if page < 1:
            raise DomainError(_("Pages start at 1: `list open page 2`."))
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
        contact = turn.actor.role == Role.CUSTOMER  # a customer owns no case: theirs they filed

        def visible(customer_id: str) -> bool:
            if turn.actor.role == Role.CUSTOMER:
                return tenants.get(customer_id) == turn.actor.tenant_id
            return True

        def keep(c: Case) -> bool:
            if not visible(c.customer_id) or (customer and c.customer_id != customer.id):
                return False
            return {
                "mine": (c.created_by if contact else c.owner) == me
                and c.is_live
                and c.state != State.CUSTOMER_INFORMED,
                "open": c.state not in (State.CLOSED, State.CANCELLED, State.CUSTOMER_INFORMED),
                "unassigned": c.owner is None and c.state in (State.OPEN, State.REOPENED),
                "escalated": c.state == State.ESCALATED,
                "awaiting-customer": c.state == State.RESOLVED,
                "all": True,
            }[flt]

        narrow: dict[str, Any] = {}
        if flt == "mine" and not contact:
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
            offset=(page - 1) * LIST_LIMIT,
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
        if not total:
            return _reply(_("{title}: none.").format(title=title), kind="list")
        pages = -(-total // LIST_LIMIT)
        count = ngettext("{n} case", "{n} cases", total).format(n=total)
        if page > pages:
            raise DomainError(
                ngettext(
                    "{title}: there is only {pages} page ({count}).",
                    "{title}: there are only {pages} pages ({count}).",
                    pages,
                ).format(title=title, pages=pages, count=count)
            )
        names = await self._names()
        customers = {
            cid: await self.store.get_customer(cid) for cid in {c.customer_id for c in cases}
        }
        lines = [
            list_line(c, customers.get(c.customer_id), names, turn.now, turn.actor) for c in cases
        ]
        if pages == 1:
            head = f"{title} ({total}):"
        else:
            head = _("{title}, page {page} of {pages} · {count}:").format(
                title=title, page=page, pages=pages, count=count
            )
        buttons: list[Button] = []
        if page < pages:
            more = f"{flt} page {page + 1}" + (f" customer {customer.name}" if customer else "")
            buttons.append(Button(_("More"), ActionRef("list", value=more)))
        return Result([Reply(text=head + "\n" + "\n".join(lines), buttons=buttons, kind="list")])

    @command(
        "add",
        needs="case",
        aliases=("补充",),
        action=Action.ADD,
        usage="add BILL-n text",
        help=N_("add to a case: a comment the customer and the billing team both see"),
        form="add",
        handler_checks=True,
    )
    async def cmd_add(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self.load_case(turn, number, Action.ADD, "add BILL-7 the invoice was paid")
        if not rest:
            return await self.forms.start(turn, "add", case_context(case), prefill={})
        return await self.do_add(turn, case, rest)

    async def do_add(self, turn: Turn, case: Case, text: str) -> Result:
        """A comment on ``case``; its owner (or the unassigned queue) is told in the same commit."""
        case.add_comment(text, turn.actor, turn.now)
        who = turn.user.display_name or turn.actor.user_id
        tag = f"commented-{len(case.audit)}"  # one job per comment: a stage has many

        def news() -> str:
            return _("{who} added to {case}: “{text}”").format(
                who=who, case=case.id, text=_excerpt(text)
            )

        ops = await self._tell_the_desk(turn, case, tag, news)
        if turn.actor.role == Role.CUSTOMER:
            done = _("Added to {case}. The billing team has been told.")
        else:
            done = _("Comment added to {case}; the customer sees it (an internal one is `note`).")
        return await self.save_and_show(turn, case, done.format(case=case.id), extra_ops=ops)

    @command(
        "withdraw",
        needs="case",
        aliases=("撤回",),
        action=Action.WITHDRAW,
        usage="withdraw BILL-n [reason]",
        help=N_("withdraw a case you no longer need (the reason is optional)"),
        handler_checks=True,
    )
    async def cmd_withdraw(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self.load_case(turn, number, Action.WITHDRAW, "withdraw BILL-7 sorted out")
        return await self.do_withdraw(turn, case, rest)

    async def do_withdraw(self, turn: Turn, case: Case, reason: str) -> Result:
        """``case`` withdrawn: cancelled, its reminders and watch stopped, its owner told."""
        case.withdraw(reason, turn.actor, turn.now)
        who = turn.user.display_name or turn.actor.user_id

        def news() -> str:
            if reason.strip():
                return _("{who} withdrew {case}: “{reason}”").format(
                    who=who, case=case.id, reason=_excerpt(reason)
                )
            return _("{who} withdrew {case}.").format(who=who, case=case.id)

        ops = await self._tell_the_desk(turn, case, "withdrawn", news)
        ops += [stop_loop_op(case), stop_watch_op(case)]
        if turn.actor.role == Role.CUSTOMER:
            done = _("{case} is withdrawn. Thank you for letting us know.")
        else:
            done = _("{case} is withdrawn for the customer.")
        return await self.save_and_show(turn, case, done.format(case=case.id), extra_ops=ops)

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
        return await self.do_assign(turn, case, rest.split()[0])

    async def do_assign(self, turn: Turn, case: Case, who: str) -> Result:
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
        "resolve",
        needs="case",
        aliases=("解决",),
        action=Action.RESOLVE,
        usage="resolve BILL-n text",
        help=N_("the outcome; a dispute: credit 120.00 EUR, partial 50.00 EUR or denied text"),
        form="resolve",
        handler_checks=True,
        teams_menu=TeamsMenu(7, "Record the outcome: resolve BILL-7 what was done"),
        words={
            "credit": ("抵免", "全额抵免"),
            "partial": ("部分抵免", "部分"),
            "denied": ("拒绝", "已拒绝"),
        },
    )
    async def cmd_resolve(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self.load_case(turn, number, Action.RESOLVE, "resolve BILL-7 what was done")
        if not rest:
            return await self.forms.start(turn, "resolve", case_context(case), prefill={})
        values = {"resolution": rest}
        if case.kind == Kind.DISPUTE:
            values = self._parse_outcome(case, rest, cmd)
        # The resolve form's end, as if filled in: a dispute never reported asks first.
        return await self.forms.end(turn, "resolve", case_context(case), values)

    def _parse_outcome(self, case: Case, rest: str, cmd: Command) -> dict[str, str]:
        """``credit 120.00 [EUR] [text]``, ``partial …``, ``denied text``: the form's answers."""
        words = rest.split()
        head = cmd.keyword(words[0])
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
            return {"outcome": outcome.value, "resolution": text}
        if len(words) < 2:
            raise DomainError(usage)
        assert case.dispute is not None
        # The currency may follow the amount (or lead it); left out, it is the dispute's.
        size = 2 if len(words) >= 3 and any(is_currency(w) for w in words[1:3]) else 1
        credited = parse_money(
            " ".join(words[1 : 1 + size]), default_currency=case.dispute.amount.currency
        )
        case.check_credit(outcome, credited)
        return {
            "outcome": outcome.value,
            "credited": str(credited.amount),
            "resolution": " ".join(words[1 + size :]),
        }

    async def do_resolve(
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
        words={
            "email": ("邮件", "电子邮件"),
            "call": ("电话",),
            "chat": ("聊天",),
            "ticket": ("工单", "支持票证"),
            "meeting": ("会议",),
        },
    )
    async def cmd_informed(self, turn: Turn, cmd: Command) -> Result:
        number, rest = cmd.case_and_rest()
        case = await self.load_case(turn, number, Action.INFORMED, "informed BILL-7 email")
        if not rest:
            return await self.forms.start(turn, "informed", case_context(case), prefill={})
        head, _sep, text = rest.partition(" ")
        try:
            via = InformedVia(cmd.keyword(head))
        except ValueError:
            raise DomainError(
                _("How was the customer told? One of: email, call, chat, ticket, meeting.")
            ) from None
        return await self.do_informed(turn, case, via, text.strip())

    async def do_informed(self, turn: Turn, case: Case, via: InformedVia, text: str) -> Result:
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

    async def do_reopen(self, turn: Turn, case: Case, reason: str) -> Result:
        case.reopen(reason, turn.actor, turn.now)
        return await self.save_and_show(
            turn,
            case,
            _("{case} is reopened.").format(case=case.id),
            extra_ops=[stop_loop_op(case), watch_op(case, turn.now, self.settings)],
        )

    async def do_cancel(self, turn: Turn, case: Case, reason: str) -> Result:
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
        return await self.do_reopen(turn, case, rest)

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
        return await self.do_cancel(turn, case, rest)

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
        words={"1h": ("1小时",), "4h": ("4小时",), "tomorrow": ("明天", "明早")},
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
        return await self.do_snooze(turn, case, cmd.keyword(rest.split()[0]))

    async def do_snooze(self, turn: Turn, case: Case, until: str) -> Result:
        if until not in SNOOZE_LABELS:
            raise DomainError(_("Snooze for 1h, 4h or until tomorrow: `snooze BILL-7 4h`."))
        job = await self.store.get_job(loop_key(case.number))
        if job is None or case.state != State.RESOLVED:
            raise DomainError(
                _("{case} has no reminders to snooze: only resolved cases remind.").format(
                    case=case.id
                )
            )
        owner = await self.store.get_user(case.owner) if case.owner else None
        hours = WorkingHours.parse(  # "tomorrow" is the morning of whoever the reminders reach
            (owner or turn.user).time_zone,
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
        at = local_time(when, turn.user.time_zone)
        if owner is not None and owner.id != turn.actor.user_id:  # the reminders are the owner's
            text = _("Snoozed: I will remind {owner} about {case} again at {when}.").format(
                owner=u(owner.display_name), case=case.id, when=at
            )
        else:
            text = _("Snoozed: I will remind you about {case} again at {when}.").format(
                case=case.id, when=at
            )
        return _reply(text, replace=False)

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
        words={
            "en": ("english", "英文", "英语"),
            "zh": ("zh_cn", "zh-cn", "chinese", "中文", "汉语"),
        },
    )
    async def cmd_language(self, turn: Turn, cmd: Command) -> Result:
        check(turn.actor, Action.LANGUAGE)
        locales = {"en": "en", "zh": "zh_CN"}
        choice = cmd.word(0) if len(cmd.words) == 1 else ""
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
