"""The web page in zh_CN: the browser's Accept-Language, or `language zh`, gives Chinese pages."""

from __future__ import annotations

import re

from tests.web.conftest import AppFactory

ZH = "zh-CN,zh;q=0.9,en;q=0.8"


async def test_a_zh_cn_browser_gets_the_page_the_chat_and_the_dashboard_in_chinese(
    make_web: AppFactory,
) -> None:
    b, _runtime, client = await make_web()
    client.session.headers["Accept-Language"] = ZH  # every request of this browser
    page = await b.get("/login")
    assert "登录" in page and 'lang="zh-CN"' in page, page[:1500]
    await b.login("alice")
    page = await b.get("/")
    assert "聊天" in page and "仪表板" in page and "注销" in page
    out = await b.submit(
        "dispute",
        {
            "customer": "Contoso",
            "invoice": "G012345678",
            "amount": "1234.50",
            "currency": "EUR",
            "reason": "席位重复计费",
        },
    )
    assert "Contoso 的争议 BILL-1 已创建，尚无人接手" in out, out
    assert "BILL-1 · 争议 · Contoso" in out and "1,234.50 EUR" in out and "席位重复计费" in out
    assert re.search(r"2026年11月24日 \d\d:\d\d", out), out
    assert "Your dispute" not in out and "Disputed" not in out
    dashboard = await b.get("/dashboard")
    assert "进行中的工单" in dashboard and "按状态" in dashboard
    assert "Live cases" not in dashboard


async def test_language_en_on_the_page_wins_over_the_browser(make_web: AppFactory) -> None:
    b, _runtime, client = await make_web()
    client.session.headers["Accept-Language"] = ZH
    await b.login("alice")
    out = await b.say("language en")
    assert "From now on I answer you in English." in out
    page = await b.get("/")
    assert "Log out" in page and "注销" not in page
    client.session.headers["Accept-Language"] = "en-US"
    await b.login("lena")
    out = await b.say("language zh")
    assert "从现在起，我会用中文回复你。" in out
    assert "注销" in await b.get("/")
