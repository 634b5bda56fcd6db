"""Hostile input: whatever is typed or sent, no exception, no 5xx, no record that breaks a read."""

from __future__ import annotations

import asyncio
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.kernel.model import Channel, FieldKind, FormField
from bot.kernel.serialize import message_from_dict
from conversations.commands import parse
from conversations.forms import ValidationError, validate
from tests.harness import DeskEnv

WEIRD = st.one_of(
    st.text(),
    st.text(
        alphabet=st.sampled_from(
            list("\u200b\u200f\u202e\u2066\ufeff\x00\x07\x1b\n\t<>&*_~`@!=+-|")
        )
    ),
    st.text(alphabet=st.characters(min_codepoint=0x590, max_codepoint=0x6FF)),  # Hebrew, Arabic
    st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=5), st.integers(1, 20_000)),
    st.sampled_from(
        [
            "resolve BILL-1 credit 1e309 EUR",
            "resolve BILL-1 credit NaN EUR",
            "resolve BILL-1 partial -0.00 EUR",
            "BILL-99999999999999999999",
            "bill-0",
            "assign BILL-1 <@U123|x>",
            "list all customer \u202eevil",
            "note BILL-1 " + "x" * 100_000,
            "ask \ue000forged mark\ue001",
        ]
    ),
)

FIELDS = [
    FormField("amount", "Amount", FieldKind.AMOUNT),
    FormField("currency", "Currency", FieldKind.CURRENCY),
    FormField("subscription_id", "Subscription id", required=False),
    FormField("invoice", "Invoice"),
    FormField("description", "Question", FieldKind.LONG_TEXT),
]


@settings(max_examples=300)
@given(WEIRD)
def test_the_command_parser_never_raises(text: str) -> None:
    cmd = parse(text)
    assert isinstance(cmd.name, str)


@settings(max_examples=300)
@given(st.sampled_from(FIELDS), WEIRD)
def test_validators_raise_only_validation_errors(field: FormField, text: str) -> None:
    try:
        validate(field, text)
    except ValidationError as exc:
        assert str(exc)


@settings(max_examples=200)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=8,
    )
)
def test_local_messages_from_any_json_are_valid_or_refused(body: object) -> None:
    try:
        msg = message_from_dict(body, Channel.LOCAL)  # type: ignore[arg-type]
    except ValueError:
        return
    assert msg.user


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(WEIRD, min_size=1, max_size=4))
def test_the_desk_answers_anything_and_the_store_stays_readable(lines: list[str]) -> None:
    async def run() -> None:
        env = DeskEnv()
        await env.store.open()
        await env.new_question()
        chat = env.chat("alice")
        for line in lines:
            replies = await chat.send(line)
            assert replies, line
        for case in await env.store.live_cases():
            json.dumps(case.to_doc())
        for number in range(1, 3):
            await env.store.get_case(number)

    asyncio.run(run())
