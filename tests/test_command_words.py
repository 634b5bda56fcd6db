"""Commands that forgive: Chinese aliases with their argument words, help in Chinese, and
an unknown command answered with the closest one.

The alias test runs over the registry: every command with a Chinese alias, typed with its
Chinese words, does exactly what the English line does (same replies, same stored case).
A new alias or argument word is covered by it; a new command with a Chinese alias needs its
typical lines in ``LINES`` (the test says so).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

import bot.app.wiring  # noqa: F401  (the flow modules declare their commands on import)
from bot.domain import Role
from bot.i18n import _, use_locale
from bot.policy import Action
from conversations.collections import flow_of
from conversations.help import help_text
from conversations.registry import REGISTRY, CommandSpec, command
from tests.harness import START, TENANT_A, DeskEnv, comparable

# A setup may name values its lines use (``suspend confirm {op}``: the proposal's id).
Setup = Callable[[DeskEnv], Awaitable[dict[str, str] | None]]
_OP = re.compile(r"\b[0-9a-f]{12}\b")  # a suspension's operation id, new each time
SUB = "11111111-0000-4000-8000-000000000001"


async def _nothing(env: DeskEnv) -> None:
    await env.chat("alice").send("help")


async def _question(env: DeskEnv) -> None:
    await env.new_question()
    await env.new_question()


async def _many(env: DeskEnv) -> None:
    for _n in range(23):
        await env.new_question()
        env.advance(minutes=1)
    await env.chat("alice").say("take BILL-1", "take BILL-2", "resolve BILL-2 done")
    await env.chat("alice").send("escalate BILL-3 2411240010001234")


async def _dispute_taken(env: DeskEnv) -> None:
    await env.new_dispute()
    await env.chat("alice").send("take BILL-1")


async def _escalated(env: DeskEnv) -> None:
    await env.new_question()
    await env.chat("alice").say("take BILL-1", "escalate BILL-1 2411240010001234")


async def _resolved(env: DeskEnv) -> None:
    await env.new_question()
    await env.chat("alice").say("take BILL-1", "resolve BILL-1 credit note issued")


async def _informed(env: DeskEnv) -> None:
    await _resolved(env)
    await env.chat("alice").send("informed BILL-1 email")


async def _overdue(env: DeskEnv) -> None:
    due = (START.date() - timedelta(days=35)).isoformat()
    csv = (
        "customer_tenant_id,customer_name,invoice_number,amount,currency,due_date,paid_date,"
        f"subscription_ids,amount_paid\n{TENANT_A},Contoso,INV-1,1200.00,EUR,{due},,{SUB},\n"
    )
    await flow_of(env.runtime).import_csv(csv, actor="lena", channel="cli", file="ar.csv")


async def _proposed(env: DeskEnv, verb: str, *then: str) -> dict[str, str]:
    await _overdue(env)
    lena = env.chat("lena")
    await lena.send(f"{verb} Contoso")
    found = re.search(r"confirm ([0-9a-f]{12})`", lena.text)
    assert found, lena.text
    for line in then:
        await lena.send(line.format(op=found.group(1)))
    return {"op": found.group(1)}


async def _suspend_proposed(env: DeskEnv) -> dict[str, str]:
    return await _proposed(env, "suspend")


async def _suspend_confirmed(env: DeskEnv) -> dict[str, str]:
    return await _proposed(env, "suspend", "suspend confirm {op}")


async def _reactivate_proposed(env: DeskEnv) -> dict[str, str]:
    # Only a suspended customer is reactivated (an active one: "nothing to reactivate").
    await _proposed(env, "suspend", "suspend confirm {op}", "suspend done {op}")
    lena = env.chat("lena")
    await lena.send("reactivate Contoso")
    found = re.search(r"confirm ([0-9a-f]{12})`", lena.text)
    assert found, lena.text
    return {"op": found.group(1)}


# The typical lines of each command with a Chinese alias: (who types, setup, English lines);
# ``name-more`` keys add lines of ``name`` on another setup.
LINES: dict[str, tuple[str, Setup, tuple[str, ...]]] = {
    "help": ("alice", _nothing, ("help", "help list", "help take")),
    "resources": ("alice", _nothing, ("resources",)),
    "ask": ("alice", _nothing, ("ask Why two charges?",)),
    "dispute": ("alice", _nothing, ("dispute G012345678",)),
    "status": ("alice", _question, ("status BILL-1",)),
    "list": (
        "alice",
        _many,
        (
            "list",
            "list mine",
            "list open",
            "list unassigned",
            "list escalated",
            "list awaiting-customer",
            "list all",
            "list all customer Contoso",
            "list open page 2",
            "list all customer Contoso page 2",
        ),
    ),
    "add": ("alice", _question, ("add BILL-1 the customer paid on Monday",)),
    "add-customer": ("carol", _question, ("add BILL-1 I paid on Monday",)),
    "withdraw": ("carol", _question, ("withdraw BILL-1", "withdraw BILL-1 found the answer")),
    "take": ("alice", _question, ("take BILL-1",)),
    "assign": ("alice", _question, ("assign BILL-1 bob",)),
    "note": ("alice", _question, ("note BILL-1 called the customer",)),
    "attach": ("alice", _question, ("attach BILL-1", "attach")),  # typed: no file to send
    "escalate": ("alice", _question, ("escalate BILL-1 2411240010001234",)),
    "srstatus": (
        "alice",
        _escalated,
        (
            "srstatus BILL-1 open",
            "srstatus BILL-1 attention_needed waiting for the invoice",
            "srstatus BILL-1 attention",
            "srstatus BILL-1 closed credited",
        ),
    ),
    "resolve": (
        "alice",
        _dispute_taken,
        (
            "resolve BILL-1 credit 120.00 EUR",
            "resolve BILL-1 partial 50.00 EUR",
            "resolve BILL-1 denied outside the dispute window",
        ),
    ),
    "informed": (
        "alice",
        _resolved,
        (
            "informed BILL-1 email",
            "informed BILL-1 call told her on the phone",
            "informed BILL-1 chat",
            "informed BILL-1 ticket",
            "informed BILL-1 meeting",
        ),
    ),
    "reopen": ("alice", _resolved, ("reopen BILL-1 the customer disagrees",)),
    "cancel": ("alice", _question, ("cancel BILL-1 duplicate of BILL-2",)),
    "close": ("alice", _informed, ("close BILL-1",)),
    "snooze": (
        "alice",
        _resolved,
        ("snooze BILL-1 1h", "snooze BILL-1 4h", "snooze BILL-1 tomorrow"),
    ),
    "reminders": ("alice", _resolved, ("reminders",)),
    "language": (
        "alice",
        _nothing,
        ("language en", "language english", "language zh", "language chinese"),
    ),
    "customers": ("lena", _question, ("customers",)),
    "customer": ("lena", _question, ("customer Contoso",)),
    "overdue": ("lena", _overdue, ("overdue",)),
    "paid": ("lena", _overdue, ("paid INV-1 200.00", "paid INV-1")),
    "suspend": ("lena", _overdue, ("suspend Contoso",)),
    "suspend-steps": (
        "lena",
        _suspend_proposed,
        ("suspend confirm {op}", "suspend cancel {op}", "suspend retry {op}"),
    ),
    "suspend-done": ("lena", _suspend_confirmed, ("suspend done {op}",)),
    "reactivate": ("lena", _overdue, ("reactivate Contoso",)),
    "reactivate-steps": (
        "lena",
        _reactivate_proposed,
        ("reactivate confirm {op}", "reactivate cancel {op}"),
    ),
}


def native(words: tuple[str, ...]) -> list[str]:
    return [w for w in words if not w.isascii()]


def chinese_lines(spec: CommandSpec, line: str) -> list[str]:
    """``line`` with each Chinese alias of the command, and its argument words in Chinese.

    One line per alias of the command, then one per further Chinese word of an argument,
    so that every declared Chinese word is typed at least once.
    """
    head, *args = line.split()
    assert head == spec.name
    words = {w: native(aliases) for w, aliases in spec.words}
    used = [a for a in args if words.get(a)]
    variants = max((len(words[a]) for a in used), default=1)
    out = []
    for alias in native(spec.aliases):
        for i in range(variants):
            typed = [words[a][min(i, len(words[a]) - 1)] if words.get(a) else a for a in args]
            out.append(" ".join([alias, *typed]))
    return list(dict.fromkeys(out))


def _params() -> list[Any]:
    out = []
    for key, (_who, _setup, lines) in LINES.items():
        spec = REGISTRY.spec(key.split("-")[0])
        if spec.native_alias() is None:
            continue
        for line in lines:
            for chinese in chinese_lines(spec, line):
                out.append(pytest.param(key, line, chinese, id=f"{chinese} = {line}"))
    return out


def test_every_command_with_a_chinese_alias_has_typical_lines() -> None:
    missing = [s.name for s in REGISTRY if s.native_alias() and s.name not in LINES]
    assert not missing, f"add the typical lines of {missing} to LINES"


def test_every_chinese_argument_word_is_typed_by_the_alias_test() -> None:
    typed = {chinese for _name, _line, chinese in (p.values for p in _params())}
    words = " ".join(typed).split()
    for spec in REGISTRY:
        for word, aliases in spec.words:
            for alias in native(aliases):
                assert alias in words, f"{spec.name}: no line of LINES types {word!r} ({alias})"


async def _run(name: str, line: str) -> tuple[Any, ...]:
    who, setup, _lines = LINES[name]
    env = DeskEnv()
    await env.store.open()
    values = await setup(env) or {}
    chat = env.chat(who)
    await chat.send(line.format(**values))
    actions = [_OP.sub("<op>", b.action.as_text()) for b in chat.buttons]
    cases = [comparable(c.to_doc()) for n in (1, 2) if (c := await env.store.get_case(n))]
    user = await env.store.get_user(who)
    state = env.store.engine.view("receivables")
    return (
        _OP.sub("<op>", chat.text),
        chat.kinds,
        actions,
        cases,
        user.locale if user else None,
        dict(state),
    )


@pytest.mark.parametrize(("name", "english", "chinese"), _params())
async def test_a_chinese_alias_with_chinese_words_does_what_the_english_line_does(
    name: str, english: str, chinese: str
) -> None:
    said = await _run(name, english)
    assert "I don't know" not in said[0] and "Which " not in said[0], said[0]
    assert await _run(name, chinese) == said


async def test_list_all_and_language_english_in_chinese_words() -> None:
    """The two lines of the issue, written out (the test above derives its lines)."""
    env = DeskEnv()
    await env.store.open()
    for _n in range(3):
        await env.new_question()
    await env.chat("alice").say("take BILL-1", "resolve BILL-1 done", "informed BILL-1 call")
    alice = env.chat("alice")
    await alice.send("list all")
    english = alice.text
    assert english.startswith("All cases (3):"), english
    await alice.send("列表 全部")
    assert alice.text == english
    await alice.send("语言 中文")
    await alice.send("语言 英文")
    assert alice.text == "From now on I answer you in English."
    user = await env.store.get_user("alice")
    assert user is not None and user.locale == "en"


# ---- help in Chinese -------------------------------------------------------------------


async def test_help_in_chinese_lists_the_chinese_aliases_and_words() -> None:
    env = DeskEnv()
    await env.store.open()
    alice = env.chat("alice")
    await alice.say("语言 中文", "帮助")
    alice.expect(
        "• `列表 [我的|未结|未分配|已上报|待告知|全部] [客户 NAME] [页 N]` / `list` — ",
        "• `已告知 BILL-n 邮件|电话|聊天|工单|会议 [文本]` / `informed` — ",
        "• `语言 英文|中文` / `language` — ",
        "• `稍后提醒 BILL-n 1小时|4小时|明天` / `snooze` — ",
        "• `接手 BILL-n` / `take` — ",
    )
    lines = [line for line in alice.text.splitlines() if line.startswith("• ")]
    for spec in REGISTRY.listed(Role.AGENT):  # each with its Chinese alias first
        assert f"• `{spec.native_alias()}" in "\n".join(lines), spec.name
    await alice.send("帮助 列表")  # help on one command, by its alias
    assert alice.text.startswith("`列表 [我的|")
    await alice.send("帮助 list")
    assert alice.text.startswith("`列表 [我的|")
    await alice.send("language en")
    await alice.send("help")
    alice.expect("• `list [mine|open|unassigned|escalated|awaiting-customer|all]")
    alice.expect_not("列表")


def test_the_help_lines_come_from_the_declarations() -> None:
    """A throw-away command with a Chinese alias and words shows them in Chinese help."""
    registry = REGISTRY.copy()

    @command(
        "echo",
        aliases=("回声",),
        action=Action.HELP,
        usage="echo loud|quiet text",
        help="say it again",
        words={"loud": ("大声",), "quiet": ("小声",)},
        registry=registry,
    )
    async def cmd_echo() -> None: ...

    with use_locale("zh_CN"):
        text = help_text(Role.AGENT, "echo", registry)
        assert text == f"`回声 大声|小声 {_('text')}` / `echo` — say it again"
        assert help_text(Role.AGENT, "回声", registry) == text
    assert registry.get("echo").word("大声") == "loud"  # type: ignore[union-attr]
    assert registry.get("echo").word("LOUD") == "loud"  # type: ignore[union-attr]
    assert registry.get("echo").word("other") == "other"  # type: ignore[union-attr]


# ---- an unknown command ------------------------------------------------------------------


async def test_an_unknown_command_in_chinese_gets_the_closest_chinese_command() -> None:
    env = DeskEnv()
    await env.store.open()
    chat = env.chat("alice")
    await chat.send("语言 中文")
    await chat.send("列表全部")  # no space after the command word
    assert chat.text == "我不认识命令“列表全部”。你是不是想输入 `列表 全部`？"
    assert chat.kinds == ["error"]
    await chat.send("列示 全部")
    assert chat.text.endswith("你是不是想输入 `列表 全部`？")
    await chat.send("随便说说")
    assert chat.text == "我不认识命令“随便说说”。输入 `帮助` 查看我能做什么。"
    assert len(chat.text.splitlines()) == 1


async def test_chinese_list_pages_and_the_more_button() -> None:
    env = DeskEnv()
    await env.store.open()
    for _n in range(45):
        await env.new_question()
    alice = env.chat("alice")
    await alice.send("语言 中文")
    await alice.send("列表 全部 客户 Contoso 页 2")
    alice.expect("第 2 页，共 3 页 · 45 个工单")
    assert alice.button_labels == ["更多"]
    await alice.click("更多")
    alice.expect("第 3 页，共 3 页 · 45 个工单")
    assert [line.split()[0] for line in alice.text.splitlines() if line.startswith("BILL-")][
        -1
    ] == "BILL-1"
    await alice.send("列表 页 9")
    assert re.search(r"只有 3 页", alice.text), alice.text
