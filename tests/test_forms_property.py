"""Property test over every form (issue 18): no trap, no crash, no unconfirmed command saved.

A hypothesis state machine on the local channel opens any form (ask, dispute,
resolve of a question and of a dispute, informed, reopen, cancel, snooze,
note, assign, escalate in manual mode; as an agent, a lead or a customer) and
answers it with anything: valid, invalid and empty answers, ``skip``, ``ok``,
``cancel``, whole command lines, ``1``/``2``/``yes``/``no``, clicks on the
buttons shown, and restarts (a new runtime on the same store). Whatever the
sequence:

* nothing raises and no reply shows a traceback;
* a form left open always takes a valid answer: driving it with valid answers
  ends it (done, or refused with a reason) within a few steps;
* no case, note or reason holds a command line the person typed as an answer
  unless they chose "Use as answer".
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from bot.kernel.model import Reply
from tests.harness import Chat, DeskEnv

# A valid answer for each question, by the label the prompt starts with.
VALID = {
    "Customer": ("Contoso", "Northwind"),
    "Subscription id": ("skip", "8f3c2b1e-1234-4abc-9def-0123456789ab"),
    "Invoice number": ("G012345678",),
    "Category": ("charges", "2"),
    "Question": ("Why two charges?",),
    # The first is what the end of each run types: valid whatever the currency (JPY too).
    "Disputed amount": ("120", "120.00", "99.95 USD"),
    "Currency": ("EUR", "jpy"),
    "Reason": ("Seats billed twice",),
    "Microsoft's outcome": ("denied", "Partial credit"),
    "Credited amount": ("10", "10.00"),
    "What was done": ("Credit issued",),
    "How was the customer told?": ("email",),
    "Anything to add": ("skip", "told her by phone"),
    "Remind me again in": ("1h",),
    "Internal note": ("called the customer",),
    "Assign to": ("bob",),
    "Severity": ("moderate", "ok"),
    "Service request number": ("2411240010001234",),
}
INVALID = (
    "",
    "   ",
    "12,50",
    "abc",
    "120.005",
    "0.001",
    "100.5 JPY",
    "-5",
    "9",
    "G0123 45",
    "not-a-guid",
    "nobody-here",
    "carol",
    "500.00 EUR",
    "10.00 USD",
    "x" * 3100,
)
# Answers that pass their field's own check but may break a rule or the case's limits.
TRICKY = {
    "Disputed amount": ("120.005", "0.001", "100.5", "100.5 JPY"),
    "Currency": ("USD", "JPY"),
    "Credited amount": ("500.00 EUR", "10.00 USD", "120.001"),
    "Assign to": ("carol", "nobody-here", "alice"),
    "Customer": ("Help Inc",),
}
# Whole command lines: typed as an answer, never saved as one unless confirmed.
COMMANDS = (
    "list",
    "help",
    "status BILL-1",
    "BILL-2",
    "note BILL-1 x",
    "note BILL-999999 x",
    "cancel BILL-1 duplicate of BILL-2",
    "reopen BILL-3 customer wrote again",
    "take BILL-1",
    "customer Contoso",
)
WORDS = ("skip", "ok", "cancel", "1", "2", "yes", "no", "取消", "-")
OPEN = (
    ("alice", "ask"),
    ("alice", "ask Why two charges?"),
    ("carol", "ask"),
    ("alice", "dispute G099887766"),
    ("alice", "dispute"),
    ("carol", "dispute G012345678"),
    ("alice", "resolve BILL-1"),
    ("alice", "resolve BILL-2"),
    ("alice", "informed BILL-3"),
    ("alice", "reopen BILL-3"),
    ("alice", "cancel BILL-1"),
    ("alice", "snooze BILL-3"),
    ("alice", "note BILL-1"),
    ("lena", "assign BILL-1"),
    ("alice", "escalate BILL-1"),
)
_PROMPT = re.compile(r"step \d+ of \d+\. `cancel` stops\.\n(.*)")
_QUOTED = re.compile(r"“(.*)” is also a command", re.DOTALL)


def prompt_label(replies: list[Reply], text: str) -> str | None:
    """What the last prompt asks (a key of VALID), or a pending yes/no or command question."""
    if "is also a command" in text:
        return "command?"
    if "Create it?" in text or "Please answer yes or no." in text:
        return "create?"
    if "Resolve it anyway?" in text:  # a form's Confirm question before its end
        return "confirm?"
    found = _PROMPT.findall(text)
    if not found:
        return None
    line = found[-1]
    return next((label for label in VALID if line.startswith(label)), None)


class FormMachine(RuleBasedStateMachine):
    """One desk, three people, any sequence of answers (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.env = DeskEnv()
        self.chats: dict[str, Chat] = {}
        self.who = "alice"
        self.sent_commands: set[str] = set()
        self.confirmed: set[str] = set()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def chat(self, who: str | None = None) -> Chat:
        who = who or self.who
        if who not in self.chats:
            self.chats[who] = self.env.chat(who)
        return self.chats[who]

    def send(self, text: str) -> None:
        chat = self.chat()
        before = chat.text
        if before and "is also a command" in before and text in ("2", "Use as answer"):
            match = _QUOTED.search(before)
            if match and self.form_open():
                self.confirmed.add(match.group(1))
        if text in COMMANDS:
            self.sent_commands.add(text)
        self.run(chat.send(text))
        self.check_replies(chat)

    def check_replies(self, chat: Chat) -> None:
        assert chat.replies, chat.transcript[-2:]
        assert "Traceback" not in chat.text, chat.text

    def form_open(self, who: str | None = None) -> bool:
        key = f"local|dm:{who or self.who}|{who or self.who}"
        state = self.run(self.env.store.get_conversation(key))
        return bool(state and state.get("form"))

    @initialize()
    def seed(self) -> None:
        async def go() -> None:
            await self.env.store.open()
            await self.env.new_question()  # BILL-1
            await self.env.new_dispute()  # BILL-2, 120.00 EUR
            await self.env.new_question()  # BILL-3, resolved below
            await self.env.chat("alice").send("resolve BILL-3 Credit note issued")
            for who in ("carol", "lena"):
                await self.env.chat(who).send("help")

        self.run(go())

    # ---- what a person does -------------------------------------------------------
    @rule(opened=st.sampled_from(OPEN))
    def open_form(self, opened: tuple[str, str]) -> None:
        self.who = opened[0]
        self.send(opened[1])

    @rule(data=st.data())
    def answer(self, data: st.DataObject) -> None:
        """Mostly what the question asks for, or close to it; sometimes anything at all."""
        label = prompt_label(self.chat().replies, self.chat().text)
        if label == "command?":
            fitting: tuple[str, ...] = ("1", "2", "Run it", "Use as answer")
        elif label == "create?":
            fitting = ("yes", "no")
        elif label == "confirm?":
            fitting = ("yes", "no", "Resolve anyway")
        elif label is not None:
            fitting = VALID[label] + TRICKY.get(label, ())
        else:
            fitting = WORDS
        pool = st.sampled_from(INVALID + WORDS + COMMANDS)
        self.send(data.draw(st.one_of(st.sampled_from(fitting), st.sampled_from(fitting), pool)))

    @rule(data=st.data())
    def click(self, data: st.DataObject) -> None:
        chat = self.chat()
        if not chat.buttons:
            return
        button = data.draw(st.sampled_from(chat.buttons))
        if button.action.value == "answer" and "is also a command" in chat.text:
            match = _QUOTED.search(chat.text)
            if match and self.form_open():
                self.confirmed.add(match.group(1))
        self.run(chat.press(button.action))
        self.check_replies(chat)

    @rule()
    def restart(self) -> None:
        """The server restarts: a new runtime on the same store; chats keep what they saw."""
        self.run(self.env.runtime.close())
        old = self.chats
        self.env = DeskEnv(store=self.env.store)
        self.chats = {}
        for who, chat in old.items():
            self.chats[who] = self.env.chat(who)
            self.chats[who].replies = chat.replies

    @rule()
    def finish_with_valid_answers(self) -> None:
        self.drive_to_the_end()

    # ---- what must hold -------------------------------------------------------------
    def drive_to_the_end(self) -> None:
        """An open form takes valid answers until it ends: never only `cancel` helps."""
        for who in list(self.chats):
            self.who = who
            for _step in range(12):
                if not self.form_open(who):
                    break
                label = prompt_label(self.chat().replies, self.chat().text)
                assert label is not None, f"a form is open but asks nothing:\n{self.chat().text}"
                answer = {"command?": "2", "create?": "yes", "confirm?": "yes"}.get(label) or VALID[
                    label
                ][0]
                self.send(answer)
            assert not self.form_open(who), "\n".join(self.chat().transcript[-12:])

    @invariant()
    def no_unconfirmed_command_is_saved(self) -> None:
        if not hasattr(self, "loop"):
            return
        unconfirmed = self.sent_commands - self.confirmed
        if not unconfirmed:
            return
        for number in range(1, 12):
            case = self.run(self.env.store.get_case(number))
            if case is None:
                continue
            for text in _strings(case.to_doc()):
                assert text.strip() not in unconfirmed, (text, case.id)

    def teardown(self) -> None:
        try:
            self.drive_to_the_end()
            self.no_unconfirmed_command_is_saved()
        finally:
            self.run(self.env.runtime.close())
            self.loop.close()


def _strings(doc: Any) -> list[str]:
    if isinstance(doc, str):
        return [doc]
    if isinstance(doc, dict):
        return [s for v in doc.values() for s in _strings(v)]
    if isinstance(doc, list):
        return [s for v in doc for s in _strings(v)]
    return []


FormMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestEveryForm = FormMachine.TestCase
