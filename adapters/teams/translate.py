"""Teams activities → neutral messages: pure functions over the activity JSON.

Everything here works on the plain Bot Framework activity dict (camelCase, as
Teams posts it), so it is tested table-driven from JSON fixtures without a
server. What an activity means for the desk:

* a typed message: in a personal chat always; in a channel or group chat only
  when the bot is @mentioned. The bot's own ``<at>…</at>`` mention is cut
  out; every other person's mention becomes one ``@Name`` word, with the
  person's id in :attr:`Message.mentions` (``assign BILL-7 @Maria`` works);
* a click: ``value`` is the ``Action.Submit`` data of a card button,
  ``{action, case_id, stage, value}`` (``version`` instead of ``stage`` on
  cards posted before the rename: both are read);
* a form submission: ``value`` carries ``billing_form`` and
  ``billing_context`` plus the card's inputs, named ``f_<field>``.

``botbuilder``'s ``TurnContext.remove_recipient_mention`` is not used: it
deletes every occurrence of the bot's *name* from the text (a bot called
"Billing" would turn "ask Billing question" into "ask question").
"""

from __future__ import annotations

import hashlib
import html
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.domain import is_guid
from bot.kernel.model import ActionRef, Channel, Message, SharedFile, read_stage
from conversations import clicks

FORM_KEY = "billing_form"
CONTEXT_KEY = "billing_context"
INPUT_PREFIX = "f_"
MAX_TEXT = 4000

_AT_TAG = re.compile(r"<at[^>]*>(.*?)</at>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_SPACES = re.compile(r"[ \t\u00a0]+")

Activity = dict[str, Any]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def conversation_type(activity: Activity) -> str:
    """``personal``, ``groupChat`` or ``channel`` (the Emulator sends none: personal)."""
    return _str(_dict(activity.get("conversation")).get("conversationType")) or "personal"


def base_conversation(conversation_id: str) -> str:
    """A channel thread ``19:…@thread.tacv2;messageid=123`` → the channel ``19:…@thread.tacv2``."""
    return conversation_id.split(";messageid=", 1)[0]


def activity_dedupe_key(conversation: str, activity_id: str) -> str:
    """The dedupe key of an activity: its id within its (base) conversation."""
    return f"teams:{conversation}:{activity_id}"


def user_id_of(aad: str) -> str:
    """The desk's id of a Teams user nobody configured or linked: ``teams:<AAD id>``."""
    return f"teams:{aad}"


def tenant_of(activity: Activity) -> str | None:
    tenant = _str(_dict(_dict(activity.get("channelData")).get("tenant")).get("id"))
    return tenant or _str(_dict(activity.get("conversation")).get("tenantId")) or None


def sender_id(activity: Activity) -> str:
    """The sender as the desk knows Teams users: the AAD object id (Emulator: the channel id)."""
    sender = _dict(activity.get("from"))
    return _str(sender.get("aadObjectId")) or _str(sender.get("id"))


def time_zone(activity: Activity) -> str | None:
    """The sender's IANA time zone: ``localTimezone``, else the ``clientInfo`` entity."""
    candidates = [_str(activity.get("localTimezone"))]
    for entity in activity.get("entities") or []:
        if isinstance(entity, dict) and entity.get("type") == "clientInfo":
            candidates.append(_str(entity.get("timezone")))
            candidates.append(_str(entity.get("localTimezone")))
    for name in candidates:
        if not name:
            continue
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        return name
    return None


def value_of(activity: Activity) -> dict[str, Any] | None:
    value = activity.get("value")
    return value if isinstance(value, dict) else None


def is_form_submission(activity: Activity) -> bool:
    value = value_of(activity)
    return bool(value and isinstance(value.get(FORM_KEY), str))


def click_of(activity: Activity) -> ActionRef | None:
    """The button a message stands for, or None (a form submission is not a click)."""
    value = value_of(activity)
    if not value or is_form_submission(activity):
        return None
    name = value.get("action")
    if not isinstance(name, str) or not name.strip() or len(name) > 40:
        return None
    case_id = value.get("case_id")
    extra = value.get("value")
    return ActionRef(
        name=name.strip(),
        case_id=case_id if isinstance(case_id, str) and case_id else None,
        stage=read_stage(value),  # "stage", or "version" on a card posted before the rename
        value=str(extra) if isinstance(extra, str | int) and str(extra) else None,
    )


def click_key(activity: Activity) -> str | None:
    """What makes two clicks "the same click" (:func:`conversations.clicks.click_key`).

    On Teams a click counts once per conversation, clicker and card.
    """
    action = click_of(activity)
    if action is None:
        return None
    conv = base_conversation(_str(_dict(activity.get("conversation")).get("id")))
    where = (conv, sender_id(activity), _str(activity.get("replyToId")))
    return clicks.click_key("teams-click", action, where)


def mentions_bot(activity: Activity) -> bool:
    bot = _str(_dict(activity.get("recipient")).get("id"))
    for entity in activity.get("entities") or []:
        if isinstance(entity, dict) and entity.get("type") == "mention":
            if _str(_dict(entity.get("mentioned")).get("id")) == bot and bot:
                return True
    return False


def addressed_to_bot(activity: Activity) -> bool:
    """Should the desk answer this message? Personal chat, cards, or an @mention of the bot."""
    if activity.get("type") != "message":
        return False
    if value_of(activity) is not None:
        return True  # a click or a form submission on one of our cards
    return conversation_type(activity) == "personal" or mentions_bot(activity)


def _token(name: str) -> str:
    """A person's shown name as one word, so ``assign BILL-7 @Maria_Lopez`` parses."""
    word = re.sub(r"\s+", "_", name.strip().lstrip("@")) or "someone"
    return word[:64]


def clean_text(activity: Activity) -> tuple[str, dict[str, str]]:
    """The typed text without the bot's mention, and every other mention as ``@Name``.

    Returns the text and ``{Name: mentioned channel id}``.
    """
    text = _str(activity.get("text"))[:MAX_TEXT]
    bot = _str(_dict(activity.get("recipient")).get("id"))
    mentions: dict[str, str] = {}
    for entity in activity.get("entities") or []:
        if not isinstance(entity, dict) or entity.get("type") != "mention":
            continue
        mentioned = _dict(entity.get("mentioned"))
        who = _str(mentioned.get("id"))
        shown = _str(entity.get("text"))
        name = _str(mentioned.get("name")) or _AT_TAG.sub(r"\1", shown)
        if not shown:
            shown = f"<at>{name}</at>"
        if shown not in text:
            continue
        if who and who == bot:
            replacement = " "
        else:
            token = _token(html.unescape(_AT_TAG.sub(r"\1", shown)) or name)
            mentions[token] = _str(mentioned.get("aadObjectId")) or who
            replacement = f" @{token} "
        text = text.replace(shown, replacement, 1)
    text = _AT_TAG.sub(r"\1", text)  # a mention without an entity: keep the name
    text = _TAG.sub(" ", text.replace("<br>", "\n").replace("<br/>", "\n"))
    text = html.unescape(text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line).strip(), mentions


def form_values(activity: Activity) -> tuple[str, dict[str, str], dict[str, str]] | None:
    """``(form_id, values, context)`` of a card form submission."""
    value = value_of(activity)
    if not value or not isinstance(value.get(FORM_KEY), str):
        return None
    values = {
        key[len(INPUT_PREFIX) :]: "" if raw is None else str(raw)
        for key, raw in value.items()
        if key.startswith(INPUT_PREFIX) and isinstance(raw, str | int | float | type(None))
    }
    ctx = value.get(CONTEXT_KEY)
    context = (
        {str(k): str(v) for k, v in ctx.items() if isinstance(v, str | int)}
        if isinstance(ctx, dict)
        else {}
    )
    return value[FORM_KEY], values, context


def reference_of(activity: Activity) -> dict[str, Any]:
    """The activity's conversation reference, as ``ConversationReference`` JSON.

    ``activityId`` is left out: a stored reference is for starting new
    messages in the conversation, not for replying to an old one.
    """
    conversation = dict(_dict(activity.get("conversation")))
    tenant = tenant_of(activity)
    if tenant and not conversation.get("tenantId"):
        conversation["tenantId"] = tenant
    return {
        "user": dict(_dict(activity.get("from"))),
        "bot": dict(_dict(activity.get("recipient"))),
        "conversation": conversation,
        "channelId": _str(activity.get("channelId")) or "msteams",
        "locale": _str(activity.get("locale")) or None,
        "serviceUrl": _str(activity.get("serviceUrl")),
    }


FILE_DOWNLOAD_INFO = "application/vnd.microsoft.teams.file.download.info"
# Attachments of a message that are not files: its text as HTML, our own cards, a mention card.
_NOT_FILES = (
    "text/html",
    "application/vnd.microsoft.card.",
    "application/vnd.microsoft.teams.card.",
)


def shared_files(activity: Activity) -> list[SharedFile]:
    """The files a message carries (``attachments[]``), as links: the file stays in Teams.

    A file from OneDrive or SharePoint comes as ``…teams.file.download.info`` with its
    ``contentUrl`` (kept: where the file lives; ``content.downloadUrl`` is a short-lived
    download link, kept only when there is no other), ``name`` and ``content.fileType``;
    an inline image or any other file as its ``contentType`` and ``contentUrl``. Nothing
    is downloaded, so a URL that cannot be fetched is recorded all the same. Each is named
    ``teams:<hash of its URL>``, so the same file delivered twice is attached once.
    """
    out = []
    for att in activity.get("attachments") or []:
        if not isinstance(att, dict):
            continue
        kind = _str(att.get("contentType"))
        if not kind or kind.startswith(_NOT_FILES):
            continue
        content = _dict(att.get("content"))
        url = _str(att.get("contentUrl"))
        if kind == FILE_DOWNLOAD_INFO:
            url = url or _str(content.get("downloadUrl"))
            file_type = _str(content.get("fileType"))
        else:
            file_type = kind
        if not url.startswith("https://"):
            continue
        name = _str(att.get("name")) or url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        out.append(
            SharedFile(
                name=(name or "file")[:500],
                content_type=file_type[:100],
                link=url[:2000],
                source_id=f"teams:{digest}",
            )
        )
    return out[:10]


def to_message(activity: Activity) -> Message | None:
    """The neutral message for an activity addressed to the bot; None for anything else."""
    if not addressed_to_bot(activity):
        return None
    conversation = _dict(activity.get("conversation"))
    conv_id = _str(conversation.get("id"))
    channel_data = _dict(activity.get("channelData"))
    sender = _dict(activity.get("from"))
    text, mentions = clean_text(activity)
    msg = Message(
        channel=Channel.TEAMS,
        user=sender_id(activity),
        conversation=conv_id,
        text=text,
        user_name=_str(sender.get("name")),
        locale=_str(activity.get("locale")) or None,
        time_zone=time_zone(activity),
        is_direct=conversation_type(activity) == "personal",
        tenant=tenant_of(activity),
        mentions=mentions,
        reference={
            "channel_id": _str(_dict(channel_data.get("channel")).get("id"))
            or base_conversation(conv_id),
            "team_id": _str(_dict(channel_data.get("team")).get("id")) or None,
            "conversation_type": conversation_type(activity),
            "activity_id": _str(activity.get("id")) or None,
            "reply_to_id": _str(activity.get("replyToId")) or None,
        },
        raw=activity,
        files=shared_files(activity),
    )
    submitted = form_values(activity)
    if submitted is not None:
        msg.form_id, msg.form_values, msg.form_context = submitted
        msg.text = ""
        return msg
    action = click_of(activity)
    if action is not None:
        msg.action = action
        msg.text = ""
        return msg
    if value_of(activity) is not None:
        return None  # a card value that is neither a click nor one of our forms
    return msg


__all__ = [
    "addressed_to_bot",
    "base_conversation",
    "clean_text",
    "click_key",
    "click_of",
    "conversation_type",
    "form_values",
    "is_form_submission",
    "is_guid",
    "mentions_bot",
    "reference_of",
    "sender_id",
    "tenant_of",
    "time_zone",
    "to_message",
]


# ----------------------------------------------------------------------- the request queue
def request_route(payload: dict[str, Any]) -> tuple[str, str]:
    """(destination, lane) of a queued Teams activity: its ``serviceUrl``, its conversation.

    A conversation's activities are worked off in order on its lane; a Bot
    Connector that stops answering is paused on its own, without holding up
    other conversations or channels (see ``Runtime.drain_requests``).
    """
    body = payload.get("activity")
    body = body if isinstance(body, dict) else {}
    service_url = body.get("serviceUrl")
    conversation = body.get("conversation")
    conv_id = conversation.get("id") if isinstance(conversation, dict) else None
    destination = service_url if isinstance(service_url, str) and service_url else "?"
    if isinstance(conv_id, str) and conv_id:
        return destination, f"conversation:{base_conversation(conv_id)}"
    return destination, f"item:{payload.get('key')}"
