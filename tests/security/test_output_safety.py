"""What people type is shown as text on every channel: no pings, no forged links, no markup.

A customer writes a case description (and staff a customer name) full of
Slack control sequences, Teams mentions, markdown links and card template
functions; each channel must show exactly those characters and nothing
more. The web page's CSV exports must not start a cell with a formula.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from bot.domain import State
from bot.kernel.model import Channel, Message
from tests.security.drivers import local_driver, slack_driver, teams_driver, web_driver
from tests.security.matrix import PEOPLE, seed_case

CUSTOMER_A = next(p for p in PEOPLE if p.key == "customer_a")
LEAD = next(p for p in PEOPLE if p.key == "lead")
HOSTILE = (
    "Hi <!channel> <!here> <!subteam^S123> <@U0BOSS> see <https://evil.example|your bank> "
    "or [your bank](https://evil.example) **now** _please_ <at>Lena Lead</at> "
    "{{DATE(2017-02-14T06:08:39Z, SHORT)}} &amp; <script>alert(1)</script> "
    '"><img src=x onerror=alert(1)>\n# heading\n- item\n> quote'
)
EVIL_NAME = "Evil <!here> [Corp](https://evil.example)"


# ---------------------------------------------------------------------------- Slack
def mrkdwn_texts(body: dict[str, Any]) -> list[str]:
    """Every string Slack would read as mrkdwn: the message text and mrkdwn objects."""
    out = [str(body.get("text", ""))]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                out.append(str(node.get("text", "")))
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(body.get("blocks") or [])
    return out


SLACK_NEVER = re.compile(r"<[!@#]|<https?://|<mailto:")


async def test_slack_escapes_typed_text_in_block_kit() -> None:
    async with slack_driver() as slack:
        shown = await slack.submit(
            CUSTOMER_A, "ask", {"category": "charges", "description": HOSTILE}, {}
        )
        assert "your bank" in shown.text
        await slack.submit(
            LEAD, "ask", {"customer": EVIL_NAME, "category": "tax", "description": HOSTILE}, {}
        )
        await slack.send(LEAD, "list all")
        await slack.send(LEAD, "customers")
        bodies = [m.body for m in slack.fake.messages] + slack.fake.views
        texts = [t for body in bodies for t in mrkdwn_texts(body)]
        assert any("&lt;!channel&gt;" in t for t in texts), texts
        assert any("Evil &lt;!here&gt;" in t for t in texts), texts
        for text in texts:
            assert not SLACK_NEVER.search(text), text


# ---------------------------------------------------------------------------- Teams
def card_strings(card: dict[str, Any]) -> list[str]:
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("text", "title", "value"):
                if isinstance(node.get(key), str):
                    out.append(node[key])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(card.get("body"))
    walk(card.get("actions"))
    return out


UNESCAPED_MD = re.compile(r"(?<!\\)\[your bank(?<!\\)\]|(?<!\\)\*\*now|\{\{DATE")


async def test_teams_escapes_typed_text_in_messages_and_adaptive_cards() -> None:
    async with teams_driver() as teams:
        await teams.submit(CUSTOMER_A, "ask", {"category": "charges", "description": HOSTILE}, {})
        await teams.submit(
            LEAD, "ask", {"customer": EVIL_NAME, "category": "tax", "description": HOSTILE}, {}
        )
        await teams.send(LEAD, "list all")
        await teams.send(LEAD, "customers")
        posted = [c.body for c in teams.connector.calls if c.method in ("POST", "PUT")]
        cards = [
            a["content"]
            for body in posted
            for a in body.get("attachments") or []
            if a.get("contentType") == "application/vnd.microsoft.card.adaptive"
        ]
        assert cards
        strings = [s for card in cards for s in card_strings(card)]
        assert any("your bank" in s for s in strings)
        for card in cards:
            assert card["type"] == "AdaptiveCard" and isinstance(card["body"], list)
            json.dumps(card)  # still a well-formed card
        for text in [*strings, *(str(b.get("text", "")) for b in posted)]:
            assert not UNESCAPED_MD.search(text), text
        for body in posted:
            text = str(body.get("text", ""))
            assert "<at>" not in text and "<script" not in text and "<img" not in text, text
            mentions = [e for e in body.get("entities") or [] if e.get("type") == "mention"]
            assert mentions == [], body  # nobody is pinged by what a customer wrote


# ---------------------------------------------------------------------------- web
async def test_the_web_page_escapes_typed_text_and_csv_exports_hold_no_formulas() -> None:
    formulas = {
        "customer": '=HYPERLINK("https://evil.example","x")',
        "description": "+SUM(1+1) @A1 -2+3",
    }
    async with web_driver() as page:
        typed = {"category": "charges", "description": HOSTILE}
        shown = await page.submit(CUSTOMER_A, "ask", typed, {})
        assert "your bank" in shown.raw
        for hostile in ("<script>alert", "<img src=x", "<at>", "<!channel>"):
            assert hostile not in shown.raw, hostile
        await page.submit(LEAD, "ask", {**formulas, "category": "tax"}, {})
        for starts in ("-2+3 minus", "@SUM(A1)", "\t=1+1", "=cmd|' /C calc'!A0"):
            await page.submit(
                LEAD,
                "ask",
                {"customer": "Contoso", "category": "tax", "description": starts},
                {},
            )
        case = await seed_case(page.runtime, State.IN_PROGRESS)
        await page.send(LEAD, f'resolve {case.id} =WEBSERVICE("https://evil.example")')
        client = page.clients["lead"]
        for export in ("cases", "awaiting", "requests"):
            resp = await client.get(f"/dashboard/{export}.csv")
            assert resp.status == 200, export
            assert resp.headers["Content-Type"].startswith("text/csv")
            rows = list(csv.reader(io.StringIO((await resp.text()).lstrip("\ufeff"))))
            cells = [cell for row in rows for cell in row]
            for cell in cells:
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (export, cell)
            if export == "cases":
                assert '\'=HYPERLINK("https://evil.example","x")' in cells
                assert "'+SUM(1+1) @A1 -2+3" in cells
            if export == "awaiting":
                assert any(c.startswith("'=WEBSERVICE") for c in cells), cells


# ---------------------------------------------------------------------------- local
async def test_the_terminal_never_receives_control_characters() -> None:
    async with local_driver() as local:
        typed = "ask \x1b[2J\x1b]0;pwned\x07 why?\r\x00"
        msg = Message(Channel.LOCAL, "carol", "dm:carol", text=typed, user_name="carol")
        result = await local.runtime.handle(msg)
        stored = json.dumps(local.runtime.store.engine.view("conversations"))
        shown = json.dumps([r.text for r in result.replies])
        for text in (stored, shown):
            for bad in ("\\u001b", "\\u0007", "\\u0000", "\\r"):
                assert bad not in text, (bad, text)
