"""Pure Slack translation: payloads → neutral messages, replies → Block Kit and modals.

No I/O and no Slack SDK here, so every rule can be tested from JSON fixtures:

* inbound: a slash command, an Events API callback (DM or mention), a
  ``block_actions`` click and a ``view_submission`` each become one
  :class:`~bot.kernel.model.Message` plus an :class:`Origin` that says
  where to answer (channel, ``trigger_id``, ``response_url``, the clicked
  message);
* outbound: :func:`plan` turns the desk's replies into :class:`Step` s (open
  a modal, post a visible card, update the clicked card, tell the user
  privately) with ready Block Kit JSON.

Every piece of text that reaches Slack's ``mrkdwn`` goes through
:func:`mrkdwn`: the marked user text is escaped with
``render(text, escape)`` and, as defence in depth, so is the bot's own text
(the bot never emits Slack markup on purpose), so nobody can ping
``<!channel>`` or forge a link through a case description.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ParamSpec, TypeVar

from bot.i18n import _
from bot.kernel.model import (
    ActionRef,
    Button,
    ButtonStyle,
    CardFact,
    CaseCard,
    Channel,
    FieldKind,
    Form,
    FormField,
    Message,
    Reply,
    SharedFile,
    read_stage,
)
from conversations.clicks import click_key, on_case_card
from conversations.text import END, START, plain, render

# Slack's documented limits (Block Kit reference).
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ACTIONS = 25
MAX_MODAL_TITLE = 24
MAX_OPTION_TEXT = 75
MAX_OPTIONS = 100
MAX_LABEL = 2000
MAX_PLACEHOLDER = 150
MAX_FALLBACK = 300

FORM_CALLBACK = "billing_form"  # callback_id of every form modal
NOTICE_CALLBACK = "billing_notice"
VALUE_ACTION = "value"  # action_id of the one element inside each input block
CLICK_PREFIX = "slack:click"
OPEN_FORM = "open_form"  # the button that opens a modal where no trigger_id came along
# Fields whose "required" depends on another answer (no credit when Microsoft denied a
# dispute): Slack enforces required inputs in the client, so the desk checks these.
CONDITIONAL_FIELDS = frozenset({"credited"})
# The assign form's person: a user picker, whose id goes back to the desk as a mention.
USER_FIELDS = frozenset({"user"})

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
_USER_MENTION = re.compile(r"<@([A-Za-z0-9]+)\|([^>]+)>")


# --------------------------------------------------------------------------- text
def escape(text: str) -> str:
    """Slack's three control characters as entities (``&``, ``<``, ``>``)."""
    return text.translate(_ESCAPES)


def mrkdwn(text: str) -> str:
    """Text for a ``mrkdwn`` object: user text escaped, and the bot's own text too."""
    # The marks are private-use characters, untouched by ``escape``: escape the parts
    # outside the marks, then let ``render`` escape the marked user text.
    pieces = re.split(f"({START}.*?{END})", text, flags=re.DOTALL)
    outside = "".join(p if p.startswith(START) else escape(p) for p in pieces)
    return render(outside, escape)


def plain_text(text: str, limit: int) -> str:
    """Text for a ``plain_text`` object (shown literally by Slack), cut to ``limit``."""
    return _cut(plain(text), limit)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def fit(text: str, limit: int) -> str:
    """Escaped ``mrkdwn`` of ``text`` cut to ``limit`` without splitting an entity."""
    out = mrkdwn(text)
    if len(out) <= limit:
        return out
    cut = out[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut.rstrip() + "…"


def _mrkdwn_obj(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _plain_obj(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": plain_text(text, limit) or " ", "emoji": True}


# ------------------------------------------------------------------------ origin
@dataclass(slots=True)
class Origin:
    """Where a request came from and how to answer it; stored in the request queue as a dict."""

    source: str  # command | event | action | view | notify
    user: str
    conversation: str
    channel: str | None = None
    team: str | None = None
    is_direct: bool = False
    trigger_id: str | None = None
    response_url: str | None = None
    message_ts: str | None = None  # the clicked message (to update it in place)
    is_ephemeral: bool = False
    card_case: str | None = None  # the case of the clicked card / of the form's case
    thread_ts: str | None = None  # a reply in a thread: the thread's parent (a card of ours?)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Origin:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# ----------------------------------------------------------------------- inbound
def _is_dm(channel_id: str | None, channel_name: str | None = None) -> bool:
    return bool(channel_id and channel_id.startswith("D")) or channel_name == "directmessage"


def _mentions(text: str) -> dict[str, str]:
    """``<@U123|maria>`` (slash commands with ``should_escape``) → ``{"maria": "U123"}``."""
    return {name: uid for uid, name in _USER_MENTION.findall(text or "")}


_SLACK_MARKUP = re.compile(r"<([^<>]*)>")


def _markup(match: re.Match[str]) -> str:
    inner = match.group(1)
    target, _sep, label = inner.partition("|")
    if target.startswith("@"):
        return match.group(0)  # a person: kept, so ``assign BILL-7 <@U…>`` knows who is meant
    if target.startswith("#"):
        return f"#{label}" if label else target
    if target.startswith("!"):
        special = target[1:].split("^", 1)[0]
        return label or f"@{special}"  # <!here> → "@here": plain text, it pings nobody
    if target.startswith("mailto:"):
        return label or target[len("mailto:") :]
    return target if not label or label == target else f"{label} ({target})"


def from_slack(text: str) -> str:
    """Typed text as Slack delivers it (``&amp;``, ``<https://…|…>``) → what the person typed.

    Slack escapes ``&``, ``<``, ``>`` in message and slash command text and
    wraps links, channels and special mentions in ``<…>``; the desk stores
    plain text, which :func:`mrkdwn` escapes again on the way out.
    """
    out = _SLACK_MARKUP.sub(_markup, text or "")
    return out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def strip_bot_mention(text: str, bot_user_id: str | None) -> str:
    """The text of an ``app_mention`` without the mention of the bot itself."""
    if not bot_user_id:
        return (text or "").strip()
    out = MENTION.sub(lambda m: "" if m.group(1) == bot_user_id else m.group(0), text or "")
    return " ".join(out.split(" ")).strip()


log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


def _tolerant(fn: Callable[P, R | None]) -> Callable[P, R | None]:
    """A payload with a field of an unexpected type is not one we understand: None, never raise.

    Signed by Slack or not, a payload that breaks the documented shapes must not
    make the listener answer 500 (Slack would retry it) or the request queue retry it.
    """

    @functools.wraps(fn)
    def tolerant(*args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return fn(*args, **kwargs)
        except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
            log.warning(
                "ignoring a Slack payload of an unexpected shape (%s: %s)", fn.__name__, exc
            )
            return None

    return tolerant


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _unquote(text: str) -> str:
    """``urllib.parse.unquote_plus(text, errors="replace")``, in C where it can.

    The stdlib walks the string escape by escape in Python; a click's ``payload``
    (the whole card as URL-encoded JSON) has a thousand of them, which made its
    parsing the largest cost of a click's ack. For ASCII text whose every ``%``
    starts a valid escape (all Slack sends), each ``%XX`` becomes ``\\xXX`` and
    the ``unicode_escape`` codec turns the lot into bytes in one call; anything
    else takes the stdlib's path. The result is the same either way.
    """
    if "+" in text:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    if not text.isascii() or _BAD_ESCAPE.search(text):
        return urllib.parse.unquote(text, errors="replace")
    escaped = text.replace("\\", "\\\\").replace("%", "\\x").encode("ascii")
    return escaped.decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def parse_form(body: str) -> Any:
    """A form-encoded Slack request body parsed as bolt's ``parse_body`` parses it.

    The fields of a slash command as a dict (each field's first value is its
    last: ``dict(parse_qsl(...))``), or the JSON of an interactivity request's
    ``payload`` field; a body that starts with ``{`` is JSON. Raises
    ``ValueError`` for JSON that is not.
    """
    if not body:
        return {}
    if body.startswith("{"):
        return json.loads(body)
    fields: dict[str, str] = {}
    for part in body.split("&"):
        if part:
            name, _sep, value = part.partition("=")
            fields[_unquote(name)] = _unquote(value)
    if "payload" not in body:
        return fields
    payload = fields.get("payload")
    return {} if payload is None else json.loads(payload)


def redact(body: dict[str, Any]) -> dict[str, Any]:
    """A payload without the deprecated verification token, safe to store in the request queue."""
    return {k: v for k, v in body.items() if k != "token"}


def command_to_message(body: dict[str, Any]) -> tuple[Message, Origin]:
    """A ``/billing`` slash command (form-encoded fields, already parsed)."""
    user = str(body.get("user_id", ""))
    channel = str(body.get("channel_id", ""))
    text = from_slack(str(body.get("text", "")))
    is_direct = _is_dm(channel, body.get("channel_name"))
    origin = Origin(
        source="command",
        user=user,
        conversation=channel,
        channel=channel,
        team=body.get("team_id"),
        is_direct=is_direct,
        trigger_id=body.get("trigger_id"),
        response_url=body.get("response_url"),
    )
    msg = Message(
        channel=Channel.SLACK,
        user=user,
        conversation=channel,
        text=text,
        user_name=str(body.get("user_name", "")),
        is_direct=is_direct,
        tenant=None,  # the payload's team_id is the workspace, not surely the user's: users.info
        mentions=_mentions(text),
        reference=_reference(origin),
    )
    return msg, origin


@_tolerant
def event_to_message(
    body: dict[str, Any], bot_user_id: str | None = None
) -> tuple[Message, Origin] | None:
    """A DM (``message.im``), a mention (``app_mention``), a reply in a channel's thread
    (``message.channels``/``.groups``, :func:`thread_reply`: the channel keeps only those in
    a case card's thread) or a file shared in one of those (``file_share``); None for
    anything to ignore.

    Ignored: other event types, edits/joins/any other message subtype (a thread reply
    also sent to the channel, ``thread_broadcast``, is a thread reply), messages from
    bots (the bot's own included), and DMs that carry no user.
    """
    if body.get("type") != "event_callback":
        return None
    event = body.get("event") or {}
    etype = event.get("type")
    subtype = event.get("subtype")
    if event.get("bot_id") or event.get("bot_profile"):
        return None
    in_thread = etype == "message" and thread_reply(event, bot_user_id or _bot_of(body))
    if subtype and subtype != "file_share" and not (in_thread and subtype == "thread_broadcast"):
        return None  # edits, joins, …; a thread reply also sent to the channel is one
    user = event.get("user")
    channel = event.get("channel")
    if not isinstance(user, str) or not isinstance(channel, str):
        return None  # no author (or not one Slack would send): nothing to answer
    if not user or not channel or (bot_user_id and user == bot_user_id):
        return None
    files = shared_files(event)
    if subtype == "file_share" and not files:
        return None  # nothing we could record (no link to any of the files)
    thread_ts = None
    addressed = True
    if etype == "message" and event.get("channel_type") == "im":
        text = from_slack(str(event.get("text", "")))
        is_direct = True
    elif in_thread:
        # A reply in a thread of a channel (``message.channels``/``.groups``): about the
        # thread's case when its parent is a card of ours (the channel looks it up).
        text = from_slack(str(event.get("text", "")))
        is_direct = False
        addressed = False
        thread_ts = str(event["thread_ts"])
    elif etype == "message" and subtype == "file_share" and event.get("thread_ts"):
        # A file shared in a thread with a mention of the bot (a case card's thread).
        text = from_slack(
            strip_bot_mention(str(event.get("text", "")), bot_user_id or _bot_of(body))
        )
        is_direct = _is_dm(channel)
    elif etype == "app_mention":
        text = from_slack(
            strip_bot_mention(str(event.get("text", "")), bot_user_id or _bot_of(body))
        )
        is_direct = _is_dm(channel)
    else:
        return None
    team = event.get("user_team") or event.get("team")  # the author's own workspace, if given
    origin = Origin(
        source="event",
        user=user,
        conversation=channel,
        channel=channel,
        team=team or body.get("team_id"),
        is_direct=is_direct,
        thread_ts=thread_ts,
    )
    msg = Message(
        channel=Channel.SLACK,
        user=user,
        conversation=channel,
        text=text,
        is_direct=is_direct,
        tenant=team,
        mentions=_mentions(text),
        reference=_reference(origin),
        addressed=addressed,
        files=files,
    )
    return msg, origin


def thread_reply(event: dict[str, Any], bot_user_id: str | None) -> bool:
    """A person's reply in a thread of a channel, not written to the bot.

    Slack sends it as a ``message`` event whose ``thread_ts`` (the parent's ``ts``) differs
    from its own ``ts``. One that mentions the bot also comes as ``app_mention``: that one
    is the command, this one is left out (else it would be handled twice).
    """
    thread_ts, ts = event.get("thread_ts"), event.get("ts")
    if event.get("channel_type") not in ("channel", "group"):
        return False
    if not isinstance(thread_ts, str) or not thread_ts or thread_ts == ts:
        return False
    text = str(event.get("text", ""))
    return not (bot_user_id and f"<@{bot_user_id}" in text)


def card_thread(origin: Origin) -> str | None:
    """The key a card's thread is stored by (``channel:ts`` of the card), or None."""
    if not origin.thread_ts or not origin.channel:
        return None
    return f"{origin.channel}:{origin.thread_ts}"


def shared_files(event: dict[str, Any]) -> list[SharedFile]:
    """The files of a ``file_share`` message (or a mention with files), as links.

    Each Slack file stays in Slack: it is recorded by its name, size, type and
    ``permalink`` (else ``url_private``), and named ``slack:<file id>`` so the same
    file shared twice on a case is attached once. A file without an id or a link
    (hidden by the workspace's plan, a tombstone) is left out.
    """
    out = []
    for f in event.get("files") or []:
        if not isinstance(f, dict):
            continue
        file_id, link = f.get("id"), f.get("permalink") or f.get("url_private")
        if not (isinstance(file_id, str) and file_id and isinstance(link, str) and link):
            continue
        if not link.startswith("https://"):
            continue
        name = f.get("name") or f.get("title") or file_id
        size = f.get("size")
        out.append(
            SharedFile(
                name=str(name)[:500],
                size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                content_type=str(f.get("mimetype") or f.get("filetype") or "")[:100],
                link=link[:2000],
                source_id=f"slack:{file_id[:64]}",
            )
        )
    return out[:10]


def _bot_of(body: dict[str, Any]) -> str | None:
    auths = body.get("authorizations") or []
    if auths and isinstance(auths, list) and auths[0].get("is_bot"):
        return str(auths[0].get("user_id") or "") or None
    return None


def handled_key(item_id: object) -> str:
    """The marker of a request the desk handled (its answer queued): not worked again."""
    return f"slack:handled:{item_id}"


@_tolerant
def event_dedupe_key(body: dict[str, Any]) -> str | None:
    """The Events API ``event_id``: a retry (``X-Slack-Retry-Num``) carries the same one."""
    event_id = body.get("event_id")
    return f"slack:event:{event_id}" if event_id else None


@_tolerant
def clicked_ref(body: dict[str, Any]) -> ActionRef | None:
    """The :class:`ActionRef` of the first clicked button of a ``block_actions`` payload."""
    actions = body.get("actions") or []
    if not actions:
        return None
    action = actions[0]
    value = action.get("value")
    if value is None and action.get("selected_option"):
        value = action["selected_option"].get("value")
    if not value:
        return None
    ref = ActionRef.from_value(str(value))
    return ref if ref.name else None


@_tolerant
def click_dedupe_key(body: dict[str, Any]) -> str | None:
    """A double click's key (:func:`conversations.clicks.click_key`); none for "Open form".

    A case card's button is keyed by (case, action, stage) alone; other buttons
    (a form's answer choices) by the message they sit on and the clicker too,
    so each of them counts once.
    """
    ref = clicked_ref(body)
    if ref is None or ref.name == OPEN_FORM:
        return None
    if on_case_card(ref):
        return click_key(CLICK_PREFIX, ref)  # one click wherever the card is shown
    container = body.get("container") or {}
    ts = container.get("message_ts") or (body.get("message") or {}).get("ts")
    user = (body.get("user") or {}).get("id")
    if not ts:
        return None
    return click_key(CLICK_PREFIX, ref, (str(ts), str(user)))


@_tolerant
def action_to_message(body: dict[str, Any]) -> tuple[Message, Origin] | None:
    """A ``block_actions`` click on one of our buttons."""
    if body.get("type") != "block_actions":
        return None
    ref = clicked_ref(body)
    if ref is None:
        return None
    user = body.get("user") or {}
    container = body.get("container") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
    channel_name = (body.get("channel") or {}).get("name")
    team = user.get("team_id")  # the clicker's own workspace
    is_direct = _is_dm(channel, channel_name)
    origin = Origin(
        source="action",
        user=str(user.get("id", "")),
        conversation=str(channel or user.get("id", "")),
        channel=channel,
        team=team,
        is_direct=is_direct,
        trigger_id=body.get("trigger_id"),
        response_url=body.get("response_url"),
        message_ts=container.get("message_ts") or (body.get("message") or {}).get("ts"),
        is_ephemeral=bool(container.get("is_ephemeral")),
        card_case=ref.case_id,
    )
    msg = Message(
        channel=Channel.SLACK,
        user=origin.user,
        conversation=origin.conversation,
        user_name=str(user.get("username") or user.get("name") or ""),
        action=ref,
        is_direct=is_direct,
        tenant=team,
        reference=_reference(origin),
    )
    return msg, origin


def view_values(view: dict[str, Any]) -> dict[str, str]:
    """A submitted modal's values by block id (one element per input block)."""
    out: dict[str, str] = {}
    for block_id, elements in ((view.get("state") or {}).get("values") or {}).items():
        for element in elements.values():
            kind = element.get("type")
            if kind == "static_select":
                option = element.get("selected_option") or {}
                value = option.get("value") or ""
            elif kind == "users_select":
                picked = element.get("selected_user")
                value = f"<@{picked}>" if picked else ""
            else:
                value = element.get("value") or ""
            out[block_id] = str(value)
    return out


@_tolerant
def view_to_message(body: dict[str, Any]) -> tuple[Message, Origin] | None:
    """A ``view_submission`` of one of our form modals: a whole-form submission."""
    view = body.get("view") or {}
    if body.get("type") != "view_submission" or view.get("callback_id") != FORM_CALLBACK:
        return None
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except json.JSONDecodeError:
        return None
    if not isinstance(meta, dict) or not meta.get("f"):
        return None
    user = body.get("user") or {}
    user_id = str(user.get("id", ""))
    team = user.get("team_id")  # the submitter's own workspace
    origin = Origin(
        source="view",
        user=user_id,
        conversation=str(meta.get("cv") or meta.get("ch") or user_id),
        channel=meta.get("ch"),
        team=team,
        is_direct=bool(meta.get("d")),
        response_url=meta.get("ru"),
        message_ts=meta.get("ts"),
        is_ephemeral=bool(meta.get("e")),
        card_case=meta.get("cc"),
    )
    ctx = meta.get("x") or {}
    msg = Message(
        channel=Channel.SLACK,
        user=user_id,
        conversation=origin.conversation,
        user_name=str(user.get("username") or user.get("name") or ""),
        form_id=str(meta["f"]),
        form_values=view_values(view),
        form_context={str(k): str(v) for k, v in ctx.items()},
        is_direct=origin.is_direct,
        tenant=team,
        reference=_reference(origin),
    )
    return msg, origin


def _reference(origin: Origin) -> dict[str, Any]:
    ref: dict[str, Any] = {"team": origin.team, "user": origin.user}
    if origin.channel:
        ref["channel_id"] = origin.channel
    return ref


def modal_metadata(form: Form, origin: Origin) -> str:
    """``private_metadata`` of a form modal: the form and where its result goes (≤3000)."""
    meta: dict[str, Any] = {
        "f": form.form_id,
        "x": form.context,
        "cv": origin.conversation,
        "ch": origin.channel,
        "d": origin.is_direct,
    }
    if origin.message_ts and origin.card_case and form.context.get("case") == origin.card_case:
        meta.update({"ts": origin.message_ts, "e": origin.is_ephemeral, "cc": origin.card_case})
    if origin.response_url:
        meta["ru"] = origin.response_url
    text = json.dumps(meta, separators=(",", ":"))
    if len(text) > 3000:  # never in practice; the form still works without the origin
        meta.pop("ru", None)
        text = json.dumps(meta, separators=(",", ":"))
    return text


# ---------------------------------------------------------------------- outbound
class _Ids:
    """Unique ``action_id`` s within one message (Slack rejects duplicates)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def take(self, name: str) -> str:
        base = name or "button"
        candidate, n = base, 1
        while candidate in self.seen:
            n += 1
            candidate = f"{base}-{n}"
        self.seen.add(candidate)
        return candidate


def button_element(button: Button, ids: _Ids) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": _plain_obj(button.label, MAX_BUTTON_TEXT),
        "action_id": ids.take(button.action.name),
        "value": button.action.to_value()[:MAX_BUTTON_VALUE],
    }
    if button.style != ButtonStyle.DEFAULT:
        element["style"] = button.style.value
    return element


def _actions_blocks(buttons: list[Button], ids: _Ids) -> list[dict[str, Any]]:
    blocks = []
    for start in range(0, len(buttons), MAX_ACTIONS):
        chunk = buttons[start : start + MAX_ACTIONS]
        blocks.append(
            {"type": "actions", "elements": [button_element(b, ids) for b in chunk]},
        )
    return blocks


def text_blocks(text: str) -> list[dict[str, Any]]:
    """Section blocks for a text, split on lines so no section passes Slack's limit."""
    blocks: list[dict[str, Any]] = []
    chunk: list[str] = []
    size = 0
    for line in text.split("\n"):
        line_len = len(mrkdwn(line)) + 1
        if chunk and size + line_len > MAX_SECTION_TEXT:
            blocks.append({"type": "section", "text": _mrkdwn_obj(fit("\n".join(chunk), 3000))})
            chunk, size = [], 0
        chunk.append(line)
        size += line_len
    if chunk and "".join(chunk).strip():
        blocks.append({"type": "section", "text": _mrkdwn_obj(fit("\n".join(chunk), 3000))})
    return blocks


def card_blocks(card: CaseCard, ids: _Ids | None = None) -> list[dict[str, Any]]:
    """A case card: title and state, short facts as fields, long ones as sections."""
    ids = ids or _Ids()
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": _mrkdwn_obj(fit(f"*{card.title}*", MAX_SECTION_TEXT)),
        }
    ]
    short: list[CardFact] = []
    long: list[CardFact] = []
    for fact in card.facts:
        value = plain(fact.value)
        (long if len(value) > 60 or "\n" in value else short).append(fact)
    for start in range(0, len(short), MAX_FIELDS):
        blocks.append(
            {
                "type": "section",
                "fields": [
                    _mrkdwn_obj(fit(f"*{f.label}*\n{f.value}", MAX_FIELD_TEXT))
                    for f in short[start : start + MAX_FIELDS]
                ],
            }
        )
    for fact in long:
        blocks.append(
            {
                "type": "section",
                "text": _mrkdwn_obj(fit(f"*{fact.label}*\n{fact.value}", MAX_SECTION_TEXT)),
            }
        )
    if card.history:
        blocks.append(
            {
                "type": "context",
                "elements": [_mrkdwn_obj(fit("\n".join(card.history), MAX_FIELD_TEXT))],
            }
        )
    blocks += _actions_blocks(card.buttons, ids)
    return blocks


def open_form_button(form: Form) -> Button:
    """The button that stands in for a modal where Slack gave no ``trigger_id``."""
    return Button(
        _("Open form"),
        ActionRef(
            OPEN_FORM,
            form.context.get("case") or None,
            read_stage(form.context),  # also the older "version" of a form stored before
            form.form_id,
        ),
        ButtonStyle.PRIMARY,
    )


def reply_blocks(reply: Reply, ids: _Ids) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.text:
        blocks += text_blocks(reply.text)
    if reply.card is not None:
        blocks += card_blocks(reply.card, ids)
    buttons = list(reply.buttons)
    if reply.form is not None:
        buttons.append(open_form_button(reply.form))
    blocks += _actions_blocks(buttons, ids)
    return blocks


def fallback_text(replies: list[Reply]) -> str:
    """The ``text`` of a message: shown in notifications, escaped like the blocks."""
    for r in replies:
        if r.text:
            return fit(r.text.split("\n", 1)[0], MAX_FALLBACK)
        if r.card is not None:
            return fit(r.card.title, MAX_FALLBACK)
    return " "


def message_payload(replies: list[Reply]) -> dict[str, Any]:
    """``text`` + ``blocks`` of one Slack message holding ``replies`` (at most 50 blocks)."""
    ids = _Ids()
    blocks: list[dict[str, Any]] = []
    for r in replies:
        blocks += reply_blocks(r, ids)
    if len(blocks) > MAX_BLOCKS:
        blocks = blocks[: MAX_BLOCKS - 1] + [
            {"type": "context", "elements": [_mrkdwn_obj("…")]},
        ]
    return {"text": fallback_text(replies), "blocks": blocks}


# ------------------------------------------------------------------------ modals
def _input_block(f: FormField) -> dict[str, Any]:
    element: dict[str, Any]
    value = plain(f.value) if f.value else None
    if f.kind == FieldKind.CHOICE and f.choices:
        options = [
            {"text": _plain_obj(c.label, MAX_OPTION_TEXT), "value": c.value[:150]}
            for c in f.choices[:MAX_OPTIONS]
        ]
        element = {"type": "static_select", "action_id": VALUE_ACTION, "options": options}
        chosen = next((o for o in options if o["value"] == value), None)
        if chosen is not None:
            element["initial_option"] = chosen
    elif f.name in USER_FIELDS:
        element = {"type": "users_select", "action_id": VALUE_ACTION}
        if value and (m := MENTION.fullmatch(value)):
            element["initial_user"] = m.group(1)
    else:
        element = {
            "type": "plain_text_input",
            "action_id": VALUE_ACTION,
            "multiline": f.kind == FieldKind.LONG_TEXT,
            "max_length": min(f.max_length, 3000),
        }
        if value:
            element["initial_value"] = value[: element["max_length"]]
        if f.hint:
            element["placeholder"] = _plain_obj(f.hint, MAX_PLACEHOLDER)
    block: dict[str, Any] = {
        "type": "input",
        "block_id": f.name,
        "label": _plain_obj(f.label, MAX_LABEL),
        "element": element,
        "optional": (not f.required) or f.name in CONDITIONAL_FIELDS,
    }
    if f.hint and element["type"] != "plain_text_input":
        block["hint"] = _plain_obj(f.hint, MAX_LABEL)
    return block


def modal_view(form: Form, metadata: str) -> dict[str, Any]:
    """A form as a modal: one input block per field, ``block_id`` = the field's name."""
    blocks: list[dict[str, Any]] = []
    if len(plain(form.title)) > MAX_MODAL_TITLE:
        blocks.append({"type": "section", "text": _mrkdwn_obj(fit(f"*{form.title}*", 3000))})
    if form.intro:
        blocks += text_blocks(form.intro)
    blocks += [_input_block(f) for f in form.fields]
    return {
        "type": "modal",
        "callback_id": FORM_CALLBACK,
        "title": _plain_obj(form.title, MAX_MODAL_TITLE),
        "submit": _plain_obj(form.submit_label, MAX_MODAL_TITLE),
        "close": _plain_obj(_("Cancel"), MAX_MODAL_TITLE),
        "private_metadata": metadata,
        "blocks": blocks[:MAX_BLOCKS],
    }


def form_errors(form: Form, view: dict[str, Any] | None = None) -> dict[str, str]:
    """``response_action: errors``: each message on its field's block (plain text).

    An error for a field the submitted view does not show goes on its first input.
    """
    blocks = (view or {}).get("blocks")
    present = [
        str(b.get("block_id"))
        for b in (blocks if isinstance(blocks, list) else [])
        if isinstance(b, dict) and b.get("type") == "input"
    ]
    out: dict[str, str] = {}
    for name, text in form.errors.items():
        target = name if not present or name in present else present[0]
        message = plain_text(text, MAX_LABEL)
        out[target] = f"{out[target]} {message}" if target in out else message
    return out


def notice_view(title: str, text: str) -> dict[str, Any]:
    """A modal that only says something (an error no single field shows), with a Back button."""
    return {
        "type": "modal",
        "callback_id": NOTICE_CALLBACK,
        "title": _plain_obj(title, MAX_MODAL_TITLE),
        "close": _plain_obj(_("Back"), MAX_MODAL_TITLE),
        "blocks": text_blocks(text) or [{"type": "section", "text": _mrkdwn_obj(" ")}],
    }


# -------------------------------------------------------------------------- plan
@dataclass(slots=True)
class Step:
    """One thing to do on Slack to show the desk's replies.

    ``op``: ``modal`` (views.open with the origin's trigger_id), ``post`` (a
    visible message in the channel), ``update`` (replace the clicked card),
    ``private`` (only for the user: ephemeral, or the DM itself).
    """

    op: str
    payload: dict[str, Any] = field(default_factory=dict)
    form: Form | None = None
    forms: list[Form] = field(default_factory=list)  # forms behind "Open form" buttons
    fallback: dict[str, Any] | None = None  # a modal step's message if the modal fails
    case_id: str | None = None  # a posted or updated case card: its thread adds to the case


def _updates_card(reply: Reply, origin: Origin) -> bool:
    if reply.card is None or not origin.message_ts:
        return False
    if reply.replace and origin.source == "action":
        return True
    # A form opened from a card's button: its result replaces that card.
    return origin.source == "view" and origin.card_case == reply.card.case_id


def plan(replies: list[Reply], origin: Origin, *, private_only: bool = False) -> list[Step]:
    """The steps that show ``replies`` natively on Slack, in order.

    * a form opens a modal when the request carried a ``trigger_id`` (once);
      otherwise it becomes its text prompt plus an "Open form" button;
    * a card that replaces the clicked one updates that message in place;
    * other cards are posted visibly in the channel, unless the answer is
      private, the conversation is a DM, or ``private_only`` (staff in a
      channel shared with a customer: internal details stay private);
    * everything else is for the sender only, merged into one message.
    """
    steps: list[Step] = []
    trigger = origin.trigger_id if origin.source in ("command", "action") else None
    modal_forms = [r.form for r in replies if r.form is not None][:1] if trigger else []
    intros = {f.intro for f in modal_forms if f.intro}
    private: list[Reply] = []
    for r in replies:
        if r.form is not None and modal_forms and r.form is modal_forms[0]:
            fallback = Reply(text=r.text, buttons=r.buttons, form=r.form, kind=r.kind)
            steps.append(
                Step("modal", form=r.form, fallback=message_payload([fallback]), forms=[r.form])
            )
            continue
        if intros and r.text in intros and r.card is None and r.form is None:
            continue  # the modal shows the intro
        if _updates_card(r, origin):
            assert r.card is not None
            if origin.is_ephemeral or not private_only or origin.is_direct:
                card_only = message_payload([Reply(card=r.card)])
                steps.append(Step("update", payload=card_only, case_id=r.card.case_id))
                if r.text:
                    private.append(Reply(text=r.text, kind=r.kind, private=True))
                continue
        if r.card is not None and not (r.private or private_only or origin.is_direct):
            steps.append(Step("post", payload=message_payload([r]), case_id=r.card.case_id))
            continue
        private.append(r)
    if private:
        steps.append(
            Step(
                "private",
                payload=message_payload(private),
                forms=[r.form for r in private if r.form is not None],
            )
        )
    return steps


def form_store_key(origin: Origin, form_id: str, case_id: str | None) -> str:
    """Where the adapter keeps a form behind an "Open form" button (conversation store)."""
    return f"slack-form|{origin.conversation}|{origin.user}|{form_id}|{case_id or ''}"


__all__ = [
    "FORM_CALLBACK",
    "OPEN_FORM",
    "Origin",
    "Step",
    "action_to_message",
    "card_blocks",
    "card_thread",
    "click_dedupe_key",
    "clicked_ref",
    "command_to_message",
    "escape",
    "event_dedupe_key",
    "event_to_message",
    "fit",
    "form_errors",
    "from_slack",
    "form_store_key",
    "message_payload",
    "modal_metadata",
    "modal_view",
    "mrkdwn",
    "notice_view",
    "plain_text",
    "plan",
    "redact",
    "strip_bot_mention",
    "thread_reply",
    "view_to_message",
    "view_values",
]


# ----------------------------------------------------------------------- the request queue
def request_route(item: dict[str, Any]) -> tuple[str, str]:
    """(destination, lane) of a queued Slack item: one Web API, a lane per Slack user.

    A user's requests and their answers are worked off in order on their lane;
    other users' lanes go on while one waits (see ``Runtime.drain_requests``).
    """
    kind = item.get("kind")
    raw_body = item.get("body")
    body: dict[str, Any] = raw_body if isinstance(raw_body, dict) else {}
    user: Any = None
    if kind == "deliver":
        origin = item.get("origin")
        user = origin.get("user") if isinstance(origin, dict) else None
    elif kind == "command":
        user = body.get("user_id")
    elif kind == "event":
        event = body.get("event")
        user = event.get("user") if isinstance(event, dict) else None
    elif kind == "action":
        who = body.get("user")
        user = who.get("id") if isinstance(who, dict) else None
    return "web-api", f"user:{user}" if isinstance(user, str) and user else f"item:{item.get('id')}"
