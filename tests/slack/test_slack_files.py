"""Files shared on Slack (issue 20): signed ``file_share`` events at the HTTP edge.

The file stays in Slack: the case records its name, size, type and permalink; the
same Slack file shared twice on a case is attached once; without a case in context
the person is asked which case.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.slack.slackfake import CONTOSO_TEAM, SlackEnv, load, new_case

PERMALINK = "https://acme.slack.com/files/U2147483697/F0S43PZDF/remittance-advice.pdf"


def file_share(user: str, channel: str, text: str = "", **extra: Any) -> dict[str, Any]:
    event = copy.deepcopy(load("event_file_share")["event"])
    event.update(user=user, channel=channel, text=text, **extra)
    for f in event["files"]:
        f["user"] = user
    return event


async def test_a_file_shared_in_a_dm_is_attached_to_the_case_in_context(slack: SlackEnv) -> None:
    await new_case(slack, "Why two charges?")
    # No case in context in the DM yet: asked which case, nothing attached.
    status, _ = await slack.event(file_share("UANA", "DANA"), fixture="event_file_share")
    assert status == 200
    assert "Which case is the file for?" in slack.fake.last_message().text
    case = await slack.case(1)
    assert case.attachments == []
    await slack.dm("status BILL-1")
    status, _ = await slack.event(file_share("UANA", "DANA"), fixture="event_file_share")
    assert status == 200
    assert "Attached remittance-advice.pdf" in slack.fake.last_message().text
    case = await slack.case(1)
    [att] = case.attachments
    assert (att.name, att.size, att.content_type, att.link) == (
        "remittance-advice.pdf",
        48213,
        "application/pdf",
        PERMALINK,
    )
    assert att.id == "slack:F0S43PZDF" and att.internal and not att.stored  # staff, in a DM
    # The same Slack file again (a new event: shared once more, or redelivered): once.
    await slack.event(file_share("UANA", "DANA"), fixture="event_file_share")
    assert "already attached" in slack.fake.last_message().text
    # And the same event again (Slack's retry): the request queue drops it.
    before = len(slack.fake.messages)
    await slack.event(file_share("UANA", "DANA"), event_id="EvSAME", fixture="event_file_share")
    await slack.event(
        file_share("UANA", "DANA"), event_id="EvSAME", retry=1, fixture="event_file_share"
    )
    assert len(slack.fake.messages) == before + 1
    assert len((await slack.case(1)).attachments) == 1
    await slack.dm("status BILL-1")
    assert "remittance-advice.pdf" in slack.fake.last_message().text
    assert PERMALINK in slack.fake.last_message().text


async def test_a_customer_shares_a_file_in_the_case_thread_of_their_shared_channel(
    slack: SlackEnv,
) -> None:
    # Carl's own question: its card is posted in the shared channel; he shares the file in
    # the card's thread (the thread names the case).
    await slack.command("ask", user="UCARL", channel="CCONTOSO")
    view = slack.fake.last_view()
    await slack.submit(view, {"category": "invoice", "description": "Remittance?"}, user="UCARL")
    posted = slack.fake.last_message(ephemeral=False)
    assert posted.channel == "CCONTOSO" and "BILL-1" in posted.text
    event = file_share(
        "UCARL",
        "CCONTOSO",
        "for the case",
        channel_type="channel",
        thread_ts=posted.ts,
        user_team=CONTOSO_TEAM,
    )
    status, _ = await slack.event(event, fixture="event_file_share")
    assert status == 200
    case = await slack.case(1)
    [att] = case.attachments
    assert not att.internal and att.by != "ana"  # shared by the customer: theirs to see
    assert [a.action for a in case.audit][-1] == "attached"
