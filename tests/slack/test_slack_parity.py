"""One question, from ``ask`` to customer informed, through the local chat and through Slack.

Both runs must end in the same stored case and the same audit trail (ids,
times and channel names aside): the channels only translate, the desk decides.
"""

from __future__ import annotations

from typing import Any

from bot.app.wiring import build_runtime
from bot.clock import FakeClock
from bot.domain import State
from bot.kernel.model import Channel, Message
from bot.storage import MemoryEngine, Store
from conversations.text import plain
from tests.harness import PARITY_INFORMED, PARITY_SCRIPT, assert_same_case
from tests.slack.slackfake import START, SlackEnv, make_settings, new_case


async def run_local(api_url: str) -> dict[str, Any]:
    store = Store(MemoryEngine())
    await store.open()
    runtime = build_runtime(make_settings(api_url), store, FakeClock(START, speed=1.0))
    lines = [*PARITY_SCRIPT, PARITY_INFORMED]
    transcript = []
    for line in lines:
        msg = Message(channel=Channel.LOCAL, user="ana", conversation="terminal:ana", text=line)
        result = await runtime.handle(msg)
        transcript.append(plain(" ".join(r.text for r in result.replies)))
    assert "Question BILL-1 for Contoso is open" in " ".join(transcript)
    case = await store.get_case(1)
    assert case is not None and case.state == State.CUSTOMER_INFORMED
    await store.close()
    return case.to_doc()


async def run_slack(slack: SlackEnv) -> dict[str, Any]:
    card = await new_case(slack, "Why two charges?")
    await slack.click(card, "take")
    await slack.click(slack.fake.message(card.ts), "resolve")
    await slack.submit(slack.fake.last_view(), {"resolution": "Credit note issued"})
    # serve's scheduler ticks every second, and at once when kicked (the local chat ticks
    # inline): the close-the-loop DM goes out now, through conversations.open + postMessage.
    await slack.runtime.scheduler.tick()
    loop_dm = await slack.eventually(
        lambda: [m for m in slack.fake.messages if m.channel == "DANA"]
    )
    assert "BILL-1 is resolved" in loop_dm[-1].text
    await slack.click(slack.fake.message(card.ts), "informed")
    await slack.submit(slack.fake.last_view(), {"via": "email", "text": "Told her by mail"})
    case = await slack.case(1)
    assert case is not None and case.state == State.CUSTOMER_INFORMED
    assert "customer informed" in slack.fake.message(card.ts).text  # the card, updated in place
    return case.to_doc()


async def test_local_and_slack_end_in_the_same_case(slack: SlackEnv) -> None:
    local = await run_local(slack.settings.slack_api_url or "")
    via_slack = await run_slack(slack)
    assert_same_case(via_slack, local, "slack")
