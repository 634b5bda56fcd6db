"""Slack in zh_CN: a person whose Slack locale is zh-CN is answered in Simplified Chinese."""

from __future__ import annotations

from typing import Any

import pytest

from tests.slack.slackfake import PARTNER, USERS, SlackEnv


@pytest.fixture
def wei(slack: SlackEnv, monkeypatch: pytest.MonkeyPatch) -> str:
    """A partner agent whose Slack profile (``users.info``) says ``zh-CN``, in Shanghai."""
    monkeypatch.setitem(
        USERS,
        "UWEI",
        {"name": "wei", "display": "王伟", "tz": "Asia/Shanghai", "team": PARTNER},
    )
    real = slack.fake.m_users_info

    def users_info(args: dict[str, Any]) -> dict[str, Any]:
        body = real(args)
        if args["user"] == "UWEI":
            body["user"]["locale"] = "zh-CN"
        return body

    monkeypatch.setattr(slack.fake, "m_users_info", users_info)
    return "UWEI"


async def test_a_zh_cn_slack_user_files_a_dispute_in_chinese(slack: SlackEnv, wei: str) -> None:
    await slack.command("dispute G012345678", user=wei)
    view = slack.fake.last_view()
    assert view["title"]["text"] == "新建计费争议"
    labels = [b["label"]["text"] for b in view["blocks"] if b["type"] == "input"]
    assert labels[:3] == ["客户", "发票编号", "争议金额"], labels
    values = {
        "customer": "Contoso",
        "invoice": "G012345678",
        "amount": "1234.50",
        "currency": "EUR",
        "reason": "席位重复计费",
    }
    status, answer = await slack.submit(view, values, user=wei)
    assert status == 200 and answer == {}, answer
    card = slack.fake.last_message(ephemeral=False)
    text = card.text
    assert "BILL-1 · 争议 · Contoso" in text, text
    assert "1,234.50 EUR" in text and "席位重复计费" in text, text
    assert "2026年11月24日 17:00" in text, text  # 09:00 UTC in Wei's Shanghai, Chinese style
    assert [b["text"]["text"] for b in card.buttons()][:3] == ["接手", "上报", "解决"]
    for english in ("Dispute", "State", "Owner", "Take"):
        assert english not in text, text
    await slack.command("help", user=wei)
    assert "计费服务台命令" in slack.fake.last_message(ephemeral=True).text
