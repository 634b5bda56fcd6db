"""A recording fake channel: flow tests read like conversations.

chat = desk_env.chat("alice")
await chat.send("ask Why two charges?")
chat.expect("Customer")
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.app.wiring import build_runtime
from bot.clock import FakeClock
from bot.config import CustomerConfig, Settings, UserConfig
from bot.domain import Role
from bot.kernel.model import ActionRef, Button, Channel, Message, Reply
from bot.storage import MemoryEngine, Store
from conversations.runtime import Runtime
from conversations.text import plain

START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

# Pseudo-locale runs (tests/test_i18n.py): every chat speaks the "pseudo" locale, every
# reply is checked for visible text outside the catalog marks, and ``Chat.text`` shows
# the text without the marks so the flow tests' own assertions still hold.
PSEUDO: ContextVar[bool] = ContextVar("pseudo", default=False)
PSEUDO_FINDINGS: ContextVar[list[str] | None] = ContextVar("pseudo_findings", default=None)
_MARKED = re.compile("⟦[^⟦⟧]*⟧")
_USER = re.compile("\ue000.*?\ue001", re.DOTALL)
# What may stand outside the marks: numbers, punctuation, case ids, codes, links, dates.
_ALLOWED = re.compile(
    r"`[^`]*`|https?://\S+|BILL-\d+|\b[A-Z]{3,4}\b|[+-]\d{4}|(?:[\d\s_]|[^\w`])+",
    re.UNICODE,
)


def strip_pseudo(text: str) -> str:
    return text.replace("⟦", "").replace("⟧", "")


def outside_marks(text: str) -> str:
    """What of ``text`` is neither catalog text, nor typed by a person, nor a code or number."""
    rest = _USER.sub(" ", text)
    while True:
        reduced = _MARKED.sub(" ", rest)
        if reduced == rest:
            break
        rest = reduced
    return _ALLOWED.sub("", rest).strip()


def reply_strings(reply: Reply) -> list[str]:
    """Every user-visible string of a reply."""
    out = [reply.text]
    out += [b.label for b in reply.buttons]
    if reply.card:
        c = reply.card
        out += [c.title, c.state_label, *c.history]
        out += [x for f in c.facts for x in (f.label, f.value)]
        out += [b.label for b in c.buttons]
    if reply.form:
        f = reply.form
        out += [f.title, f.submit_label, f.intro or "", *f.errors.values()]
        for fld in f.fields:
            out += [fld.label, fld.hint or "", *(c.label for c in fld.choices)]
    return [x for x in out if x]


def check_pseudo(replies: list[Reply]) -> None:
    findings = PSEUDO_FINDINGS.get()
    if findings is None:
        return
    for reply in replies:
        for text in reply_strings(reply):
            bad = outside_marks(text)
            if bad:
                findings.append(f"{bad!r} in {text!r}")


TENANT_A = "aaaaaaaa-0000-4000-8000-00000000000a"
TENANT_B = "bbbbbbbb-0000-4000-8000-00000000000b"


def make_settings(**overrides: object) -> Settings:
    base = dict(
        db_path=":memory:",
        users=(
            UserConfig(
                name="lena", role=Role.LEAD, display_name="Lena Lead", time_zone="Europe/Berlin"
            ),
            UserConfig(name="alice", role=Role.AGENT, display_name="Alice Agent"),
            UserConfig(name="bob", role=Role.AGENT, display_name="Bob Agent"),
            UserConfig(name="carol", role=Role.CUSTOMER, customer="Contoso"),
            UserConfig(name="dave", role=Role.CUSTOMER, customer="Fabrikam"),
            UserConfig(name="nora", role=Role.NONE),
        ),
        customers=(
            CustomerConfig(name="Contoso", tenant_id=TENANT_A, owner="lena"),
            CustomerConfig(name="Fabrikam", tenant_id=TENANT_B, owner="lena"),
        ),
    )
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


# The channel parity tests (tests/slack/test_slack_parity.py, tests/teams/test_parity.py):
# one question through a channel and through the local chat ends in the same case.
# The local-chat script of the Slack and Teams parity tests: a question asked, taken,
# resolved, then PARITY_INFORMED (the same case each channel's own script must end with).
PARITY_SCRIPT = (
    "ask Why two charges?",
    "Contoso",  # customer
    "yes",  # create it
    "skip",  # subscription id
    "skip",  # invoice
    "charges",  # category
    "ok",  # keep the suggested description
    "take BILL-1",
    "resolve BILL-1 Credit note issued",
)
PARITY_INFORMED = "informed BILL-1 email Told her by mail"
PARITY_TIMES = {"created_at", "updated_at", "first_response_at", "resolved_at", "informed_at", "at"}


def comparable(doc: Any) -> Any:
    """A stored document without times and channel names."""
    if isinstance(doc, dict):
        return {
            k: comparable(v) for k, v in doc.items() if k not in PARITY_TIMES and k != "channel"
        }
    if isinstance(doc, list):
        return [comparable(v) for v in doc]
    return doc


def assert_same_case(via_channel: dict[str, Any], local: dict[str, Any], channel: str) -> None:
    """The case made through ``channel`` equals the local one, ids, times and channels aside."""
    assert {a["channel"] for a in local["audit"]} == {"local"}
    assert {a["channel"] for a in via_channel["audit"]} == {channel}
    assert [a["action"] for a in via_channel["audit"]] == [
        "created",
        "assigned",
        "started",
        "resolved",
        "customer_informed",
    ]
    assert comparable(via_channel["audit"]) == comparable(local["audit"])
    assert comparable(via_channel) == comparable(local)


@dataclass
class Chat:
    """One person's conversation with the desk on one channel, recording every reply."""

    runtime: Runtime
    user: str
    channel: Channel = Channel.LOCAL
    conversation: str = ""
    replies: list[Reply] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)

    def _msg(self, **kw: object) -> Message:
        return Message(
            channel=self.channel,
            user=self.user,
            conversation=self.conversation or f"dm:{self.user}",
            user_name=self.user,
            locale="pseudo" if PSEUDO.get() else None,
            **kw,  # type: ignore[arg-type]
        )

    async def _run(self, msg: Message) -> list[Reply]:
        result = await self.runtime.handle(msg)
        self.replies = result.replies
        check_pseudo(self.replies)
        self.transcript.append(f"< {self.text}")
        return self.replies

    async def send(self, text: str) -> list[Reply]:
        self.transcript.append(f"> {text}")
        return await self._run(self._msg(text=text))

    async def say(self, *lines: str) -> None:
        for line in lines:
            await self.send(line)

    @property
    def buttons(self) -> list[Button]:
        out: list[Button] = []
        for r in self.replies:
            out += r.buttons
            if r.card:
                out += r.card.buttons
        return out

    @property
    def button_labels(self) -> list[str]:
        return [strip_pseudo(b.label) for b in self.buttons]

    def button(self, label: str) -> Button:
        for b in self.buttons:
            if strip_pseudo(b.label) == label:
                return b
        raise AssertionError(f"no button {label!r}; have {self.button_labels}")

    async def click(self, label: str) -> list[Reply]:
        return await self.press(self.button(label).action)

    async def press(self, action: ActionRef) -> list[Reply]:
        self.transcript.append(f"[click {action.as_text()}]")
        return await self._run(self._msg(action=action))

    async def submit(
        self, form_id: str, values: dict[str, str], context: dict[str, str] | None = None
    ) -> list[Reply]:
        self.transcript.append(f"[submit {form_id} {values}]")
        return await self._run(
            self._msg(form_id=form_id, form_values=values, form_context=context or {})
        )

    @property
    def text(self) -> str:
        parts = []
        for r in self.replies:
            if r.text:
                parts.append(plain(r.text))
            if r.card:
                parts.append(plain(r.card.title))
                parts += [f"{plain(f.label)}: {plain(f.value)}" for f in r.card.facts]
                parts += [plain(h) for h in r.card.history]
        return strip_pseudo("\n".join(parts))

    def expect(self, *fragments: str) -> None:
        for fragment in fragments:
            assert fragment in self.text, f"expected {fragment!r} in:\n{self.text}"

    def expect_not(self, *fragments: str) -> None:
        for fragment in fragments:
            assert fragment not in self.text, f"did not expect {fragment!r} in:\n{self.text}"

    @property
    def card(self):  # type: ignore[no-untyped-def]
        for r in self.replies:
            if r.card:
                return r.card
        return None

    @property
    def kinds(self) -> list[str]:
        return [r.kind for r in self.replies]


async def ask_many(runtime: Runtime, user: str, n: int, customer: str = "Contoso") -> None:
    """``n`` questions by ``user`` through the local chat of ``runtime`` (a list to page)."""
    chat = Chat(runtime, user)
    for i in range(n):
        await chat.say(f"ask Question {i + 1}", customer, "skip", "skip", "charges", "ok")
        assert chat.card is not None, chat.text


class DeskEnv:
    """A runtime on an in-memory (or given) store with a fake clock, and chats on it."""

    def __init__(self, settings: Settings | None = None, store: Store | None = None) -> None:
        self.settings = settings or make_settings()
        self.store = store or Store(MemoryEngine())
        self.clock = FakeClock(START)
        self.runtime = build_runtime(self.settings, self.store, self.clock)

    def chat(self, user: str, channel: Channel = Channel.LOCAL, conversation: str = "") -> Chat:
        return Chat(self.runtime, user, channel, conversation)

    def advance(self, **kw: float) -> None:
        self.clock.advance(timedelta(**kw))

    async def new_question(
        self, who: str = "alice", customer: str = "Contoso", text: str = "Why two charges?"
    ) -> str:
        chat = self.chat(who)
        await chat.say(f"ask {text}")
        if "Customer" in chat.text and "step 1" in chat.text:
            await chat.send(customer)
            if "Create it?" in chat.text:
                await chat.send("yes")
        await chat.say("skip", "skip", "charges", "ok")
        assert chat.card is not None, chat.text
        return str(chat.card.case_id)

    async def new_dispute(
        self, who: str = "alice", customer: str = "Contoso", amount: str = "120.00 EUR"
    ) -> str:
        chat = self.chat(who)
        await chat.send("dispute G012345678")
        if "step 1" in chat.text and "Customer" in chat.text:
            await chat.send(customer)
        await chat.say("ok", amount, "Seats billed twice")
        assert chat.card is not None, chat.text
        return str(chat.card.case_id)
