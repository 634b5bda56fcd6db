"""Neutral replies → Teams activities with Adaptive Cards (schema 1.4): pure functions.

* a text reply is a message with ``textFormat: markdown``; what people typed
  is escaped (HTML and markdown) so a case description cannot format the
  message, forge a link or a mention;
* a case card is an Adaptive Card: title, state, a FactSet, the latest
  history and one ``Action.Submit`` per button with data
  ``{action, case_id, stage, value}``;
* a form is an Adaptive Card with inputs (``f_<field>``) and a submit button
  whose data names the form and its context; errors from the server-side
  validation are shown under their field;
* buttons without a card become a small card of their own.

Inside cards, typed text is escaped for the Adaptive Card markdown subset
(CommonMark backslash escapes) and ``{{`` is broken up so no ``{{DATE()}}``
function runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from adapters.teams.translate import CONTEXT_KEY, FORM_KEY, INPUT_PREFIX
from bot.i18n import _
from bot.kernel.model import STAGE, Button, ButtonStyle, CaseCard, FieldKind, Form, Reply
from conversations.text import render

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"

_MD_ALWAYS = re.compile(r"([\\`*_\[\]()~|#])")
_LINE_START = re.compile(r"^(\s*)([-+>]|\d+[.)])", re.MULTILINE)

Card = dict[str, Any]


@dataclass(slots=True)
class Outgoing:
    """One activity to send; ``replace`` = update the card the user clicked or submitted."""

    activity: dict[str, Any]
    replace: bool = False
    case_id: str | None = None  # a case card: a reply to it adds to the case


# ---------------------------------------------------------------- escaping
def escape_markdown(text: str) -> str:
    """Neutralise the markdown subset of Adaptive Cards and Teams messages in typed text."""
    out = _MD_ALWAYS.sub(r"\\\1", text)
    out = _LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), out)
    return out.replace("{{", "{\u200b{")


def escape_message(text: str) -> str:
    """Typed text inside a Teams message: HTML first (``<at>``, ``<a>``), then markdown."""
    safe = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escape_markdown(safe)


def message_text(text: str) -> str:
    """A reply text as Teams message markdown: typed parts escaped, line breaks kept."""
    return render(text, escape_message).replace("\n", "<br>")


def card_text(text: str) -> str:
    return render(text, escape_markdown)


# ---------------------------------------------------------------- cards
def adaptive_card(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None) -> Card:
    card: Card = {
        "type": "AdaptiveCard",
        "$schema": CARD_SCHEMA,
        "version": CARD_VERSION,  # the Adaptive Card schema's version
        "body": body,
        "msteams": {"width": "Full"},
    }
    if actions:
        card["actions"] = actions
    return card


def attachment(card: Card) -> dict[str, Any]:
    return {"contentType": CARD_CONTENT_TYPE, "content": card}


def text_blocks(text: str, **style: Any) -> list[dict[str, Any]]:
    """One TextBlock per line (newlines inside a TextBlock render differently per client)."""
    blocks = []
    for i, line in enumerate(card_text(text).split("\n")):
        block: dict[str, Any] = {"type": "TextBlock", "text": line or " ", "wrap": True, **style}
        if i:
            block["spacing"] = "None"
        blocks.append(block)
    return blocks


def submit_action(button: Button) -> dict[str, Any]:
    action = button.action
    out: dict[str, Any] = {
        "type": "Action.Submit",
        "title": render(button.label, lambda s: s),
        "data": {
            "action": action.name,
            "case_id": action.case_id,
            STAGE: action.stage,
            "value": action.value,
        },
    }
    if button.style == ButtonStyle.PRIMARY:
        out["style"] = "positive"
    elif button.style == ButtonStyle.DANGER:
        out["style"] = "destructive"
    return out


_STATE_COLORS = {
    "open": "accent",
    "in_progress": "accent",
    "escalated": "warning",
    "resolved": "good",
    "customer_informed": "good",
    "closed": "default",
    "cancelled": "default",
    "reopened": "warning",
}


def case_card(card: CaseCard, extra: list[Button] | None = None) -> Card:
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": card_text(card.title),
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        },
        {
            "type": "TextBlock",
            "text": card_text(card.state_label),
            "color": _STATE_COLORS.get(card.state, "default"),
            "weight": "Bolder",
            "spacing": "None",
            "wrap": True,
        },
        {
            "type": "FactSet",
            "facts": [
                {"title": card_text(f.label), "value": card_text(f.value)} for f in card.facts
            ],
        },
    ]
    if card.history:
        body.append(
            {
                "type": "Container",
                "separator": True,
                "items": [
                    block
                    for line in card.history
                    for block in text_blocks(line, isSubtle=True, size="Small")
                ],
            }
        )
    actions = [submit_action(b) for b in [*card.buttons, *(extra or [])]]
    return adaptive_card(body, actions)


def _input(field_name: str) -> str:
    return f"{INPUT_PREFIX}{field_name}"


def form_card(form: Form) -> Card:
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": card_text(form.title), "weight": "Bolder", "size": "Medium"}
    ]
    if form.intro:
        body += text_blocks(form.intro)
    if form.errors:
        body.append(
            {
                "type": "TextBlock",
                "text": card_text(_("Please fix the form:")),
                "color": "Attention",
                "weight": "Bolder",
                "wrap": True,
            }
        )
    for f in form.fields:
        label = card_text(f.label) + ("" if f.required else " " + _("(optional)"))
        element: dict[str, Any]
        if f.kind == FieldKind.CHOICE:
            element = {
                "type": "Input.ChoiceSet",
                "id": _input(f.name),
                "label": label,
                "style": "compact",
                "choices": [{"title": c.label, "value": c.value} for c in f.choices],
            }
        else:
            element = {
                "type": "Input.Text",
                "id": _input(f.name),
                "label": label,
                "maxLength": f.max_length,
            }
            if f.kind == FieldKind.LONG_TEXT:
                element["isMultiline"] = True
            if f.hint:
                element["placeholder"] = render(f.hint, lambda s: s)
        if f.value:
            element["value"] = render(f.value, lambda s: s)
        body.append(element)
        error = form.errors.get(f.name)
        if error:
            body.append(
                {
                    "type": "TextBlock",
                    "text": card_text(error),
                    "color": "Attention",
                    "size": "Small",
                    "spacing": "None",
                    "wrap": True,
                }
            )
    submit = {
        "type": "Action.Submit",
        "title": render(form.submit_label, lambda s: s),
        "style": "positive",
        "data": {FORM_KEY: form.form_id, CONTEXT_KEY: dict(form.context)},
    }
    return adaptive_card(body, [submit])


def buttons_card(text: str, buttons: list[Button]) -> Card:
    return adaptive_card(text_blocks(text) if text else [], [submit_action(b) for b in buttons])


# ---------------------------------------------------------------- replies
def message(text: str = "", card: Card | None = None) -> dict[str, Any]:
    activity: dict[str, Any] = {"type": "message"}
    if text:
        activity["text"] = message_text(text)
        activity["textFormat"] = "markdown"
    if card is not None:
        activity["attachments"] = [attachment(card)]
    return activity


def render_reply(reply: Reply) -> dict[str, Any]:
    """One reply as one message activity."""
    if reply.form is not None:
        # The card carries every field; the step-by-step prompt text is left out.
        text = reply.text if reply.kind == "error" and reply.form.errors else ""
        return message(text, form_card(reply.form))
    if reply.card is not None:
        return message(reply.text, case_card(reply.card, reply.buttons))
    if reply.buttons:
        return message("", buttons_card(reply.text, reply.buttons))
    return message(reply.text)


def render_replies(
    replies: list[Reply], *, from_card: bool, form_submitted: bool = False
) -> list[Outgoing]:
    """The activities for a result; at most one of them updates the clicked/submitted card.

    ``from_card`` says the message was a click or a form submission, so there
    is a card to update: the reply marked ``replace`` goes there, and a form
    returned with errors replaces the submitted form. After a successful
    submission (``form_submitted``) the form card becomes the first case card.
    """
    out: list[Outgoing] = []
    firsts: list[tuple[Outgoing, Reply]] = []
    intros = {r.form.intro for r in replies if r.form is not None and r.form.intro}
    for reply in replies:
        if reply.text in intros and reply.form is None and not reply.card and not reply.buttons:
            continue  # the form card shows its intro itself
        item = Outgoing(render_reply(reply), case_id=reply.card.case_id if reply.card else None)
        out.append(item)
        firsts.append((item, reply))
    if not from_card:
        return out
    for item, reply in firsts:
        if reply.replace or (reply.form is not None and reply.form.errors):
            item.replace = True
            return out
    if form_submitted:
        for item, reply in firsts:
            if reply.card is not None:
                item.replace = True
                return out
    return out


__all__ = [
    "Outgoing",
    "case_card",
    "escape_markdown",
    "escape_message",
    "form_card",
    "message_text",
    "render_replies",
    "render_reply",
]
