"""The billing desk: one message through the desk, the pipeline every channel shares.

:meth:`Desk.handle` takes one :class:`Message` (typed text, a click or a form
submission) and returns the replies for the sender plus notifications for
other people. Every action is checked by the one authorization policy; every
change goes through the domain and is stored guarded by the case's write
counter (``version``); a click carries the card's stage (``stage``), so a
stale card or a second click answers "already done" and changes nothing.

The pipeline is here: a request already applied (redone after a crash), an open
form, a click, a typed command, each to its handler; errors become friendly
replies. The parts:

* ``conversations/desk_commands.py``: the commands (``@command`` methods, which
  :class:`Desk` inherits);
* ``conversations/casework.py``: load, check, save and show a case;
* ``conversations/desk_forms.py``: the forms (``FORMS``, ``FORM_ACTIONS``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, cast

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.domain import Conflict, DomainError, Role, User
from bot.i18n import _, ngettext, use_locale
from bot.kernel.model import ActionRef, Message, Reply
from bot.money import MoneyError
from bot.policy import Action, allowed, check
from bot.storage import StorageError, Store
from conversations.attaching import Attaching
from conversations.casework import _reply, _Stale, applied_key
from conversations.commands import Command, parse
from conversations.desk_commands import Handler
from conversations.desk_forms import FORM_ACTIONS, FORMS
from conversations.directory import Directory
from conversations.formengine import FormDecl, FormEngine
from conversations.registry import REGISTRY, Registry, declared
from conversations.text import clean_input, u
from conversations.turn import Result, Turn

log = logging.getLogger(__name__)

MAX_TEXT = 10_000  # a typed command; descriptions and notes in forms have their own limits


async def _nothing_due(user: User, at: datetime) -> list[tuple[datetime, str, str]]:
    return []


class Desk(Attaching):
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
                text = ngettext(
                    "That message is too long for me: at most {n} character.",
                    "That message is too long for me: at most {n} characters.",
                    MAX_TEXT,
                )
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
                result = await self._dispatch(turn)
                await self.remember_case(turn, result)
                return result
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

    async def _dispatch(self, turn: Turn) -> Result:
        msg = turn.msg
        if msg.files and msg.form_values is None and msg.action is None:
            # A file shared (or uploaded): attached to the case named, or the case in context.
            cmd = parse(msg.text, self.commands)
            if cmd.name != "attach":
                cmd = Command("attach", msg.text)
            return await self._command(turn, cmd)
        if msg.thread_case and msg.action is None and msg.form_values is None:
            if turn.actor.role == Role.CUSTOMER or not msg.addressed:
                return await self._in_case_thread(turn, msg.thread_case)
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

    async def _in_case_thread(self, turn: Turn, case_id: str) -> Result:
        """A message in a case card's thread (Slack) or a reply to the card (Teams).

        A customer's words there add to the case (``add``: checked like the typed command).
        Staff keep their chat: a message written to the bot is a command as anywhere else
        (not handled here), one that was not (a plain Slack thread reply) gets no answer.
        """
        msg = turn.msg
        if turn.actor.role != Role.CUSTOMER or not msg.text.strip():
            return Result([])
        return await self._command(turn, Command("add", f"{case_id} {msg.text}"))

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
            return self._unknown(turn, cmd)
        if cmd.spec is None:
            cmd = replace(cmd, spec=spec)  # the handler reads its argument words through it
        if not spec.handler_checks:
            # The declared action; a ``handler_checks`` handler checks it itself (on the
            # case it loads: tenant and owner rules; or auditing a refusal).
            check(turn.actor, spec.action)
        return await handler(turn, cmd)

    def _unknown(self, turn: Turn, cmd: Command) -> Result:
        """One line for a word that is no command: the closest one the person may use."""
        word = u(cmd.name[:40])
        found = self.commands.closest(cmd.name, turn.actor.role, self.handlers)
        if found is None:
            text = _("I don't know the command “{word}”. Type `help` to see what I can do.")
            return _reply(text.format(word=word), kind="error")
        close, glued = found
        line = " ".join(p for p in (close, glued, cmd.args) if p)
        if len(line) > 80:
            line = line[:79] + "…"
        text = _("I don't know the command “{word}”. Did you mean `{line}`?")
        return _reply(text.format(word=word, line=u(line)), kind="error")

    # ------------------------------------------- commands and forms of flow modules
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


__all__ = ["FORMS", "FORM_ACTIONS", "Desk", "Result", "Turn"]
