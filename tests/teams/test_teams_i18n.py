"""Teams in zh_CN: an activity whose ``locale`` is zh-CN is answered in Simplified Chinese."""

from __future__ import annotations

from .conftest import BotServer, FakeConnector, Teams, TeamsUser
from .helpers import send

WEI = TeamsUser("wei", "王伟", "00000000-0000-4000-8000-00000000a3e1")
ZH = {"locale": "zh-CN", "tz": "Asia/Shanghai"}


async def test_a_zh_cn_teams_user_files_a_dispute_in_chinese(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    (form,) = await send(bot, connector, teams.say(WEI, "dispute G012345678", **ZH))
    shown = form.card_text()
    assert "新建计费争议" in shown and "争议金额" in shown, shown
    assert "Disputed amount" not in shown
    values = {
        "customer": "Contoso",
        "invoice": "G012345678",
        "amount": "1234.50",
        "currency": "EUR",
        "reason": "席位重复计费",
    }
    calls = await send(bot, connector, teams.submit(WEI, form, values, **ZH))
    card = next(c for c in calls if c.cards and "BILL-" in c.card_text())
    text = card.card_text()
    assert "BILL-1 · 争议 · Contoso" in text, text
    assert "1,234.50 EUR" in text and "席位重复计费" in text, text
    assert "2026年11月24日" in text, text  # the card's history, written the Chinese way
    assert [a["title"] for a in card.actions()][:3] == ["接手", "上报", "解决"]
    for english in ("Dispute", "State", "Owner", "Take"):
        assert english not in text, text
