"""Neutral replies → Adaptive Cards (schema ≤ 1.4) and escaped Teams text."""

from __future__ import annotations

import json
from typing import Any

from adapters.teams import render
from bot.kernel.model import (
    ActionRef,
    Button,
    ButtonStyle,
    CardFact,
    CaseCard,
    Choice,
    FieldKind,
    Form,
    FormField,
    Reply,
)
from conversations.text import u

ALLOWED = {
    "AdaptiveCard",
    "TextBlock",
    "FactSet",
    "Container",
    "Input.Text",
    "Input.ChoiceSet",
    "Action.Submit",
}


def _types(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("type"), str):
            found.add(node["type"])
        for value in node.values():
            found |= _types(value)
    elif isinstance(node, list):
        for value in node:
            found |= _types(value)
    return found


def _card() -> CaseCard:
    return CaseCard(
        case_id="BILL-7",
        title=f"BILL-7 · Question · {u('Contoso [click](http://evil.example)')}",
        state="open",
        state_label="Open",
        facts=[CardFact("Description", u("**urgent** <at>all</at> {{DATE(2017-02-14)}}"))],
        history=["2026-11-24 09:00 UTC · Alice created"],
        buttons=[
            Button("Take", ActionRef("take", "BILL-7", 1), ButtonStyle.PRIMARY),
            Button("Cancel case", ActionRef("cancel", "BILL-7", 1), ButtonStyle.DANGER),
        ],
        stage=1,
    )


def test_case_card_is_adaptive_1_4_with_submit_buttons() -> None:
    activity = render.render_reply(Reply(text="Here it is.", card=_card()))
    (att,) = activity["attachments"]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = att["content"]
    assert card["version"] == "1.4"
    assert _types(card) <= ALLOWED
    take, cancel = card["actions"]
    assert take == {
        "type": "Action.Submit",
        "title": "Take",
        "data": {"action": "take", "case_id": "BILL-7", "stage": 1, "value": None},
        "style": "positive",
    }
    assert cancel["style"] == "destructive"
    assert activity["text"] == "Here it is."


def test_typed_text_cannot_format_link_or_run_functions() -> None:
    card = render.case_card(_card())
    dumped = json.dumps(card)
    assert "[click](http" not in dumped
    assert "\\\\[click\\\\]\\\\(http" in dumped  # backslash-escaped in the JSON
    assert "**urgent**" not in dumped
    assert "{{DATE" not in dumped
    text = render.message_text(f"Note: {u('<at>everyone</at> & [x](http://evil)')}")
    assert "<at>" not in text
    assert "&lt;at&gt;everyone&lt;/at&gt; &amp; \\[x\\]\\(http://evil\\)" in text


def test_form_card_has_inputs_errors_and_submit_data() -> None:
    form = Form(
        form_id="dispute",
        title="New billing dispute",
        fields=[
            FormField("customer", "Customer", hint="The customer's company name", value="Contoso"),
            FormField("amount", "Disputed amount", FieldKind.AMOUNT, value="12,50"),
            FormField("category", "Category", FieldKind.CHOICE, choices=(Choice("tax", "Tax"),)),
            FormField("reason", "Reason", FieldKind.LONG_TEXT, required=False),
        ],
        submit_label="Submit",
        errors={"amount": "Use a dot for decimals: 12.50"},
        context={"case": "BILL-7", "stage": "2"},
    )
    activity = render.render_reply(Reply(text="Please fix the form:", form=form, kind="error"))
    card = activity["attachments"][0]["content"]
    assert _types(card) <= ALLOWED
    inputs = {b["id"]: b for b in card["body"] if b["type"].startswith("Input.")}
    assert set(inputs) == {"f_customer", "f_amount", "f_category", "f_reason"}
    assert inputs["f_amount"]["value"] == "12,50"
    assert inputs["f_reason"]["isMultiline"] is True
    assert inputs["f_category"]["choices"] == [{"title": "Tax", "value": "tax"}]
    assert not any("isRequired" in b for b in inputs.values())  # validated on the server
    index = card["body"].index(inputs["f_amount"])
    error = card["body"][index + 1]
    assert error["text"] == "Use a dot for decimals: 12.50" and error["color"] == "Attention"
    (submit,) = card["actions"]
    assert submit["data"] == {
        "billing_form": "dispute",
        "billing_context": {"case": "BILL-7", "stage": "2"},
    }


def test_click_result_replaces_the_card_and_posts_the_rest() -> None:
    replies = [
        Reply(text="Already done: BILL-7 changed.", kind="stale", private=True),
        Reply(card=_card(), replace=True),
    ]
    out = render.render_replies(replies, from_card=True)
    assert [o.replace for o in out] == [False, True]
    assert [o.replace for o in render.render_replies(replies, from_card=False)] == [False, False]


def test_form_success_turns_the_form_card_into_the_case_card() -> None:
    replies = [Reply(text="New customer Contoso created."), Reply(text="Thanks!", card=_card())]
    out = render.render_replies(replies, from_card=True, form_submitted=True)
    assert [o.replace for o in out] == [False, True]


def test_buttons_without_a_card_become_a_small_card() -> None:
    reply = Reply(
        text="Create it?",
        buttons=[Button("Yes", ActionRef("answer", value="yes"))],
    )
    activity = render.render_reply(reply)
    card = activity["attachments"][0]["content"]
    assert card["body"][0]["text"] == "Create it?"
    assert card["actions"][0]["data"] == {
        "action": "answer",
        "case_id": None,
        "stage": None,
        "value": "yes",
    }


def test_form_intro_is_not_sent_twice() -> None:
    form = Form("escalate", "Escalate BILL-7", [FormField("request_id", "Number")], "Submit")
    form.intro = "File it by hand"
    out = render.render_replies(
        [Reply(text="File it by hand"), Reply(text="step 1", form=form)], from_card=False
    )
    assert len(out) == 1
    assert "File it by hand" in json.dumps(out[0].activity)
