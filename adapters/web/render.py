"""Neutral replies → HTML pieces: pure functions the templates call.

Everything is escaped: what people typed (marked by :func:`conversations.text.u`)
is only escaped; the bot's own text is escaped too, then `code` spans and the
bot's https links become markup. Typed text is never linkified, so a customer
cannot plant a link or markup in a case description.
"""

from __future__ import annotations

import html
import re
import secrets
from typing import Any

from markupsafe import Markup

from bot.kernel.model import ActionRef, Button, FieldKind, Form, FormField, Reply
from conversations.text import END, START, plain

_SEGMENT = re.compile(f"({START}.*?{END})", re.DOTALL)
_CODE = re.compile(r"`([^`\n]+)`")
_URL = re.compile(r"https://[^\s<>\"'`]+[^\s<>\"'`.,;:!?)]")


def _bot_html(text: str) -> str:
    out = html.escape(text, quote=True)
    out = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", out)
    return _URL.sub(
        lambda m: f'<a href="{m.group(0)}" rel="noopener noreferrer">{m.group(0)}</a>', out
    )


def rich(text: str | None) -> Markup:
    """A reply text as HTML: typed parts escaped only, the bot's parts lightly formatted."""
    out: list[str] = []
    for part in _SEGMENT.split(text or ""):
        if part.startswith(START) and part.endswith(END):
            out.append(html.escape(plain(part), quote=True))
        else:
            out.append(_bot_html(plain(part)))
    return Markup("".join(out))  # every piece above was escaped


def first_line(text: str | None) -> str:
    return plain(text or "").split("\n", 1)[0]


def action_value(action: ActionRef) -> str:
    """What a button posts: the compact ``name|case|stage|value`` form."""
    return action.to_value()


def button_class(button: Button) -> str:
    return f"btn btn-{button.style.value}"


def input_kind(field: FormField) -> str:
    """Which control a field becomes in a template."""
    if field.kind == FieldKind.CHOICE:
        return "select"
    if field.kind == FieldKind.LONG_TEXT:
        return "textarea"
    return "input"


def input_mode(field: FormField) -> str:
    return "decimal" if field.kind == FieldKind.AMOUNT else "text"


def field_value(field: FormField) -> str:
    return plain(field.value or "")


def new_id() -> str:
    """A unique id prefix for one rendered form's labels and inputs."""
    return "f" + secrets.token_hex(4)


def show_text(reply: Reply) -> bool:
    """Text channels get a step-by-step prompt with the form; the page shows the form instead."""
    return bool(reply.text) and reply.form is None


def form_error_summary(form: Form, reply: Reply) -> str:
    return first_line(reply.text) if form.errors else ""


def has_buttons(reply: Reply) -> bool:
    return bool(reply.buttons) and reply.form is None


def template_globals() -> dict[str, Any]:
    return {
        "action_value": action_value,
        "button_class": button_class,
        "input_kind": input_kind,
        "input_mode": input_mode,
        "field_value": field_value,
        "new_id": new_id,
        "show_text": show_text,
        "form_error_summary": form_error_summary,
        "has_buttons": has_buttons,
        "plain": plain,
    }


def template_filters() -> dict[str, Any]:
    return {"rich": rich, "plain": plain}
