"""Files shared on Teams (issue 20): message activities with ``attachments[]`` at the HTTP edge.

The file stays in Teams / SharePoint: the case records its name and content URL (never
fetched, so a URL nobody can reach is recorded all the same); the same file delivered
twice is attached once; without a case in context the person is asked which case.
"""

from __future__ import annotations

from typing import Any

from .conftest import ALICE, CAROL, SHARED_CHANNEL, BotServer, FakeConnector, Teams
from .helpers import new_case, say, send

SITE = "https://contoso-my.sharepoint.com/personal/alice"
SHAREPOINT = f"{SITE}/Documents/Microsoft Teams Chat Files/invoice-G012345678.pdf"
DOWNLOAD = f"{SITE}/_layouts/15/download.aspx?UniqueId=1150d938&Translate=false&tempauth=eyJ0eXAi"


def file_attachment(url: str = SHAREPOINT, name: str = "invoice-G012345678.pdf") -> dict[str, Any]:
    """A file from OneDrive/SharePoint, as Teams attaches it to a personal-chat message."""
    return {
        "contentType": "application/vnd.microsoft.teams.file.download.info",
        "content": {
            "downloadUrl": DOWNLOAD,
            "uniqueId": "1150D938-8870-4044-9F2C-5BBDEBA70C9D",
            "fileType": "pdf",
        },
        "contentUrl": url,
        "name": name,
    }


HTML_BODY = {"contentType": "text/html", "content": "<p>here is the invoice</p>"}


async def test_a_file_in_the_personal_chat_is_attached_to_the_case_in_context(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    case = await new_case(bot, connector, teams, ALICE)
    # The case just filed in this chat is the case in context: the file goes to it.
    activity = teams.say(ALICE, "", attachments=[file_attachment(), HTML_BODY])
    (answer,) = await send(bot, connector, activity)
    assert "Attached invoice-G012345678.pdf" in answer.everything(), answer.everything()
    stored = await bot.store.get_case(int(case.split("-")[1]))
    [att] = stored.attachments
    assert (att.name, att.content_type, att.link, att.stored) == (
        "invoice-G012345678.pdf",
        "pdf",
        SHAREPOINT,
        False,
    )
    assert att.internal  # staff in their personal chat
    # The same file again: attached once.
    (answer,) = await send(bot, connector, teams.say(ALICE, "", attachments=[file_attachment()]))
    assert "already attached" in answer.everything()
    # An inline image whose URL nobody can fetch: recorded by name and link all the same.
    unreachable = "https://127.0.0.1:9/v3/attachments/0-weu-d1-abc/views/original"
    image = {"contentType": "image/*", "contentUrl": unreachable}
    (answer,) = await send(
        bot, connector, teams.say(ALICE, f"{case} screenshot", attachments=[image])
    )
    assert "Attached original" in answer.everything()
    stored = await bot.store.get_case(int(case.split("-")[1]))
    assert [a.link for a in stored.attachments] == [SHAREPOINT, unreachable]
    status = await say(bot, connector, teams, ALICE, f"status {case}")
    assert "invoice-G012345678.pdf" in "".join(c.everything() for c in status)


async def test_without_a_case_in_context_the_customer_is_asked_which_case(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    case = await new_case(bot, connector, teams, ALICE)
    activity = teams.mention_bot(
        CAROL, "invoice", conversation=SHARED_CHANNEL, attachments=[file_attachment()]
    )
    calls = await send(bot, connector, activity)
    assert any("Which case is the file for?" in c.everything() for c in calls)
    await send(
        bot, connector, teams.mention_bot(CAROL, f"status {case}", conversation=SHARED_CHANNEL)
    )
    activity = teams.mention_bot(
        CAROL, "invoice", conversation=SHARED_CHANNEL, attachments=[file_attachment()]
    )
    calls = await send(bot, connector, activity)
    assert any("Attached invoice-G012345678.pdf" in c.everything() for c in calls)
    stored = await bot.store.get_case(int(case.split("-")[1]))
    [att] = stored.attachments
    assert not att.internal and att.channel == "teams"
