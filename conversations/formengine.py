"""The form engine: every multi-step form is a declaration; the engine runs all of them.

A :class:`FormDecl` says what a form asks (:class:`Field`, each with its own
checks), which checks span fields (:class:`Rule`), which policy
:class:`~bot.policy.Action` guards it and what it ends in (``complete``).
The engine owns everything else, the same way for every form:

* guarding: the policy is checked before a form is shown or a submission is
  looked at (a forged ``form_id`` sees nothing);
* text channels, one field at a time: ``cancel``, ``skip``, ``ok`` (keep the
  suggestion), a check at the step that asks (a rule runs when the last field
  it reads is given and asks again only the field it names, keeping the other
  answers), "create this customer?", and "that answer is a command: run it or
  use it as the answer?";
* whole forms at once (a Slack modal, a Teams card, the web page): the same
  checks, the errors on the fields;
* resume after a restart: the state is the conversation record
  ``{"form", "values", "prefill", "context", "confirm"}`` (plus ``question``
  while a command-or-answer question is open), the shape the desk wrote before
  this engine; a stored form whose answers break a rule asks that field again;
* never a trap: a completion that fails ends the form (the error is said), so
  no state is left where only ``cancel`` helps.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bot.domain import Case, DomainError, NotFound, parse_case_id
from bot.i18n import _
from bot.kernel.model import (
    STAGE,
    ActionRef,
    Button,
    ButtonStyle,
    Choice,
    FieldKind,
    Form,
    FormField,
    Message,
    Reply,
    read_stage,
)
from bot.policy import Action, check
from bot.storage import Op, Store
from conversations.commands import Command, complete_command, parse
from conversations.forms import ValidationError, choices, validate
from conversations.text import u
from conversations.turn import Result, Turn, reply

log = logging.getLogger(__name__)

# The English words work everywhere; the Chinese ones too (like the command aliases).
CANCEL_WORDS = {"cancel", "quit form", "stop", "abort", "取消"}
SKIP_WORDS = {"skip", "-", "跳过"}
YES = {"yes", "y", "ok", "create", "是", "好", "确定", "创建"}
NO = {"no", "n", "否", "不"}
# The two answers to "run it or use it as the answer?" (the buttons send these values).
RUN = "run"
USE = "answer"
FREE_TEXT = (FieldKind.TEXT, FieldKind.LONG_TEXT)

Answers = dict[str, str]


@dataclass(slots=True)
class FormEnv:
    """What a form's callables see: the turn, the context, the answers so far, its case."""

    host: Any  # the desk (or whatever object the engine was made for)
    turn: Turn
    ctx: dict[str, str]
    values: Answers
    case: Case | None = None
    data: dict[str, Any] = field(default_factory=dict)  # what the form's ``load`` found


Check = Callable[[FormEnv, str], str | Awaitable[str]]
Also = tuple[tuple[str, str], ...]
Condition = Callable[[FormEnv], bool]
Complete = Callable[[FormEnv, Answers, Op], Awaitable[Result]]


@dataclass(frozen=True, slots=True)
class NewValue:
    """A value that may not exist yet (a customer): find it, or ask and create it.

    ``find`` returns the stored spelling or None; text channels then ask
    ``question`` (yes/no) and ``create`` it on yes, saying ``created``; a whole
    form creates it at once and says ``created_now``.
    """

    find: Callable[[FormEnv, str], Awaitable[str | None]]
    create: Callable[[FormEnv, str], Awaitable[str]]
    applies: Condition
    question: str  # N_() text with {name}
    created: str  # N_() text with {name}
    created_now: str  # N_() text with {name}


@dataclass(frozen=True, slots=True)
class Field:
    """One question of a form. Texts are ``N_()`` messages, translated when shown."""

    name: str
    label: str
    kind: FieldKind = FieldKind.TEXT
    required: bool | Condition = True
    choices: Mapping[Any, str] | Callable[[FormEnv], tuple[Choice, ...]] = field(
        default_factory=dict
    )
    hint: str | None = None
    default: str | Callable[[FormEnv], str | None] | None = None
    max_length: int = 3000
    checks: tuple[Check, ...] = ()  # after the kind's own check; each returns the value kept
    when: Condition | None = None  # asked only when this holds (given the answers so far)
    new_value: NewValue | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """A check across ``fields``: runs once all are answered; ``ask_again`` is asked again."""

    fields: tuple[str, ...]
    check: Callable[[FormEnv, Answers], None]  # raises ValidationError
    ask_again: str


@dataclass(frozen=True, slots=True)
class Confirm:
    """A question before a form's end (``question`` returns None: nothing to ask).

    Asked whichever way the form was filled (text, a whole form, a typed command
    with all its arguments: :meth:`FormEngine.end`), with the buttons ``yes`` (an
    ``N_()`` label) and Cancel; the answers wait in the conversation record.
    """

    question: Callable[[FormEnv, Answers], str | None]
    yes: str


@dataclass(frozen=True, slots=True)
class FormDecl:
    """A form: what it asks, what guards it, what it ends in.

    ``title`` is an ``N_()`` message (``{case}`` is the form's case id).
    ``on_case``: the context names a case (``{"case": "BILL-7", "stage": "3"}``),
    loaded before anything is asked and guarded with its customer's tenant.
    ``complete(env, values, clear_op)`` acts on the checked values and should
    commit ``clear_op`` (which ends the form) with its own change.
    """

    id: str
    action: Action
    title: str
    fields: tuple[Field, ...]
    complete: Complete
    rules: tuple[Rule, ...] = ()
    on_case: bool = False
    intro: Callable[[FormEnv], str | None] | None = None
    load: Callable[[FormEnv], Awaitable[None]] | None = None
    confirm: Confirm | None = None


def case_context(case: Case) -> dict[str, str]:
    """The context of a form about ``case``: its id and the stage it was opened at."""
    return {"case": case.id, STAGE: str(case.stage)}


def conversation_key(msg: Message) -> str:
    """Where a conversation's form in progress is stored."""
    return f"{msg.channel.value}|{msg.conversation}|{msg.user}"


@dataclass(slots=True)
class _State:
    """A form in progress, as stored (see the module docstring for the shape)."""

    form: str
    values: Answers
    prefill: Answers
    context: dict[str, str]
    confirm: str | None = None
    question: dict[str, str] | None = None
    confirm_end: bool = False  # every answer is in: the form's Confirm question is open

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> _State:
        question = doc.get("question")
        return cls(
            form=str(doc.get("form") or ""),
            values={str(k): str(v) for k, v in (doc.get("values") or {}).items()},
            prefill={str(k): str(v) for k, v in (doc.get("prefill") or {}).items()},
            context={str(k): str(v) for k, v in (doc.get("context") or {}).items()},
            confirm=doc.get("confirm") or None,
            question=dict(question) if isinstance(question, Mapping) else None,
            confirm_end=bool(doc.get("confirm_end")),
        )

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "form": self.form,
            "values": dict(self.values),
            "prefill": dict(self.prefill),
            "context": dict(self.context),
            "confirm": self.confirm,
        }
        if self.question:
            doc["question"] = dict(self.question)
        if self.confirm_end:
            doc["confirm_end"] = True
        return doc


TenantOf = Callable[[Case], Awaitable[str | None]]
RunCommand = Callable[[Turn, Command], Awaitable[Result]]


class FormEngine:
    """Runs the declared forms of one desk (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        host: Any,
        tenant_of: TenantOf,
        run_command: RunCommand,
        commands: Callable[[], Mapping[str, str | None]],
    ) -> None:
        self.store = store
        self.host = host
        self._tenant_of = tenant_of
        self._run_command = run_command
        self._commands = commands
        self.decls: dict[str, FormDecl] = {}

    # ---- declarations ---------------------------------------------------------------
    def add(self, decl: FormDecl) -> None:
        """Add (or replace) a form."""
        self.decls[decl.id] = decl

    def change(self, form_id: str, **changes: Any) -> FormDecl:
        """Replace parts of a declared form (a flow module's own fields, completion…)."""
        decl = replace(self.decls[form_id], **changes)
        self.decls[form_id] = decl
        return decl

    @property
    def actions(self) -> dict[str, Action]:
        """Each form and the policy action that guards it."""
        return {d.id: d.action for d in self.decls.values()}

    def _decl(self, form_id: str) -> FormDecl:
        decl = self.decls.get(form_id)
        if decl is None:
            raise DomainError(_("Unknown form."))
        return decl

    # ---- guard and environment ------------------------------------------------------
    async def _case_of(self, ctx: Mapping[str, str]) -> Case | None:
        number = parse_case_id(ctx.get("case", ""))
        return await self.store.get_case(number) if number else None

    async def guard(self, turn: Turn, form_id: str, ctx: Mapping[str, str]) -> None:
        """Raise :class:`~bot.policy.Forbidden` unless the sender may do what the form does."""
        decl = self._decl(form_id)
        case = await self._case_of(ctx) if decl.on_case else None
        if case is None:
            check(turn.actor, decl.action)
            return
        check(turn.actor, decl.action, case, customer_tenant=await self._tenant_of(case))

    async def _env(self, turn: Turn, decl: FormDecl, ctx: dict[str, str]) -> FormEnv:
        env = FormEnv(self.host, turn, ctx, {})
        if decl.on_case:
            env.case = await self._case_of(ctx)
            if env.case is None:
                raise NotFound(_("That case no longer exists."))
        if decl.load is not None:
            await decl.load(env)
        return env

    def _fields(self, decl: FormDecl, env: FormEnv) -> list[Field]:
        """The fields asked, given the answers so far."""
        return [f for f in decl.fields if f.when is None or f.when(env)]

    def _title(self, decl: FormDecl, env: FormEnv) -> str:
        return _(decl.title).format(case=env.case.id if env.case else "")

    @staticmethod
    def _required(f: Field, env: FormEnv) -> bool:
        return f.required(env) if callable(f.required) else f.required

    def _shown(self, f: Field, env: FormEnv) -> FormField:
        """A field as channels show it (translated, choices and suggestion filled in)."""
        if callable(f.choices):
            options = f.choices(env)
        else:
            options = choices(f.choices) if f.choices else ()
        default = f.default(env) if callable(f.default) else f.default
        return FormField(
            f.name,
            _(f.label),
            f.kind,
            required=self._required(f, env),
            choices=options,
            value=default,
            hint=_(f.hint) if f.hint else None,
            max_length=f.max_length,
        )

    async def _check(self, f: Field, env: FormEnv, raw: str) -> tuple[str, Also]:
        """The value an answer gives (and others it fills), or :class:`ValidationError`.

        The kind's check first (``12,50`` is no amount), then the field's own checks,
        each given the answer as typed (``60 EUR``) and returning the value to keep.
        """
        parsed = validate(self._shown(f, env), raw)
        value = parsed.value
        if value:
            for check_ in f.checks:
                result = check_(env, raw.strip())
                value = await result if inspect.isawaitable(result) else result
        return value, parsed.also

    def _broken(self, decl: FormDecl, env: FormEnv, asked: set[str]) -> tuple[str, str] | None:
        """The first rule the answers break, as (field to ask again, why)."""
        for rule in decl.rules:
            if rule.ask_again not in asked or not all(
                name in env.values and name in asked for name in rule.fields
            ):
                continue
            try:
                rule.check(env, env.values)
            except ValidationError as exc:
                return rule.ask_again, str(exc)
        return None

    # ---- text channels: one field at a time -----------------------------------------
    async def start(
        self, turn: Turn, form_id: str, ctx: dict[str, str], prefill: Mapping[str, str]
    ) -> Result:
        """Open a form: the whole form for channels that show one, its first question in text."""
        decl = self._decl(form_id)
        env = await self._env(turn, decl, ctx)
        values = {k: v for k, v in prefill.items() if v}
        env.values = dict(values)
        shown = [self._shown(f, env) for f in self._fields(decl, env)]
        intro = decl.intro(env) if decl.intro else None
        form = Form(
            form_id=form_id,
            title=self._title(decl, env),
            fields=[replace(f, value=values.get(f.name, f.value)) for f in shown],
            submit_label=_("Submit"),
            intro=intro,
            context=ctx,
        )
        state = _State(form_id, {}, values, ctx)
        await self._save(turn, state)
        env.values = state.values
        first = self._prompt(decl, env, state)
        # Channels that can show a whole form (modal, card) use ``form``; text channels the prompt.
        first.replies[0].form = form
        if intro:
            first.replies.insert(0, Reply(text=intro))
        return first

    async def open_state(self, msg: Message) -> dict[str, Any] | None:
        """The form in progress in this conversation, if any (as stored)."""
        state = await self.store.get_conversation(conversation_key(msg))
        return state if state and state.get("form") else None

    async def close(self, msg: Message) -> None:
        """End the form in progress in this conversation (nothing is saved)."""
        await self.store.save_conversation(conversation_key(msg), None)

    async def _save(self, turn: Turn, state: _State | None) -> None:
        doc = state.to_doc() if state is not None else None
        await self.store.save_conversation(conversation_key(turn.msg), doc)

    def _pending(self, decl: FormDecl, env: FormEnv, state: _State) -> list[Field]:
        return [f for f in self._fields(decl, env) if f.name not in state.values]

    def _prompt(self, decl: FormDecl, env: FormEnv, state: _State) -> Result:
        """Ask the next unanswered field."""
        pending = self._pending(decl, env, state)
        f = pending[0]
        shown = self._shown(f, env)
        prefill = state.prefill.get(f.name) or shown.value
        question = shown.label
        if shown.hint:
            question += f" ({shown.hint})"
        if not shown.required:
            question += " — " + _("optional, `skip` to leave it out")
        buttons = [Button(c.label, ActionRef("answer", value=c.value)) for c in shown.choices]
        if prefill and f.kind != FieldKind.CHOICE:
            question += "\n" + _("Suggested: {value} (send `ok` to keep it)").format(
                value=u(prefill)
            )
        elif prefill:
            question += "\n" + _("Suggested: {value} (send `ok` to keep it)").format(value=prefill)
        asked = [x.name for x in self._fields(decl, env)]
        header = _("{title} — step {step} of {total}. `cancel` stops.").format(
            title=self._title(decl, env), step=asked.index(f.name) + 1, total=len(asked)
        )
        return Result([Reply(text=f"{header}\n{question}", buttons=buttons, kind="form")])

    def _ask_again(self, decl: FormDecl, env: FormEnv, state: _State, error: str) -> Result:
        out = reply(error, kind="error")
        out.replies.extend(self._prompt(decl, env, state).replies)
        return out

    async def step(self, turn: Turn, doc: Mapping[str, Any], text: str) -> Result:
        """One typed answer (or a click on an answer button) to the form in progress."""
        state = _State.from_doc(doc)
        answer = text.strip()
        low = answer.lower()
        if low in CANCEL_WORDS:
            await self._save(turn, None)
            return reply(_("Cancelled. Nothing was saved."))
        try:
            decl = self._decl(state.form)
            env = await self._env(turn, decl, state.context)
        except DomainError:
            await self._save(turn, None)  # a form that cannot go on is over, not a trap
            raise
        env.values = state.values
        if state.confirm_end:
            return await self._confirm_end(decl, env, state, answer)
        if state.confirm:
            return await self._confirm(decl, env, state, low)
        if state.question:
            return await self._command_or_answer(decl, env, state, answer)
        return await self._answer(decl, env, state, answer)

    async def _answer(
        self, decl: FormDecl, env: FormEnv, state: _State, answer: str, *, as_typed: bool = False
    ) -> Result:
        """``answer`` to the next field; ``as_typed``: the person said it is no command."""
        broken = self._broken(decl, env, {f.name for f in self._fields(decl, env)})
        if broken is not None:  # a stored form from before its rule: ask that field first
            state.values.pop(broken[0], None)
            await self._save(env.turn, state)
            return self._ask_again(decl, env, state, broken[1])
        pending = self._pending(decl, env, state)
        if not pending:
            return await self._advance(decl, env, state)
        f = pending[0]
        low = answer.lower()
        prefill = state.prefill.get(f.name) or self._shown(f, env).value
        typed = True
        if low in SKIP_WORDS:
            if self._required(f, env):
                error = _("{label} is required; it cannot be skipped.").format(label=_(f.label))
                return self._ask_again(decl, env, state, error)
            answer, typed = "", False
        elif low == "ok" and prefill:
            answer, typed = prefill, False
        try:
            value, also = await self._check(f, env, answer)
        except ValidationError as exc:
            cmd = complete_command(answer, self._commands()) if typed and not as_typed else None
            if cmd is None:
                return self._ask_again(decl, env, state, str(exc))
            # No answer but a whole command line (`list`, `status BILL-7` typed mid-form):
            # nothing to guess, so it runs, and the form waits at this step.
            out = await self._run(decl, env, state, answer)
            note = _("“{answer}” is no answer to “{label}”, so I ran it as a command.").format(
                answer=u(answer), label=_(f.label)
            )
            out.replies.insert(0, Reply(text=note))
            return out
        if typed and not as_typed and f.kind in FREE_TEXT:
            cmd = complete_command(answer, self._commands())
            if cmd is not None:
                state.question = {"field": f.name, "text": answer}
                await self._save(env.turn, state)
                return self._ask_command_or_answer(f, answer)
        if value and f.new_value is not None and f.new_value.applies(env):
            known = await f.new_value.find(env, value)
            if known is None:
                state.confirm = value
                await self._save(env.turn, state)
                return self._ask_create(f.new_value, value)
            value = known
        state.values[f.name] = value
        names = {x.name for x in decl.fields}
        for other, extra in also:
            if other in names:
                state.values[other] = extra  # "120.00 EUR" also answers the currency
        return await self._advance(decl, env, state)

    def _ask_command_or_answer(self, f: Field, answer: str) -> Result:
        text = _(
            "“{answer}” is also a command. Run it, or use it as the answer to “{label}”? (1 or 2)"
        ).format(answer=u(answer), label=_(f.label))
        buttons = [
            Button(_("Run it"), ActionRef("answer", value=RUN), ButtonStyle.PRIMARY),
            Button(_("Use as answer"), ActionRef("answer", value=USE)),
        ]
        return Result([Reply(text=text, buttons=buttons, kind="form")])

    async def _command_or_answer(
        self, decl: FormDecl, env: FormEnv, state: _State, answer: str
    ) -> Result:
        question = state.question or {}
        state.question = None
        low = answer.casefold()
        pending = self._pending(decl, env, state)
        if not pending or pending[0].name != question.get("field"):
            return await self._answer(decl, env, state, answer)  # the form moved on
        if low in {"1", RUN, "run it", _("Run it").casefold()}:
            await self._save(env.turn, state)
            return await self._run(decl, env, state, question.get("text", ""))
        if low in {"2", USE, "use as answer", _("Use as answer").casefold()}:
            return await self._answer(decl, env, state, question.get("text", ""), as_typed=True)
        return await self._answer(decl, env, state, answer)  # a new answer instead

    async def _run(self, decl: FormDecl, env: FormEnv, state: _State, text: str) -> Result:
        """Run the command typed into the form; the form stays open unless it changed."""
        before = state.to_doc()
        out = await self._run_command(env.turn, parse(text))
        after = await self.store.get_conversation(conversation_key(env.turn.msg))
        if after != before:
            return out  # the command opened another form (or ended this one)
        case = await self._case_of(state.context) if decl.on_case else None
        stage = read_stage(state.context)  # also the older "version" of a form left open before
        if decl.on_case and (case is None or (stage is not None and stage != case.stage)):
            await self._save(env.turn, None)
            out.replies.append(
                Reply(
                    text=_("The form “{title}” is closed: the case changed.").format(
                        title=self._title(decl, env)
                    )
                )
            )
            return out
        out.replies.extend(self._prompt(decl, env, state).replies)
        return out

    def _ask_create(self, new: NewValue, value: str) -> Result:
        return Result(
            [
                Reply(
                    text=_(new.question).format(name=u(value)),
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

    async def _confirm(self, decl: FormDecl, env: FormEnv, state: _State, low: str) -> Result:
        """The answer to "create it?"."""
        name = state.confirm or ""
        pending = self._pending(decl, env, state)
        f = pending[0] if pending else None
        state.confirm = None
        if f is None or f.new_value is None:
            return await self._advance(decl, env, state)
        if low in YES:
            value = await f.new_value.create(env, name)
            state.values[f.name] = value
            out = await self._advance(decl, env, state)
            out.replies.insert(0, Reply(text=_(f.new_value.created).format(name=u(value))))
            return out
        if low in NO:
            await self._save(env.turn, state)
            return self._prompt(decl, env, state)
        state.confirm = name
        await self._save(env.turn, state)
        return reply(_("Please answer yes or no."), kind="error")

    async def _advance(self, decl: FormDecl, env: FormEnv, state: _State) -> Result:
        """After an answer: a broken rule asks its field again, else the next field, else done."""
        asked = {f.name for f in self._fields(decl, env)}
        broken = self._broken(decl, env, asked)
        if broken is not None:
            state.values.pop(broken[0], None)
            await self._save(env.turn, state)
            return self._ask_again(decl, env, state, broken[1])
        if self._pending(decl, env, state):
            await self._save(env.turn, state)
            return self._prompt(decl, env, state)
        values = {name: state.values[name] for name in asked}
        return await self._complete(decl, env, values)

    async def end(
        self, turn: Turn, form_id: str, ctx: dict[str, str], values: Mapping[str, str]
    ) -> Result:
        """A form's end with answers already checked (a command typed with all its arguments).

        Asks the form's :class:`Confirm` question first, like a form filled in. A form
        open in the conversation stays open (the command was run from inside it).
        """
        decl = self._decl(form_id)
        env = await self._env(turn, decl, ctx)
        return await self._complete(decl, env, dict(values), keep=True)

    def _confirm_reply(self, decl: FormDecl, question: str) -> Result:
        assert decl.confirm is not None
        buttons = [
            Button(_(decl.confirm.yes), ActionRef("answer", value="yes"), ButtonStyle.PRIMARY),
            Button(_("Cancel"), ActionRef("answer", value="cancel")),
        ]
        return Result([Reply(text=question, buttons=buttons, kind="form")])

    async def _confirm_end(
        self, decl: FormDecl, env: FormEnv, state: _State, answer: str
    ) -> Result:
        """The answer to the form's Confirm question: yes ends the form, a command runs."""
        low = answer.casefold()
        values = dict(state.values)
        if low in YES or (decl.confirm and low == _(decl.confirm.yes).casefold()):
            return await self._complete(decl, env, values, confirmed=True)
        if low in NO:
            await self._save(env.turn, None)
            return reply(_("Cancelled. Nothing was saved."))
        cmd = complete_command(answer, self._commands())
        if cmd is not None:  # another command instead: the question is dropped, not a trap
            await self._save(env.turn, None)
            out = await self._run_command(env.turn, cmd)
            dropped = _("“{title}” was not done; nothing was saved.")
            out.replies.insert(0, Reply(text=dropped.format(title=self._title(decl, env))))
            return out
        question = decl.confirm.question(env, values) if decl.confirm else None
        if question is None:  # nothing to ask any more (the case moved on)
            return await self._complete(decl, env, values, confirmed=True)
        out = reply(_("Please answer with one of the buttons, or `cancel`."), kind="error")
        out.replies.extend(self._confirm_reply(decl, question).replies)
        return out

    async def _complete(
        self,
        decl: FormDecl,
        env: FormEnv,
        values: Answers,
        *,
        confirmed: bool = False,
        keep: bool = False,
    ) -> Result:
        """Hand the checked values to the form's completion; a failure ends the form.

        A form with a :class:`Confirm` asks its question first (unless ``confirmed``): the
        answers are kept in the conversation record until the answer. ``keep``: the
        conversation record is left as it is (:meth:`end`).
        """
        key = conversation_key(env.turn.msg)
        before = await self.store.get_conversation(key)
        clear_op = self.store.conversation_op(key, before if keep else None)
        env.values = values
        try:
            await self.guard(env.turn, decl.id, env.ctx)  # the policy, once more, as it is now
            question = (
                decl.confirm.question(env, values) if decl.confirm and not confirmed else None
            )
            if question is not None:
                await self._save(env.turn, _State(decl.id, values, {}, env.ctx, confirm_end=True))
                return self._confirm_reply(decl, question)
            return await decl.complete(env, values, clear_op)
        except Exception:
            # Nothing is left half-open: every answer was checked at its step, so what
            # failed here (a race, a refusal) would fail again on any further answer.
            if await self.store.get_conversation(key) == before and before is not None:
                await self.store.commit([clear_op])
            raise

    # ---- whole forms ---------------------------------------------------------------
    async def submit(
        self, turn: Turn, form_id: str, raw: dict[str, str], ctx: dict[str, str]
    ) -> Result:
        """A whole form at once (modal, card, web): check every field and rule, then complete."""
        # Before anything is shown or stored: a forged submission must not see a form's
        # intro (another tenant's case) nor create a customer on its way to a refusal.
        await self.guard(turn, form_id, ctx)
        decl = self._decl(form_id)
        env = await self._env(turn, decl, ctx)
        values: Answers = {}
        errors: dict[str, str] = {}
        fields: list[Field] = []
        # Fields can depend on earlier answers (a denied dispute has no credit): two passes.
        for _pass in range(2):
            env.values = values
            fields = self._fields(decl, env)
            new_values: Answers = {}
            errors = {}
            for f in fields:
                try:
                    value, also = await self._check(f, env, raw.get(f.name, ""))
                except ValidationError as exc:
                    errors[f.name] = str(exc)
                    continue
                new_values[f.name] = value
                for other, extra in also:
                    if not raw.get(other):
                        raw = {**raw, other: extra}
            values = new_values
        env.values = values
        valid = {f.name for f in fields if f.name not in errors}
        for rule in decl.rules:
            if rule.ask_again in errors or not all(n in valid for n in rule.fields):
                continue
            try:
                rule.check(env, values)
            except ValidationError as exc:
                errors[rule.ask_again] = str(exc)
        if errors:
            shown = [self._shown(f, env) for f in fields]
            form = Form(
                form_id=form_id,
                title=self._title(decl, env),
                fields=[replace(f, value=raw.get(f.name) or f.value) for f in shown],
                submit_label=_("Submit"),
                intro=decl.intro(env) if decl.intro else None,
                errors=errors,
                context=ctx,
            )
            labels = {f.name: f.label for f in shown}
            summary = "\n".join(f"{labels[k]}: {v}" for k, v in errors.items())
            return Result(
                [Reply(text=_("Please fix the form:") + "\n" + summary, form=form, kind="error")]
            )
        notes: list[Reply] = []
        for f in fields:
            new = f.new_value
            if new is None or not values.get(f.name) or not new.applies(env):
                continue
            known = await new.find(env, values[f.name])
            if known is None:
                known = await new.create(env, values[f.name])
                notes.append(Reply(text=_(new.created_now).format(name=u(known))))
            values[f.name] = known
        out = await self._complete(decl, env, values)
        out.replies[:0] = notes
        return out


__all__ = [
    "CANCEL_WORDS",
    "Confirm",
    "Field",
    "FormDecl",
    "FormEngine",
    "FormEnv",
    "NewValue",
    "Rule",
    "case_context",
    "conversation_key",
]
