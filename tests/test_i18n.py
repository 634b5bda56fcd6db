"""The catalog: every text through it, complete in zh_CN, and replies in the recipient's locale."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import re
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.config import ReminderPolicy, Settings, UserConfig
from bot.domain import Role
from bot.i18n import _, format_amount, use_locale
from conversations.text import plain
from tests import test_flows, test_reminders
from tests.harness import PSEUDO, PSEUDO_FINDINGS, DeskEnv, make_settings, outside_marks

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


def source_messages() -> set[str]:
    from babel.messages.extract import extract_from_dir

    ids: set[str] = set()
    for folder in ("bot", "conversations", "adapters"):
        for _file, _line, msg, _c, _ctx in extract_from_dir(
            str(ROOT / folder),
            method_map=[("**.py", "python"), ("**/templates/**.html", "jinja2")],
            keywords=KEYWORDS,
        ):
            ids.add(msg if isinstance(msg, str) else msg[0])
    return ids


def test_zh_cn_translates_every_message_of_the_source() -> None:
    from babel.messages.pofile import read_po

    po = ROOT / "bot" / "locale" / "zh_CN" / "LC_MESSAGES" / "billing-bot.po"
    with po.open("rb") as fh:
        catalog = read_po(fh)
    translated = {
        (m.id if isinstance(m.id, str) else m.id[0])
        for m in catalog
        if m.id
        and m.string
        and not m.fuzzy
        and all(m.string if isinstance(m.string, tuple) else [m.string])
    }
    missing = sorted(source_messages() - translated)
    assert not missing, f"{len(missing)} messages lack a zh_CN translation, e.g. {missing[:5]}"


def test_outside_marks_finds_what_bypasses_the_catalog() -> None:
    assert outside_marks("⟦Open cases⟧ (5):") == ""
    assert outside_marks("⟦{x}⟧ BILL-7 · 120.00 EUR · `take BILL-7` 2026-11-24 09:00 UTC") == ""
    assert outside_marks("History of BILL-1:") == "Historyof"
    assert outside_marks("⟦Owner⟧: \ue000Alice\ue001") == ""


def _flow_cases() -> list[Any]:
    cases = []
    for module in (test_flows, test_reminders):
        for name, fn in inspect.getmembers(module, inspect.iscoroutinefunction):
            if not name.startswith("test_"):
                continue
            marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
            if not marks:
                cases.append(pytest.param(fn, {}, id=f"{module.__name__.split('.')[-1]}::{name}"))
                continue
            names, values = marks[0].args[0], marks[0].args[1]
            names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
            for i, value in enumerate(values):
                value = value.values if hasattr(value, "values") else value
                kwargs = dict(zip(names, value if len(names) > 1 else [value], strict=True))
                cases.append(
                    pytest.param(fn, kwargs, id=f"{module.__name__.split('.')[-1]}::{name}[{i}]")
                )
    return cases


@pytest.mark.parametrize(("flow", "kwargs"), _flow_cases())
def test_every_flow_reply_goes_through_the_catalog(
    flow: Any, kwargs: dict[str, Any], tmp_path: Path
) -> None:
    """Each flow test again, in the pseudo locale: no visible text may bypass ``_()``."""
    findings: list[str] = []

    async def run() -> None:
        PSEUDO.set(True)
        PSEUDO_FINDINGS.set(findings)
        params = inspect.signature(flow).parameters
        args: dict[str, Any] = dict(kwargs)
        if "env" in params:
            env = DeskEnv()
            await env.store.open()
            args["env"] = env
        if "tmp_path" in params:
            args["tmp_path"] = tmp_path
        await flow(**args)

    asyncio.run(run())
    assert not findings, "text outside the catalog:\n" + "\n".join(dict.fromkeys(findings))


assert itertools  # kept for readers extending the parametrization


# ---- zh_CN end to end --------------------------------------------------------------------

SHANGHAI = ZoneInfo("Asia/Shanghai")
HAN = re.compile("[\u4e00-\u9fff]")


def zh_settings(**overrides: object) -> Settings:
    """The harness desk plus Wei, an agent who reads Chinese and works in Shanghai."""
    wei = UserConfig(
        name="wei",
        role=Role.AGENT,
        display_name="王伟",
        locale="zh_CN",
        time_zone="Asia/Shanghai",
    )
    return make_settings(users=(*make_settings().users, wei), **overrides)


def zh(message: str, **fields: object) -> str:
    """``message`` as the zh_CN catalog renders it."""
    with use_locale("zh_CN"):
        return _(message).format(**fields)


async def test_a_reminder_to_a_zh_cn_owner_in_shanghai_arrives_in_chinese_in_working_hours() -> (
    None
):
    env = DeskEnv(zh_settings(reminders=ReminderPolicy(repeat_every_hours=2)))
    await env.store.open()
    case_id = await env.new_question(who="alice")
    wei = env.chat("wei")
    await wei.send(f"take {case_id}")
    # 09:00 UTC is 17:00 in Shanghai, the end of Wei's working day: nothing may go out now.
    await wei.send(f"resolve {case_id} 已撤销重复扣费")
    assert HAN.search(wei.text), wei.text
    for _step in range(2 * 24 * 4):  # two days in 15-minute ticks
        env.advance(minutes=15)
        await env.runtime.scheduler.tick()
    sent = [s for s in env.runtime.scheduler.sent if s["user"] == "wei" and s["type"] == "loop"]
    assert len(sent) >= 3, env.runtime.scheduler.sent
    for s in sent:
        local = s["at"].astimezone(SHANGHAI)  # type: ignore[attr-defined]
        assert local.weekday() < 5 and 9 <= local.hour < 17, local
    assert sent[0]["at"].astimezone(SHANGHAI).hour == 9  # type: ignore[attr-defined]

    inbox = await env.runtime.take_mailbox("wei")
    texts = [str(i["text"]) for i in inbox]
    first = zh(
        "{case} is resolved. Please tell the customer the result, then press Customer informed.",
        case=case_id,
    )
    assert first in texts, texts
    assert any(t.startswith("提醒：") and "小时前解决" in t for t in texts), texts
    for text in texts:
        assert HAN.search(text) and "Please" not in text and "Reminder" not in text, text
    card = inbox[0]["card"]
    assert [b["label"] for b in card["buttons"]] == ["已告知客户", "稍后提醒", "重新分配"]
    facts = {plain(f["label"]): plain(f["value"]) for f in card["facts"]}
    assert facts["状态"] == "已解决，尚未告知客户" and facts["负责人"] == "王伟"
    # The history is in Shanghai time, written the Chinese way.
    assert any("2026年11月24日 17:00 +0800" in plain(h) for h in card["history"]), card["history"]


def test_the_local_chat_scenario_in_zh_cn_shows_chinese_texts_dates_and_amounts(
    tmp_path: Path,
) -> None:
    from tests.processes import ROOT as REPO
    from tests.processes import bot_env

    script = "\n".join(
        [
            "提问 为什么扣了两次费？",  # the Chinese alias of `ask`; the text stays as typed
            "Contoso",
            "是",  # yes, create the customer
            "跳过",  # skip the subscription id
            "G012345678",
            "2",
            "ok",
            "take BILL-1",
            "resolve BILL-1 已撤销重复扣费",
            "informed BILL-1 email 已发邮件告知",
            "dispute G0999",
            "Contoso",
            "ok",
            "1234.50 EUR",
            "席位重复计费",
            "quit",
            "",
        ]
    )
    config = tmp_path / "billing-bot.toml"
    config.write_text('[desk]\ntime_zone = "Asia/Shanghai"\n', encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "chat", "--as", "alice", "--locale", "zh_CN"],
        input=script,
        capture_output=True,
        text=True,
        env=bot_env(tmp_path / "db.json", BOT_CONFIG=str(config)),
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for expected in (
        zh(
            "Question {case} for {customer} is open and nobody has taken it yet: `take {case}` "
            "to work on it, or `assign {case} NAME` to give it to someone.",
            case="BILL-1",
            customer="Contoso",
        ),
        "BILL-1 · 问题 · Contoso",
        zh("{case} is yours now.", case="BILL-1"),
        "已撤销重复扣费",  # typed text, exactly as typed
        zh(
            "{case} is resolved. Now tell the customer, then record it with "
            "`informed {case} email` (or call, chat, ticket, meeting).",
            case="BILL-1",
        ),
        zh(
            "Recorded: the customer was told about {case} by {via}. Reminders stop.",
            case="BILL-1",
            via=zh("Email"),
        ),
        "状态: 已告知客户",
        "BILL-2 · 争议 · Contoso",
        "席位重复计费",
    ):
        assert expected in out, f"{expected!r} not in:\n{out}"
    # Dates through format_time in zh_CN, amounts through format_amount.
    assert re.search(r"20\d\d年\d{1,2}月\d{1,2}日 \d\d:\d\d \+0800", out), out
    with use_locale("zh_CN"):
        amount = format_amount(Decimal("1234.50"), "EUR")
    assert f"争议金额: {amount}" in out and amount == "1,234.50 EUR", out
    for english in ("Thanks!", "State:", "Owner:", "is resolved", "Customer informed"):
        assert english not in out, f"{english!r} in:\n{out}"


async def test_a_zh_cn_lead_gets_the_collections_step_and_the_customer_notice_in_chinese() -> None:
    from conversations.collections import flow_of
    from tests.harness import TENANT_A

    lena = UserConfig(
        name="lena",
        role=Role.LEAD,
        display_name="Lena Lead",
        locale="zh_CN",
        time_zone="Asia/Shanghai",
    )
    users = (lena, *(u for u in make_settings().users if u.name != "lena"))
    env = DeskEnv(make_settings(users=users))
    await env.store.open()
    sub = "11111111-0000-4000-8000-000000000001"
    due = (env.clock.now() - timedelta(days=20)).date().isoformat()
    csv = (
        "customer_tenant_id,customer_name,invoice_number,amount,currency,due_date,paid_date,"
        f"subscription_ids,amount_paid\n{TENANT_A},Contoso,INV-1,1200.00,EUR,{due},,{sub},\n"
    )
    await flow_of(env.runtime).import_csv(csv, actor="lena", channel="cli", file="ar.csv")
    for _step in range(24 * 4):  # 17:00 in Shanghai now: the DM waits for the morning
        await env.runtime.scheduler.tick()
        env.advance(minutes=15)
    items = await env.runtime.take_mailbox("lena")
    texts = [plain(str(i["text"])) for i in items]
    notice = next((t for t in texts if "主题：" in t), None)
    assert notice is not None, texts
    assert "Contoso，您好：" in notice and "1,200.00 EUR" in notice, notice
    assert re.search(r"已于 20\d\d年\d{1,2}月\d{1,2}日 到期", notice), notice
    assert "Subject:" not in notice and "Hello" not in notice
    assert any(re.match(r"催收 · Contoso 已逾期 2\d 天：1,200.00 EUR", t) for t in texts), texts
    labels = [plain(b["label"]) for i in items for b in i.get("buttons", [])]
    assert labels == ["我已发送", "逾期列表"], labels
