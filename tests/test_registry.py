"""The command registry: one declaration gives a command its parsing, dispatch, help,
authorization and Teams menu entry; help, the parser and the manifest know exactly
the declared commands."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from adapters.teams.package import build_package
from bot.app.wiring import build_runtime, wire_flows
from bot.clock import FakeClock
from bot.domain import Role
from bot.kernel.model import Reply
from bot.policy import MATRIX, Action
from bot.storage import MemoryEngine, Store
from conversations.commands import Command, parse
from conversations.desk import Result, Turn
from conversations.help import help_text
from conversations.registry import (
    REGISTRY,
    CommandSpec,
    Registry,
    RegistryError,
    TeamsMenu,
    command,
)
from conversations.runtime import Runtime
from tests.harness import START, Chat, DeskEnv, make_settings

APP_ID = "C9E8C047-2A74-40A2-B28A-B162D5F5327C"
# One user per role (tests/harness.py's settings).
PEOPLE = {Role.LEAD: "lena", Role.AGENT: "alice", Role.CUSTOMER: "carol", Role.NONE: "nora"}


def _menu(out: Path) -> list[dict[str, str]]:
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    commands: list[dict[str, str]] = manifest["bots"][0]["commandLists"][0]["commands"]
    return commands


async def test_a_throw_away_command_gets_everything_from_its_declaration(tmp_path: Path) -> None:
    registry = REGISTRY.copy()  # a fresh registry: the application's stays as it is
    registry.remove("resources")  # frees place 10 of the Teams menu (at most 10 commands)
    calls: list[str] = []

    class Echo:
        @command(
            "echo",
            aliases=("say", "回声"),
            action=Action.CUSTOMERS,
            usage="echo TEXT",
            help="say the text back",
            teams_menu=TeamsMenu(10, "Say the text back"),
            registry=registry,
        )
        async def cmd_echo(self, turn: Turn, cmd: Command) -> Result:
            calls.append(turn.actor.user_id)
            return Result([Reply(text=f"echo: {cmd.args}")])

    assert "echo" not in REGISTRY and "say" not in REGISTRY.aliases()

    # Parsed by name and by alias.
    assert parse("echo hi there", registry) == Command("echo", "hi there")
    assert parse("say hi", registry) == Command("echo", "hi")
    assert parse("回声 hi", registry) == Command("echo", "hi")
    assert parse("say hi") == Command("say", "hi")  # the application's parser knows no echo

    runtime = Runtime(make_settings(), Store(MemoryEngine()), FakeClock(START), commands=registry)
    wire_flows(runtime)
    runtime.desk.add_commands(Echo())
    await runtime.store.open()

    # Dispatched, by name and by alias.
    lena = Chat(runtime, "lena")
    await lena.send("echo hi")
    lena.expect("echo: hi")
    await lena.send("say again")
    lena.expect("echo: again")

    # Listed in help for exactly the roles the policy allows its action; refused to the others.
    for role, who in PEOPLE.items():
        chat = Chat(runtime, who)
        may = Action.CUSTOMERS in MATRIX[role]
        await chat.send("help echo")
        assert ("`echo TEXT` — say the text back" in chat.text) == may, (role, chat.text)
        if role != Role.NONE:
            await chat.send("help")
            assert ("`echo TEXT`" in chat.text) == may, (role, chat.text)
        before = len(calls)
        await chat.send("echo hi")
        if may:
            chat.expect("echo: hi")
            assert len(calls) == before + 1
        else:
            assert chat.kinds == ["error"] and "echo: hi" not in chat.text, chat.text
            assert len(calls) == before  # the dispatcher refused: the handler never ran
    assert (
        Role.LEAD in registry.spec("echo").roles()
        and Role.CUSTOMER not in registry.spec("echo").roles()
    )

    # Its Teams menu entry, in its place.
    menu = _menu(build_package(APP_ID, tmp_path / "app.zip", version="1.0.0", commands=registry))
    assert menu[-1] == {"title": "echo", "description": "Say the text back"}
    assert "resources" not in [c["title"] for c in menu] and len(menu) == 10

    # Nothing leaked into the application's registry or its desks.
    assert "echo" not in REGISTRY
    fresh = build_runtime(make_settings(), Store(MemoryEngine()), FakeClock(START))
    assert "echo" not in fresh.desk.handlers


def test_declarations_that_clash_are_refused() -> None:
    registry = REGISTRY.copy()

    def spec(name: str, **kw: object) -> CommandSpec:
        return CommandSpec(name, Action.HELP, name, None, **kw)  # type: ignore[arg-type]

    with pytest.raises(RegistryError, match="at most 10"):
        registry.add(spec("eleventh", teams_menu=TeamsMenu(10, "One too many")))
    with pytest.raises(RegistryError, match="already a command or alias"):
        registry.add(spec("helpme", aliases=("?",)))
    with pytest.raises(RegistryError, match="already a command or alias"):
        registry.add(spec("show"))  # an alias of status
    with pytest.raises(RegistryError, match="declared twice"):
        registry.add(spec("take"))
    with pytest.raises(RegistryError, match="one lower-case word"):
        registry.add(spec("Shout"))
    registry.remove("help")
    with pytest.raises(RegistryError, match="position 2 is not free"):
        registry.add(spec("first", teams_menu=TeamsMenu(2, "Taken by ask")))
    desk = build_runtime(make_settings(), Store(MemoryEngine()), FakeClock(START)).desk
    with pytest.raises(RegistryError, match="no command 'undeclared'"):
        desk.add_command("undeclared", desk.cmd_help)


def test_the_desk_runs_exactly_the_declared_commands() -> None:
    runtime = build_runtime(make_settings(), Store(MemoryEngine()), FakeClock(START))
    assert sorted(runtime.desk.handlers) == sorted(REGISTRY.names())
    assert runtime.desk.commands is REGISTRY


def test_the_parser_knows_exactly_the_declared_commands_and_their_aliases() -> None:
    for spec in REGISTRY:
        assert parse(f"{spec.name} BILL-7 x") == Command(spec.name, "BILL-7 x")
        assert parse(f"/billing {spec.name.upper()}").name == spec.name
        for alias in spec.aliases:
            assert parse(f"{alias} BILL-7") == Command(spec.name, "BILL-7")
    assert parse("frobnicate BILL-7").name == "frobnicate"  # not a command: the desk says so
    # The aliases people type today (the English slips and the Chinese words), all kept.
    assert REGISTRY.aliases() == {
        "?": "help",
        "h": "help",
        "show": "status",
        "ls": "list",
        "cases": "list",
        "comment": "note",
        "inform": "informed",
        "assign-to": "assign",
        "帮助": "help",
        "资源": "resources",
        "提问": "ask",
        "争议": "dispute",
        "状态": "status",
        "列表": "list",
        "接手": "take",
        "分配": "assign",
        "备注": "note",
        "上报": "escalate",
        "请求状态": "srstatus",
        "解决": "resolve",
        "已告知": "informed",
        "重新打开": "reopen",
        "取消": "cancel",
        "关闭": "close",
        "稍后提醒": "snooze",
        "提醒": "reminders",
        "客户列表": "customers",
        "客户": "customer",
        "逾期": "overdue",
        "已付款": "paid",
        "暂停": "suspend",
        "恢复": "reactivate",
        "重新激活": "reactivate",
        "语言": "language",
        "补充": "add",
        "撤回": "withdraw",
        "附件": "attach",
        "upload": "attach",
    }


@pytest.mark.parametrize("role", list(Role))
def test_help_lists_exactly_the_declared_commands_the_policy_allows(role: Role) -> None:
    listed = [s for s in REGISTRY if s.help and s.action in MATRIX[role]]
    if role != Role.NONE:
        lines = [line for line in help_text(role).splitlines() if line.startswith("• `")]
        assert lines == [f"• `{s.usage}` — {s.help}" for s in listed]
    for spec in REGISTRY:
        shown = help_text(role, spec.name)
        assert (shown == f"`{spec.usage}` — {spec.help}") == (spec in listed), (role, spec.name)


def test_help_keeps_todays_order() -> None:
    assert [s.name for s in REGISTRY.listed(Role.LEAD)] == [
        "help",
        "resources",
        "ask",
        "dispute",
        "status",
        "list",
        "add",
        "withdraw",
        "take",
        "assign",
        "note",
        "escalate",
        "srstatus",
        "attach",
        "resolve",
        "informed",
        "reopen",
        "cancel",
        "close",
        "snooze",
        "reminders",
        "language",
        "customers",
        "customer",
        "overdue",
        "paid",
        "suspend",
        "reactivate",
    ]


def test_the_manifest_lists_exactly_the_commands_marked_for_the_teams_menu(
    tmp_path: Path,
) -> None:
    menu = _menu(build_package(APP_ID, tmp_path / "app.zip", version="1.0.0"))
    marked = REGISTRY.menu()
    assert [c["title"] for c in menu] == [s.name for s in marked]
    assert len(menu) <= 10
    assert [c["title"] for c in menu] == [
        "help",
        "ask",
        "dispute",
        "list",
        "status",
        "take",
        "resolve",
        "informed",
        "reminders",
        "resources",
    ]
    assert [c["description"] for c in menu] == [
        s.teams_menu.description for s in marked if s.teams_menu
    ]


def test_a_command_that_opens_a_form_declares_the_forms_action() -> None:
    forms = {s.name: s.form for s in REGISTRY if s.form}
    assert set(forms) == {
        "ask",
        "dispute",
        "add",
        "assign",
        "note",
        "escalate",
        "resolve",
        "informed",
        "reopen",
        "cancel",
        "snooze",
    }
    form_actions = DeskEnv().runtime.desk.forms.actions  # the desk's forms and the flows'
    for spec in REGISTRY:
        if spec.form:
            assert form_actions[spec.form] == spec.action, spec.name


def test_a_fresh_registry_is_independent() -> None:
    registry = Registry()
    assert len(registry) == 0 and parse("help", registry) == Command("help", "")
    assert help_text(Role.LEAD, "help", registry).startswith("No help")
