"""The scripted walkthrough (issue 19): every README command, in English and Chinese, as
agent, lead and customer, through a real ``serve`` and real ``billing-bot chat`` sessions and
the ``billing-bot`` tools — and what no reply may contain.

It also writes ``docs/walkthrough.md``: the transcripts a new agent would see. The replies
are checked for a Python repr, a traceback, untranslated English in a Chinese session, a
"1 … s" plural, and, for the customer, any internal event of the desk.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.domain import AUDIT_KINDS
from bot.i18n import _, use_locale
from tests.processes import ROOT, Serve, bot_env

pytestmark = pytest.mark.slow

CONFIG = """\
[desk]
default_role = "none"
time_zone = "Europe/Berlin"

[[users]]
name = "lena"
display_name = "Lena Fischer"
role = "lead"
time_zone = "Europe/Berlin"

[[users]]
name = "alice"
role = "agent"
time_zone = "Asia/Shanghai"

[[users]]
name = "carol"
role = "customer"
customer = "Contoso"

[[customers]]
name = "Contoso"
tenant_id = "aaaaaaaa-0000-4000-8000-00000000000a"
owner = "lena"
"""

RECEIVABLES = (
    "customer_tenant_id,customer_name,invoice_number,amount,currency,due_date,paid_date,"
    "subscription_ids\n"
    "aaaaaaaa-0000-4000-8000-00000000000a,Contoso,INV/2026/01,4200.00,EUR,2026-10-01,,"
    "8f3c2b1e-1234-4abc-9def-0123456789ab\n"
    "aaaaaaaa-0000-4000-8000-00000000000a,Contoso,INV-2026-0977,320.00,EUR,2026-11-01,,\n"
)

# (who, lines): one `billing-bot chat --as who` session per step. Case numbers are those of a
# fresh store: BILL-1 is carol's question, BILL-2 alice's dispute, BILL-3 a question to cancel.
EN: list[tuple[str, list[str]]] = [
    (
        "carol",
        [
            "help",
            "resources",
            "ask Why is our October invoice higher than September?",
            "skip",
            "skip",
            "2",
            "ok",
            "list",
            "status BILL-1",
        ],
    ),
    (
        "alice",
        [
            "help",
            "help resolve",
            "list",
            "list unassigned",
            "take BILL-1",
            "note BILL-1 Checked the usage report: a licence was added on Oct 12.",
            "BILL-1",
            "escalate BILL-1",
            "cancel",
            "dispute G099887766",
            "Contoso",
            "ok",
            "120.00",
            "EUR",
            "Charged at list price instead of the agreed discount.",
            "escalate BILL-2",
            "cancel",
            "list mine",
            "list escalated",
            "customers",
            "customer Contoso",
            "reminders",
            "frobnicate BILL-1",
        ],
    ),
    (
        "lena",
        [
            "help",
            "assign BILL-2 alice",
            "overdue",
            "paid INV-2026-0977 20.00",
            "suspend Contoso",
            "1",
            "reactivate Contoso",
            "1",
            "reactivate Contoso",
            "list all",
            "ask Contoso asks for a copy of the invoice",
            "Contoso",
            "skip",
            "skip",
            "1",
            "ok",
            "cancel BILL-3 duplicate of BILL-1",
        ],
    ),
    (
        "alice",
        [
            "resolve BILL-1 A licence was added on Oct 12; the charge is correct.",
            "snooze BILL-1 1h",
            "reminders",
            "resolve BILL-2 credit 120.00",
            "1",
            "informed BILL-1 call Explained the added licence on the phone.",
            "informed BILL-2 email",
            "close BILL-1",
            "reopen BILL-2 Microsoft reversed the credit",
            "language zh",
            "status BILL-2",
            "language en",
        ],
    ),
    (
        "carol",
        [
            "status BILL-1",
            "status BILL-2",
            "list all",
            "note BILL-1 hi",
            "add BILL-2 We sent Microsoft the signed price sheet.",
            "ask Can you resend the November invoice as PDF?",
            "skip",
            "skip",
            "1",
            "ok",
            "withdraw BILL-4 Found it in the portal",
            "status BILL-4",
        ],
    ),
]

ZH: list[tuple[str, list[str]]] = [
    (
        "carol",
        [
            "language zh",
            "帮助",
            "资源",
            "提问 为什么十月的发票比九月高？",
            "跳过",
            "跳过",
            "2",
            "ok",
            "列表",
            "状态 BILL-1",
        ],
    ),
    (
        "alice",
        [
            "language zh",
            "帮助",
            "帮助 解决",
            "列表",
            "接手 BILL-1",
            "备注 BILL-1 已查看用量报告：10 月 12 日新增了一个许可证。",
            "BILL-1",
            "争议 G099887766",
            "Contoso",
            "ok",
            "120.00",
            "EUR",
            "按目录价计费，而不是约定的折扣价。",
            "客户列表",
            "客户 Contoso",
            "提醒",
        ],
    ),
    (
        "lena",
        [
            "language zh",
            "帮助",
            "分配 BILL-2 alice",
            "逾期",
            "已付款 INV-2026-0977 20.00",
            "暂停 Contoso",
            "1",
            "恢复 Contoso",
            "1",
            "列表 全部",
        ],
    ),
    (
        "alice",
        [
            "解决 BILL-1 10 月 12 日新增了一个许可证，费用正确。",
            "稍后提醒 BILL-1 1h",
            "解决 BILL-2 抵免 120.00",
            "1",
            "已告知 BILL-1 call 已电话说明新增的许可证。",
            "已告知 BILL-2 email",
            "关闭 BILL-1",
            "重新打开 BILL-2 Microsoft 撤销了抵扣",
            "取消 BILL-2 重复工单",
        ],
    ),
    (
        "carol",
        [
            "状态 BILL-1",
            "状态 BILL-2",
            "列表",
            "提问 请重新发送十一月发票的 PDF。",
            "跳过",
            "跳过",
            "1",
            "ok",
            "补充 BILL-3 我们需要发给审计师。",
            "撤回 BILL-3 已在门户中找到",
            "状态 BILL-3",
        ],
    ),
]


@dataclass
class Transcript:
    lang: str
    parts: list[tuple[str, str]] = field(default_factory=list)  # (title, text)

    def of(self, user: str) -> str:
        return "\n".join(
            text for title, text in self.parts if title.startswith(f"chat --as {user}")
        )


def _chat(db: Path, user: str, lines: list[str]) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "chat", "--as", user],
        input="\n".join([*lines, "quit"]) + "\n",
        capture_output=True,
        text=True,
        env=bot_env(db),
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not proc.stderr.strip(), proc.stderr
    return proc.stdout


def _tool(db: Path, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env=bot_env(db),
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode in ok, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def _walk(tmp: Path, lang: str, script: list[tuple[str, list[str]]]) -> Transcript:
    (tmp / "billing-bot.toml").write_text(CONFIG)
    (tmp / "receivables.csv").write_text(RECEIVABLES)
    db = tmp / "data" / "billing-bot.json"
    env = {"BOT_CONFIG": str(tmp / "billing-bot.toml")}
    out = Transcript(lang)
    serve = Serve(db, **env)
    serve.start()
    try:
        import os

        os.environ["BOT_CONFIG"] = env["BOT_CONFIG"]
        out.parts.append(
            ("receivables import", _tool(db, "receivables", "import", str(tmp / "receivables.csv")))
        )
        for user, lines in script:
            out.parts.append((f"chat --as {user}", _chat(db, user, lines)))
        tomorrow = time.strftime("%Y-%m-%dT09:30:00+01:00", time.gmtime(time.time() + 86400))
        for who in ("alice", "lena"):
            out.parts.append(
                (
                    f"reminders --as {who} --at {tomorrow}",
                    _tool(db, "reminders", "--as", who, "--at", tomorrow),
                )
            )
        out.parts.append(("doctor", _tool(db, "doctor", ok=(0, 1))))
    finally:
        code, err = serve.stop()
        os.environ.pop("BOT_CONFIG", None)
    assert "Traceback" not in err, err
    out.parts.append(("store check", _tool(db, "store", "check")))
    out.parts.append(("store repair", _tool(db, "store", "repair", "--to", str(tmp / "copy.json"))))
    out.parts.append(
        ("teams-package", _tool(db, "teams-package", "--out", str(tmp / "app.zip"), ok=(0, 1, 2)))
    )
    fresh = tmp / "demo" / "billing-bot.json"
    out.parts.append(("demo-data", _tool(fresh, "demo-data")))
    return out


# What no reply may contain.
REPR = re.compile(
    r"object at 0x|Decimal\(|datetime\.|\{'|\['|<class |\b(None|True|False)\b|"
    r"\b(Role|CaseState|AuditKind|Action|Channel)\.[A-Z]"
)
ONE_PLURAL = re.compile(r"(?<![\d.,])\b1 ([a-z]+s)\b")
NOT_PLURAL = {"is", "was", "has", "does", "this", "its", "plus", "status", "always", "across"}
# Words a Chinese reply may keep in English: names, products, codes, what the person typed
# in English (the case ids, command words shown as `code`), units.
ZH_ALLOWED = re.compile(
    r"`[^`]*`|https?://\S+|/billing|BILL-\d+|[A-Z0-9][A-Za-z0-9/._-]*\d[A-Za-z0-9/._-]*|"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[A-Z][A-Z_]+[A-Z]\b|"
    r"\b(?:alice|lena|carol|Lena Fischer|Contoso|Microsoft|Partner Center|Azure|Slack|Teams|"
    r"MPN|CIE|vKB|TechNet|PDF|CSV|EUR|USD|CNY|UTC|ok|billing-bot|http|https|"
    r"[A-Z]{2,5})\b"
)


def _findings(t: Transcript) -> list[str]:
    bad: list[str] = []
    chinese: set[str] = set()  # who has said `language zh`
    for title, text in t.parts:
        who = title.split()[2] if title.startswith("chat --as") else ""
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip() == "> language zh":
                chinese.add(who)
            where = f"[{t.lang}] {title} line {n}: {line!r}"
            if "Traceback" in line or "Error:" in line and "Exception" in line:
                bad.append(f"traceback {where}")
            if REPR.search(line):
                bad.append(f"python repr {where}")
            for m in ONE_PLURAL.finditer(line):
                if m.group(1) not in NOT_PLURAL:
                    bad.append(f"'1 … s' plural {where}")
            if t.lang == "zh" and who in chinese and not line.startswith(">"):
                rest = ZH_ALLOWED.sub(" ", line)
                words = re.findall(r"[A-Za-z]{3,}", rest)
                if words:
                    bad.append(f"English in zh ({' '.join(words)}) {where}")
    # The customer's history lines (on the card and under `status`) hold only what was done
    # for them: no kind that AUDIT_KINDS keeps from customers, in either language.
    hidden = [k.label for k in AUDIT_KINDS.values() if k.customer is None]
    with use_locale("zh_CN"):
        hidden += [_(label) for label in hidden]
    for line in t.of("carol").splitlines():
        if HISTORY_LINE.match(line) and any(label in line for label in hidden):
            bad.append(f"[{t.lang}] an internal event shown to carol: {line!r}")
    for secret in ("Checked the usage report", "已查看用量报告"):  # alice's internal note
        if secret in t.of("carol"):
            bad.append(f"[{t.lang}] an internal note shown to carol: {secret!r}")
    return bad


HISTORY_LINE = re.compile(r"^(│ )?\d{4}(-\d\d-\d\d|年)")


def _markdown(runs: list[Transcript]) -> str:
    out = [
        "# Walkthrough",
        "",
        "Every command of the README, as a new billing agent (alice), the lead (lena) and a",
        "customer contact (carol, of Contoso) would type them, in English and in Chinese, on a",
        "fresh store: a real `billing-bot serve` and `billing-bot chat` sessions. Written by",
        "`tests/test_walkthrough.py` (`make pytest PYTEST_ARGS='-k walkthrough'`), which also",
        "checks that no reply holds a Python repr, a traceback, untranslated English in",
        'Chinese, a "1 … s" plural or, for the customer, an internal event of the desk.',
        "",
    ]
    for t in runs:
        out.append(f"## {'English' if t.lang == 'en' else '中文'}")
        out.append("")
        for title, text in t.parts:
            out += [f"### `billing-bot {title}`", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(out)


def test_walkthrough(tmp_path: Path) -> None:
    runs = []
    for lang, script in (("en", EN), ("zh", ZH)):
        (tmp_path / lang).mkdir()
        runs.append(_walk(tmp_path / lang, lang, script))
    _write_doc(_markdown(runs), tmp_path)
    bad = [b for t in runs for b in _findings(t)]
    assert not bad, "\n".join(bad)


# What changes from run to run without the replies changing: times, dates, proposal ids,
# the journal's sequence number.
_VOLATILE = re.compile(
    r"\d{4}-\d\d-\d\d(?:[ T]\d\d:\d\d(?::\d\d)?)?(?: ?[+-]\d\d:?\d\d)?"
    r"|\d{4}年\d{1,2}月\d{1,2}日(?: \d\d:\d\d)?|\b[0-9a-f]{12}\b|\bseq \d+"
)


def _write_doc(text: str, tmp: Path) -> None:
    """Write docs/walkthrough.md when the replies changed (not for new times or ids alone)."""
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:3978", text).replace(str(tmp), "/tmp/walk")
    doc = ROOT / "docs" / "walkthrough.md"
    old = doc.read_text(encoding="utf-8") if doc.exists() else ""
    if _VOLATILE.sub("…", old) != _VOLATILE.sub("…", text):
        doc.write_text(text, encoding="utf-8")
