"""Plurals: a count is shown with ``ngettext`` (issue 19, item 7).

"every 1 minutes", "1 accounts · 1 invoices", "1 customers created" and "1 bad rows were
skipped" were shown by the desk. Here: those four through the real paths (escalation,
the dashboard, the receivables import CLI), every plural message of the catalog rendered
with 1 and with 2, and a check over the catalog and the sources that no count placeholder
is formatted into a plain ``_()`` text or an f-string next to a noun.
"""

from __future__ import annotations

import ast
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from bot.i18n import LOCALE_DIR, ngettext, use_locale
from tests.fakes.partner_center import FakePartnerCenter
from tests.harness import DeskEnv, make_settings
from tests.processes import ROOT

POT = LOCALE_DIR / "billing-bot.pot"
ZH = LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "billing-bot.po"
# Placeholder names that hold a count (a number of things): never right before a noun in
# a plain _() text or an f-string ("{n} days"); "day {days}:" (a day number) is no count.
COUNT_NAMES = re.compile(
    r"^(n|m|count|number|total|days|hours|minutes|seconds|digits|places|"
    r"new|updated|unchanged|created|cupdated|good|damaged|errors)$"
)
_PLACEHOLDER = re.compile(r"\{(\w+)[^}]*\}")
# A count followed by a word is a count of things ("{n} days"); these words after a
# number are not a noun of it ("{kept} of {n}", "{n} open", "{n} h", "op {n} is").
NOT_NOUNS = {"of", "to", "and", "or", "in", "at", "by", "more", "open", "h", "min", "is", "has"}
NOT_NOUNS |= {"names"}


def _english_singular_and_plural(singular: str, plural: str) -> tuple[str, str]:
    values = {name: name.upper() for name in _PLACEHOLDER.findall(singular + plural)}
    with use_locale("en"):
        one = ngettext(singular, plural, 1).format(**{**values, "n": 1})
        two = ngettext(singular, plural, 2).format(**{**values, "n": 2})
    return one, two


def catalog_plurals() -> list[tuple[str, str]]:
    with POT.open("rb") as fh:
        catalog = read_po(fh)
    return [tuple(m.id) for m in catalog if isinstance(m.id, (list, tuple))]  # type: ignore[misc]


@pytest.mark.parametrize("singular,plural", catalog_plurals(), ids=lambda s: s[:40])
def test_every_plural_message_renders_with_1_and_with_2(singular: str, plural: str) -> None:
    one, two = _english_singular_and_plural(singular, plural)
    assert one != two
    assert "1 " in one or "{n}" not in singular
    # English: no "1 things" in the singular, and the plural is not the singular.
    assert not re.search(r"\b1 \w+s\b(?<!\bis)(?<!\bwas)(?<!\bhas)", one.replace("1 of", "")), one
    with ZH.open("rb") as fh:
        zh = read_po(fh)
    msg = zh.get((singular, plural)) or zh.get(singular)
    assert msg is not None and isinstance(msg.string, tuple) and len(msg.string) == 1, msg
    assert msg.string[0] and set(_PLACEHOLDER.findall(msg.string[0])) == set(
        _PLACEHOLDER.findall(plural)
    )


def test_no_count_placeholder_is_a_plain_catalog_text() -> None:
    with POT.open("rb") as fh:
        catalog = read_po(fh)
    bad = []
    for m in catalog:
        if not m.id or isinstance(m.id, (list, tuple)):
            continue
        for found in _PLACEHOLDER.finditer(m.id):
            name = found.group(1)
            if not COUNT_NAMES.match(name):
                continue
            after = re.match(r" ([A-Za-z]+)", m.id[found.end() :])
            if after and after.group(1) not in NOT_NOUNS:
                bad.append(m.id)
    assert bad == [], "counts in plain _() texts, use ngettext:\n" + "\n".join(bad)


def test_no_f_string_puts_a_count_before_a_noun() -> None:
    """f"{n} cases", f"{len(rows)} rows", f"{n} {k}": English-only texts get plurals wrong too."""
    bad = []
    for folder in ("bot", "conversations", "adapters"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.JoinedStr):
                    continue
                parts = node.values
                for i, part in enumerate(parts[:-1]):
                    if not isinstance(part, ast.FormattedValue):
                        continue
                    expr = ast.unparse(part.value)
                    is_count = bool(COUNT_NAMES.match(expr)) or expr.startswith("len(")
                    nxt = parts[i + 1]
                    text = nxt.value if isinstance(nxt, ast.Constant) else ""
                    word = re.match(r" ([A-Za-z]+)", str(text))
                    noun = (word and word.group(1) not in NOT_NOUNS) or (
                        text == " " and i + 2 < len(parts)
                    )
                    if is_count and noun:
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert bad == [], "counts in f-strings, use ngettext:\n" + "\n".join(bad)


def test_plural_count_of_a_shown_number() -> None:
    from bot.i18n import plural_count

    assert [plural_count(s) for s in ("1", "2", "0", "1.5", "1.0", " 1 ")] == [1, 2, 2, 2, 2, 1]


# ---- the afternoon's four, through the real paths ----------------------------------------
@pytest.fixture
async def api_desk(fake: FakePartnerCenter) -> AsyncIterator[tuple[DeskEnv, FakePartnerCenter]]:
    env = DeskEnv(fake.settings(base=make_settings(partner_center_poll_minutes=1)))
    await env.store.open()
    yield env, fake
    await env.runtime.close()


async def test_every_1_minute(api_desk: tuple[DeskEnv, FakePartnerCenter]) -> None:
    env, _fake = api_desk
    case_id = await env.new_question()
    alice = env.chat("alice")
    await alice.send(f"escalate {case_id} 2411240010001234")
    alice.expect_not("every 1 minutes")
    alice.expect("I check it every 1 minute.")


async def test_every_2_minutes(fake: FakePartnerCenter) -> None:
    env = DeskEnv(fake.settings(base=make_settings(partner_center_poll_minutes=2)))
    await env.store.open()
    try:
        case_id = await env.new_question()
        alice = env.chat("alice")
        await alice.send(f"escalate {case_id} 2411240010001234")
        alice.expect("I check it every 2 minutes.")
    finally:
        await env.runtime.close()


async def test_manual_check_every_1_hour() -> None:
    env = DeskEnv(make_settings(partner_center_manual_check_hours=1))
    await env.store.open()
    case_id = await env.new_question()
    alice = env.chat("alice")
    await alice.send(f"escalate {case_id} 2411240010001234")
    alice.expect_not("every 1 hours")
    alice.expect("in the portal every 1 hour;")


HEADER = (
    "customer_tenant_id,customer_name,invoice_number,amount,currency,due_date,paid_date,"
    "subscription_ids,amount_paid"
)
TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"


def _import(tmp_path: Path, rows: list[str]) -> str:
    import subprocess
    import sys

    from tests.processes import bot_env

    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "ar.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bot", "receivables", "import", str(path), "--as", "lena"],
        capture_output=True,
        text=True,
        env=bot_env(tmp_path / "billing.json"),
        cwd=ROOT,
        timeout=60,
    )
    return done.stdout


def test_the_receivables_import_counts_with_1_and_with_2(tmp_path: Path) -> None:
    one = _import(
        tmp_path / "one",
        [
            f"{TENANT},Contoso,INV-1,1200.00,EUR,2026-10-01,,,",
            f"{TENANT},Contoso,INV-2,oops,EUR,2026-10-01,,,",
        ],
    )
    assert "1 customers" not in one and "1 bad rows" not in one, one
    assert "1 customer created" in one and "1 bad row was skipped" in one, one
    assert "1 invoice: 1 new" in one, one
    two = _import(
        tmp_path / "two",
        [
            f"{TENANT},Contoso,INV-1,1200.00,EUR,2026-10-01,,,",
            ",Fabrikam,INV-2,10.00,EUR,2026-10-01,,,",
            f"{TENANT},Contoso,INV-3,oops,EUR,2026-10-01,,,",
            f"{TENANT},Contoso,INV-4,1.00,XXX1,2026-10-01,,,",
        ],
    )
    assert "2 customers created" in two and "2 bad rows were skipped" in two, two
    assert "2 invoices: 2 new" in two, two


def test_english_only_counts_of_the_cli_and_the_demo() -> None:
    from adapters.web.demo import counts_text
    from bot.app.doctor import Finding, report

    assert counts_text({"customers": 1, "cases": 2, "receivables": 0}) == "1 customer, 2 cases"
    assert counts_text({"users": 2, "case numbers": 1}) == "2 users, 1 case number"
    assert report([Finding("error", "x", "y")])[0].endswith("1 problem to fix.")
    assert report([Finding("error", "x", "y")] * 2)[0].endswith("2 problems to fix.")
