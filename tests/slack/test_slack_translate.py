"""The pure translator, table-driven from Slack's documented payloads (``fixtures/*.json``)."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.slack import translate as t
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
    Reply,
)
from conversations.text import u
from tests.slack.slackfake import load

# ---- inbound: payload → Message + Origin -------------------------------------------------

INBOUND: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    (
        "slash command",
        "slash_command",
        {
            "user": "U2147483697",
            "conversation": "C2147483705",
            "text": "status BILL-7",
            "tenant": None,  # a command's team_id is the workspace: users.info tells the user's
            "is_direct": False,
        },
        {
            "source": "command",
            "channel": "C2147483705",
            "trigger_id": "13345224609.738474920.8088930838d88f008e0",
            "response_url": "https://hooks.slack.com/commands/1234/5678",
        },
    ),
    (
        "DM (message.im)",
        "event_message_im",
        {
            "user": "U2147483697",
            "conversation": "D024BE91L",
            "text": "Hello hello can you hear me?",
            "tenant": None,
            "is_direct": True,
        },
        {"source": "event", "channel": "D024BE91L", "trigger_id": None, "response_url": None},
    ),
    (
        "app_mention (the bot's mention removed)",
        "event_app_mention",
        {
            "user": "U061F7AUR",
            "conversation": "C123ABC456",
            "text": "is it everything a river should be?",
            "is_direct": False,
        },
        {"source": "event", "channel": "C123ABC456", "trigger_id": None},
    ),
    (
        "block_actions click",
        "block_actions",
        {"user": "U123456", "conversation": "C123456", "text": "", "tenant": "T123456"},
        {
            "source": "action",
            "channel": "C123456",
            "message_ts": "1548261231.000200",
            "is_ephemeral": False,
            "card_case": "BILL-7",
            "trigger_id": "12321423423.333649436676.d8c1bb837935619ccad0f624c448ffb3",
        },
    ),
    (
        "view_submission",
        "view_submission",
        {
            "user": "U123456",
            "conversation": "C123456",
            "form_id": "dispute",
            "form_values": {
                "invoice": "G012345678",
                "amount": "12,50",
                "currency": "EUR",
                "reason": "Charged twice",
            },
        },
        {
            "source": "view",
            "channel": "C123456",
            "response_url": "https://hooks.slack.com/commands/1234/5678",
        },
    ),
]


def _parse(fixture: str) -> Any:
    body = load(fixture)
    if fixture == "slash_command":
        return t.command_to_message(body)
    if fixture.startswith("event_"):
        return t.event_to_message(body)
    if fixture == "block_actions":
        return t.action_to_message(body)
    return t.view_to_message(body)


@pytest.mark.parametrize(
    ("why", "fixture", "message", "origin"), INBOUND, ids=[i[0] for i in INBOUND]
)
def test_inbound(why: str, fixture: str, message: dict[str, Any], origin: dict[str, Any]) -> None:
    parsed = _parse(fixture)
    assert parsed is not None, why
    msg, org = parsed
    assert msg.channel == Channel.SLACK
    for key, value in message.items():
        assert getattr(msg, key) == value, key
    for key, value in origin.items():
        assert getattr(org, key) == value, key
    assert json.loads(json.dumps(org.to_dict())) == org.to_dict()  # storable in the inbox
    assert t.Origin.from_dict(org.to_dict()) == org


def test_a_click_carries_the_action_ref() -> None:
    msg, _origin = t.action_to_message(load("block_actions")) or (None, None)
    assert msg is not None
    assert msg.action == ActionRef("take", "BILL-7", 1)


@pytest.mark.parametrize(
    "fixture", ["event_bot_message", "event_message_changed", "url_verification"]
)
def test_events_to_ignore(fixture: str) -> None:
    assert t.event_to_message(load(fixture)) is None


def test_own_messages_are_ignored_even_without_bot_id() -> None:
    body = load("event_message_im")
    body["event"]["user"] = "U0LAN0Z89"
    assert t.event_to_message(body, bot_user_id="U0LAN0Z89") is None


def test_channel_messages_that_are_not_mentions_are_ignored() -> None:
    body = load("event_message_im")
    body["event"]["channel_type"] = "channel"
    assert t.event_to_message(body) is None


def test_slash_command_mentions_are_kept_as_ids() -> None:
    body = load("slash_command")
    body["text"] = "assign BILL-7 <@U024BE7LH|maria>"
    msg, _origin = t.command_to_message(body)
    assert msg.text == "assign BILL-7 <@U024BE7LH|maria>"
    assert msg.mentions == {"maria": "U024BE7LH"}


def test_redact_drops_the_verification_token() -> None:
    assert "token" not in t.redact(load("slash_command"))


DEDUPE = [
    ("event_message_im", "slack:event:Ev123ABC456"),
    ("block_actions", "slack:click:BILL-7:take:1"),
]


@pytest.mark.parametrize(("fixture", "key"), DEDUPE)
def test_dedupe_keys(fixture: str, key: str) -> None:
    body = load(fixture)
    got = t.event_dedupe_key(body) if fixture.startswith("event") else t.click_dedupe_key(body)
    assert got == key


def test_open_form_clicks_are_never_deduplicated() -> None:
    body = load("block_actions")
    body["actions"][0]["value"] = "open_form|||ask"
    assert t.click_dedupe_key(body) is None


def test_view_values_of_each_element_kind() -> None:
    view = {
        "state": {
            "values": {
                "category": {
                    "value": {"type": "static_select", "selected_option": {"value": "tax"}}
                },
                "user": {"value": {"type": "users_select", "selected_user": "U0123"}},
                "text": {"value": {"type": "plain_text_input", "value": None}},
                "outcome": {"value": {"type": "static_select", "selected_option": None}},
            }
        }
    }
    assert t.view_values(view) == {"category": "tax", "user": "<@U0123>", "text": "", "outcome": ""}


def test_foreign_views_and_bad_metadata_are_ignored() -> None:
    body = load("view_submission")
    body["view"]["callback_id"] = "somebody_else"
    assert t.view_to_message(body) is None
    body = load("view_submission")
    body["view"]["private_metadata"] = "not json"
    assert t.view_to_message(body) is None


# ---- escaping ----------------------------------------------------------------------------

ESCAPES = [
    ("plain", "Hello", "Hello"),
    (
        "user text",
        "Desc: " + u("<!channel> & <https://x|y>"),
        "Desc: &lt;!channel&gt; &amp; &lt;https://x|y&gt;",
    ),
    ("bot text too", "a < b & c > d", "a &lt; b &amp; c &gt; d"),
    ("marks never leak", u("x") + " " + u("<@U1>"), "x &lt;@U1&gt;"),
    ("no double escaping", u("&amp;"), "&amp;amp;"),
]


@pytest.mark.parametrize(("why", "text", "expected"), ESCAPES, ids=[e[0] for e in ESCAPES])
def test_mrkdwn_escapes(why: str, text: str, expected: str) -> None:
    assert t.mrkdwn(text) == expected


FROM_SLACK = [
    ("entities", "A &amp; B &lt;3 &gt; 2", "A & B <3 > 2"),
    ("typed entity stays typed", "&amp;lt;", "&lt;"),
    ("link", "see <https://x.example/a?b=1&amp;c=2>", "see https://x.example/a?b=1&c=2"),
    ("labelled link", "<https://x.example|the docs>", "the docs (https://x.example)"),
    ("channel", "in <#C024BE7LR|general>", "in #general"),
    ("special mention", "<!here> and <!channel>", "@here and @channel"),
    ("subteam", "<!subteam^S123|@billing>", "@billing"),
    ("mail", "<mailto:ana@example.com|ana@example.com>", "ana@example.com"),
    (
        "person kept for assign",
        "assign BILL-7 <@U024BE7LH|maria>",
        "assign BILL-7 <@U024BE7LH|maria>",
    ),
]


@pytest.mark.parametrize(("why", "raw", "typed"), FROM_SLACK, ids=[f[0] for f in FROM_SLACK])
def test_from_slack(why: str, raw: str, typed: str) -> None:
    assert t.from_slack(raw) == typed


def test_typed_text_round_trips_escaped_once() -> None:
    body = load("event_message_im")
    body["event"]["text"] = "note BILL-7 A &amp; B &lt;!channel&gt; <!here>"
    msg, _origin = t.event_to_message(body) or (None, None)
    assert msg is not None and msg.text == "note BILL-7 A & B <!channel> @here"
    assert t.mrkdwn(u(msg.text)) == "note BILL-7 A &amp; B &lt;!channel&gt; @here"


def test_fit_never_cuts_an_entity_in_half() -> None:
    out = t.fit(u("a" * 8 + "&" * 10), 20)
    assert len(out) <= 20 and out.endswith("…")
    assert out.count("&") == out.count("&amp;")


# ---- outbound: replies → Block Kit -------------------------------------------------------


def card(buttons: list[Button] | None = None, description: str = "Why?") -> CaseCard:
    return CaseCard(
        case_id="BILL-7",
        title="BILL-7 · Question · " + u("Contoso <b>"),
        state="open",
        state_label="open",
        facts=[
            CardFact("State", "open"),
            CardFact("Owner", u("Ana")),
            CardFact("Description", u(description)),
        ],
        history=["2026-11-24 10:00 UTC · " + u("Ana") + " created"],
        buttons=buttons
        if buttons is not None
        else [
            Button("Take", ActionRef("take", "BILL-7", 1), ButtonStyle.PRIMARY),
            Button("Cancel case", ActionRef("cancel", "BILL-7", 1), ButtonStyle.DANGER),
            Button("Note", ActionRef("note", "BILL-7", 1)),
        ],
        stage=1,
    )


def test_card_blocks() -> None:
    blocks = t.card_blocks(card(description="x" * 80))
    assert blocks[0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "*BILL-7 · Question · Contoso &lt;b&gt;*"},
    }
    assert blocks[1]["fields"][1]["text"] == "*Owner*\nAna"
    assert blocks[2]["text"]["text"].startswith("*Description*\nxxx")  # long: its own section
    assert blocks[3]["type"] == "context"
    actions = blocks[4]
    assert [e["action_id"] for e in actions["elements"]] == ["take", "cancel", "note"]
    assert [e["value"] for e in actions["elements"]] == [
        "take|BILL-7|1",
        "cancel|BILL-7|1",
        "note|BILL-7|1",
    ]
    assert [e.get("style") for e in actions["elements"]] == ["primary", "danger", None]


def test_action_ids_are_unique_within_a_message() -> None:
    answers = [Button(c, ActionRef("answer", value=c)) for c in ("yes", "no")]
    payload = t.message_payload([Reply(text="Create it?", buttons=answers), Reply(card=card())])
    ids = [
        e["action_id"] for b in payload["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert ids == ["answer", "answer-2", "take", "cancel", "note"]


def test_message_payload_limits() -> None:
    long_text = "\n".join(f"line {i} " + "y" * 100 for i in range(200))
    payload = t.message_payload([Reply(text=long_text)])
    assert len(payload["blocks"]) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in payload["blocks"] if b["type"] == "section")
    assert payload["text"] == "line 0 " + "y" * 100


FORM = Form(
    form_id="resolve",
    title="Resolve BILL-1042 for Contoso",
    fields=[
        FormField(
            "outcome",
            "Microsoft's outcome",
            FieldKind.CHOICE,
            choices=(Choice("credit_granted", "Credit granted"), Choice("denied", "Denied")),
            value="denied",
        ),
        FormField("credited", "Credited amount", FieldKind.AMOUNT, hint="For example 120.00 EUR"),
        FormField(
            "resolution", "What was done", FieldKind.LONG_TEXT, required=False, value=u("<x>")
        ),
        FormField("user", "Assign to"),
    ],
    submit_label="Submit",
    intro="File it by hand: " + u("<!here>"),
    context={"case": "BILL-1042", "stage": "3"},
)


def test_modal_view() -> None:
    origin = t.Origin(
        source="action",
        user="U1",
        conversation="C1",
        channel="C1",
        message_ts="1.2",
        card_case="BILL-1042",
        response_url="https://hooks.slack.com/actions/1",
    )
    view = t.modal_view(FORM, t.modal_metadata(FORM, origin))
    assert view["callback_id"] == t.FORM_CALLBACK
    assert len(view["title"]["text"]) <= 24
    assert view["blocks"][0]["text"]["text"] == "*Resolve BILL-1042 for Contoso*"  # full title
    assert view["blocks"][1]["text"]["text"] == "File it by hand: &lt;!here&gt;"
    inputs = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    assert inputs["outcome"]["element"]["initial_option"]["value"] == "denied"
    assert inputs["credited"]["optional"] is True  # needed only unless denied: the desk checks
    assert inputs["resolution"]["element"]["multiline"] is True
    assert inputs["resolution"]["element"]["initial_value"] == "<x>"  # plain text, shown as typed
    assert inputs["user"]["element"]["type"] == "users_select"
    meta = json.loads(view["private_metadata"])
    assert meta == {
        "f": "resolve",
        "x": {"case": "BILL-1042", "stage": "3"},
        "cv": "C1",
        "ch": "C1",
        "d": False,
        "ts": "1.2",
        "e": False,
        "cc": "BILL-1042",
        "ru": "https://hooks.slack.com/actions/1",
    }


def test_form_errors_land_on_blocks_the_view_has() -> None:
    form = Form("dispute", "x", [], "Submit", errors={"amount": "Use a dot", "ghost": "Oops"})
    view = {
        "blocks": [
            {"type": "input", "block_id": "invoice"},
            {"type": "input", "block_id": "amount"},
        ]
    }
    assert t.form_errors(form, view) == {"amount": "Use a dot", "invoice": "Oops"}


# ---- plan: where each reply goes ---------------------------------------------------------

COMMAND = t.Origin("command", "U1", "C1", channel="C1", trigger_id="T", response_url="R")
CLICK = t.Origin(
    "action",
    "U1",
    "C1",
    channel="C1",
    trigger_id="T",
    response_url="R",
    message_ts="9.9",
    card_case="BILL-7",
)
DM_EVENT = t.Origin("event", "U1", "D1", channel="D1", is_direct=True)
MENTION = t.Origin("event", "U1", "C1", channel="C1")
SUBMIT = t.Origin("view", "U1", "C1", channel="C1", message_ts="9.9", card_case="BILL-7")
ASK = Form("ask", "New billing question", [FormField("description", "Question")], "Submit")
PLANS: list[tuple[str, list[Reply], t.Origin, bool, list[str]]] = [
    ("help → private", [Reply(text="Commands")], COMMAND, False, ["private"]),
    ("form + trigger → modal", [Reply(text="step 1", form=ASK)], COMMAND, False, ["modal"]),
    ("form in a DM → Open form", [Reply(text="step 1", form=ASK)], DM_EVENT, False, ["private"]),
    ("form in a mention → Open form", [Reply(text="s", form=ASK)], MENTION, False, ["private"]),
    ("card → visible", [Reply(text="Thanks", card=card())], COMMAND, False, ["post"]),
    (
        "status → card + history",
        [Reply(card=card()), Reply(text="History")],
        COMMAND,
        False,
        ["post", "private"],
    ),
    ("card in a DM → the DM", [Reply(card=card())], DM_EVENT, False, ["private"]),
    ("staff in a customer channel", [Reply(card=card())], COMMAND, True, ["private"]),
    (
        "click → update + note",
        [Reply(text="Yours", card=card(), replace=True)],
        CLICK,
        False,
        ["update", "private"],
    ),
    (
        "stale click",
        [Reply(text="Already done", kind="stale", private=True), Reply(card=card(), replace=True)],
        CLICK,
        False,
        ["update", "private"],
    ),
    (
        "modal result → the clicked card",
        [Reply(text="Resolved", card=card())],
        SUBMIT,
        False,
        ["update", "private"],
    ),
]


@pytest.mark.parametrize(
    ("why", "replies", "origin", "private_only", "ops"), PLANS, ids=[p[0] for p in PLANS]
)
def test_plan(
    why: str, replies: list[Reply], origin: t.Origin, private_only: bool, ops: list[str]
) -> None:
    steps = t.plan(replies, origin, private_only=private_only)
    assert [s.op for s in steps] == ops


def test_open_form_button_and_the_form_behind_it() -> None:
    steps = t.plan([Reply(text="step 1", form=ASK)], DM_EVENT)
    (step,) = steps
    assert step.forms == [ASK]
    buttons = [e for b in step.payload["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons[-1]["value"] == "open_form|||ask" and buttons[-1]["text"]["text"] == "Open form"


def test_a_modal_skips_the_intro_it_shows() -> None:
    form = Form(
        "escalate", "Escalate", [FormField("request_id", "Number")], "Submit", intro="File it"
    )
    steps = t.plan([Reply(text="File it"), Reply(text="step 1", form=form)], COMMAND)
    assert [s.op for s in steps] == ["modal"]
    assert steps[0].fallback is not None  # shown with an Open form button if the modal fails


# ---- parse_form: bolt's parser, faster ------------------------------------------


def _bolt_parse(body: str) -> Any:
    from slack_bolt.request.internals import parse_body

    return parse_body(body, "application/x-www-form-urlencoded")


def test_parse_form_reads_the_documented_payloads_as_bolt_does() -> None:
    command = urllib.parse.urlencode(load("slash_command"))
    click = urllib.parse.urlencode({"payload": json.dumps(load("block_actions"))})
    for body in (command, click, "", "text=", "a", "payload=%7B%7D", "&&x=1&&"):
        assert t.parse_form(body) == _bolt_parse(body)
    assert t.parse_form(command)["command"] == "/billing"
    assert t.parse_form(click)["type"] == "block_actions"


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.one_of(st.just("payload"), st.text(min_size=1)), st.text(), max_size=5))
def test_parse_form_equals_bolt_on_any_encoded_fields(fields: dict[str, str]) -> None:
    body = urllib.parse.urlencode(fields)
    try:
        expected = _bolt_parse(body)
    except ValueError:  # a payload field that is not JSON
        with pytest.raises(ValueError):
            t.parse_form(body)
        return
    # Compared as JSON text: a payload of "NaN" parses to nan on both sides, and nan != nan.
    assert json.dumps(t.parse_form(body), sort_keys=True) == json.dumps(expected, sort_keys=True)
    if "payload" not in body:  # else bolt reads the payload field's JSON (or nothing)
        assert t.parse_form(body) == fields


_FORM_TOKENS = st.sampled_from(
    ["payload", "%7B%7D", "{", "}", '"', "%", "+", "=", "&", "\\", "a", "Z", "0", "9", "f"]
    + ["F", "x", "u", "N", "\u00e9", "\u4e2d"]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_FORM_TOKENS, max_size=20).map("".join))
def test_parse_form_equals_bolt_on_any_text(body: str) -> None:
    """Bad escapes, stray backslashes, ``+``, non-ASCII, lone ``=``: the same result."""
    try:
        expected = _bolt_parse(body)
    except ValueError:
        with pytest.raises(ValueError):
            t.parse_form(body)
        return
    assert t.parse_form(body) == expected
