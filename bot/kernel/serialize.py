"""Replies and messages as plain JSON, for the local-chat endpoint, the web page and tests.

Readers also take what was written before the card's stage was renamed from
``version`` (mailbox items, Slack deliveries in the request queue and Slack's
stored forms on disk, a click from a chat client started before): see
:func:`bot.kernel.model.read_stage`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import asdict
from typing import Any

from bot.kernel.model import (
    ActionRef,
    Button,
    ButtonStyle,
    CardFact,
    CaseCard,
    Channel,
    Choice,
    FieldKind,
    Form,
    FormField,
    Message,
    Reply,
    SharedFile,
    read_stage,
)


def reply_to_dict(reply: Reply) -> dict[str, Any]:
    return asdict(reply)


def _button(d: dict[str, Any]) -> Button:
    return Button(
        d["label"], ActionRef.from_dict(d["action"]), ButtonStyle(d.get("style", "default"))
    )


def reply_from_dict(d: dict[str, Any]) -> Reply:
    form = None
    if d.get("form"):
        f = d["form"]
        form = Form(
            form_id=f["form_id"],
            title=f["title"],
            fields=[
                FormField(
                    name=x["name"],
                    label=x["label"],
                    kind=FieldKind(x["kind"]),
                    required=x["required"],
                    choices=tuple(Choice(**c) for c in x.get("choices", ())),
                    value=x.get("value"),
                    hint=x.get("hint"),
                    max_length=x.get("max_length", 3000),
                )
                for x in f["fields"]
            ],
            submit_label=f["submit_label"],
            intro=f.get("intro"),
            errors=dict(f.get("errors", {})),
            context=dict(f.get("context", {})),
        )
    card = None
    if d.get("card"):
        c = d["card"]
        card = CaseCard(
            case_id=c["case_id"],
            title=c["title"],
            state=c["state"],
            state_label=c["state_label"],
            facts=[CardFact(**x) for x in c["facts"]],
            history=list(c["history"]),
            buttons=[_button(b) for b in c["buttons"]],
            stage=read_stage(c) or 0,  # "version" in mailbox items written before the rename
        )
    return Reply(
        text=d.get("text", ""),
        buttons=[_button(b) for b in d.get("buttons", [])],
        form=form,
        card=card,
        replace=bool(d.get("replace")),
        private=bool(d.get("private")),
        kind=d.get("kind", "info"),
    )


MAX_FILES = 5
MAX_FILE_BYTES = 64 * 2**20  # the most any config allows (attachments.max_bytes)


def _files(value: Any) -> list[SharedFile]:
    """``files``: ``[{name, data (base64), for_customer?}]``, at most :data:`MAX_FILES`."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_FILES:
        raise ValueError(f"files must be a list of at most {MAX_FILES} objects")
    out = []
    for f in value:
        if not isinstance(f, dict):
            raise ValueError("a file must be an object with a name and its data in base64")
        name, data = f.get("name"), f.get("data")
        if not isinstance(name, str) or not name.strip() or len(name) > 1000:
            raise ValueError("a file needs a name")
        if not isinstance(data, str) or len(data) > (MAX_FILE_BYTES // 3 + 1) * 4:
            raise ValueError("a file's data must be base64 text, 64 MiB at most")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a file's data is not valid base64") from None
        out.append(SharedFile(name=name, data=raw, for_customer=f.get("for_customer") is True))
    return out


def message_from_dict(d: dict[str, Any], channel: Channel) -> Message:
    """A local/web message from JSON; unknown or mistyped fields raise ValueError."""
    if not isinstance(d, dict):
        raise ValueError("the body must be a JSON object")
    user = d.get("user")
    if not isinstance(user, str) or not user.strip() or len(user) > 64:
        raise ValueError("user must be a non-empty string of at most 64 characters")
    text = d.get("text", "")
    if not isinstance(text, str):
        raise ValueError("text must be a string")
    action = None
    if d.get("action") is not None:
        a = d["action"]
        if not isinstance(a, dict):
            raise ValueError("action must be an object with a name")
        action = ActionRef.from_dict(a)  # back-compat: also "version", as clients sent it before
    form_values = d.get("form_values")
    if form_values is not None and (
        not isinstance(form_values, dict)
        or not all(isinstance(v, str) for v in form_values.values())
    ):
        raise ValueError("form_values must be an object of strings")
    ctx = d.get("form_context") or {}
    if not isinstance(ctx, dict):
        raise ValueError("form_context must be an object")
    return Message(
        channel=channel,
        user=user.strip(),
        conversation=str(d.get("conversation") or user.strip()),
        text=text,
        user_name=user.strip(),
        action=action,
        form_id=d.get("form_id") if isinstance(d.get("form_id"), str) else None,
        form_values=form_values,
        form_context={str(k): str(v) for k, v in ctx.items()},
        locale=d.get("locale") if isinstance(d.get("locale"), str) else None,
        files=_files(d.get("files")),
    )
