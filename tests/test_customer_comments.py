"""``add BILL-n text`` and ``withdraw BILL-n [reason]``: a customer takes part in their own case.

A comment is seen by the customer and the desk; it tells the case's owner, or, while
nobody owns the case, whoever gets the first-response pings (the escalation target, else
every lead), by a DM job written in the same commit. A withdrawal cancels the case with
the customer's reason and stops its reminders and watch in the same commit. Both are
refused on another tenant's case (as if it did not exist) and on a case that is done.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.domain import State
from bot.kernel.model import Channel, Message
from bot.kernel.scheduler import loop_key, watch_key
from tests.harness import DeskEnv, make_settings


@pytest.fixture
async def env() -> DeskEnv:
    e = DeskEnv()
    await e.store.open()
    return e


async def mailbox(env: DeskEnv, user: str) -> list[str]:
    return [str(i["text"]) for i in await env.runtime.take_mailbox(user)]


async def test_a_customer_adds_to_their_case_and_the_owner_is_told(env: DeskEnv) -> None:
    case = await env.new_question("carol")
    await env.chat("alice").send(f"take {case}")
    await mailbox(env, "alice")
    carol = env.chat("carol")
    await carol.send(f"add {case} We paid on Monday, remittance REM-42")
    carol.expect(f"Added to {case}. The billing team has been told.")
    carol.expect("1 comment: latest by carol: We paid on Monday, remittance REM-42")
    stored = await env.store.get_case(1)
    assert stored is not None and stored.state == State.IN_PROGRESS  # a comment moves nothing
    assert [a.action for a in stored.audit][-1] == "commented"
    assert stored.audit[-1].details == {"text": "We paid on Monday, remittance REM-42"}
    # The owner's DM, through the notification jobs (with the case card).
    assert await mailbox(env, "alice") == [
        f"carol added to {case}: “We paid on Monday, remittance REM-42”"
    ]
    assert await mailbox(env, "lena") == []  # the owner is told, not the queue
    # The desk and the customer both read it in the history.
    for who in ("carol", "alice"):
        chat = env.chat(who)
        await chat.send(f"status {case}")
        chat.expect("carol added a comment — We paid on Monday, remittance REM-42")
    # In Chinese: the alias, and the words of the customer's reply.
    await carol.send("language zh")
    await carol.send(f"补充 {case} 第二条")
    carol.expect(f"已补充到 {case}")
    assert await mailbox(env, "alice") == [f"carol added to {case}: “第二条”"]


async def test_a_comment_on_an_unassigned_case_goes_to_the_first_response_queue(
    env: DeskEnv,
) -> None:
    case = await env.new_question("carol")
    await env.chat("carol").send(f"add {case} any news?")
    # Nobody owns it: the leads, who get the first-response pings (lena), not the agents.
    assert await mailbox(env, "lena") == [f"carol added to {case}: “any news?”"]
    assert await mailbox(env, "alice") == []
    assert await mailbox(env, "bob") == []


async def test_the_escalation_target_gets_the_unassigned_queues_news() -> None:
    settings = make_settings()
    settings = replace(settings, reminders=replace(settings.reminders, escalation_target="bob"))
    env = DeskEnv(settings)
    await env.store.open()
    await env.chat("bob").send("help")  # the target is a person the desk has met
    case = await env.new_question("carol")
    await env.chat("carol").send(f"add {case} still waiting")
    assert await mailbox(env, "bob") == [f"carol added to {case}: “still waiting”"]
    assert await mailbox(env, "lena") == []


async def test_staff_add_a_customer_visible_comment_and_notes_stay_internal(
    env: DeskEnv,
) -> None:
    case = await env.new_question("carol")
    bob = env.chat("bob")
    await bob.send(f"take {case}")
    lena = env.chat("lena")
    await lena.send(f"add {case} We asked Microsoft for the credit")
    lena.expect(f"Comment added to {case}; the customer sees it")
    await lena.send(f"note {case} INTERNAL grumpy customer")
    assert await mailbox(env, "bob") == [
        f"Lena Lead added to {case}: “We asked Microsoft for the credit”"
    ]
    await bob.send(f"add {case} Credit requested")
    assert await mailbox(env, "bob") == []  # nobody is told of their own comment
    carol = env.chat("carol")
    await carol.send(f"status {case}")
    carol.expect("Lena Lead added a comment — We asked Microsoft for the credit")
    carol.expect("Bob Agent added a comment — Credit requested")
    carol.expect_not("INTERNAL", "added a note")


async def test_add_without_text_opens_the_form(env: DeskEnv) -> None:
    case = await env.new_question("carol")
    carol = env.chat("carol")
    await carol.send(f"add {case}")
    carol.expect(f"Add to {case}", "Your comment")
    await carol.send("The invoice number is G012345678")
    carol.expect(f"Added to {case}.")
    stored = await env.store.get_case(1)
    assert stored is not None
    assert stored.audit[-1].details == {"text": "The invoice number is G012345678"}
    # The whole form at once (a Slack modal, a Teams card, the web page).
    await carol.submit("add", {"text": "and one more"}, {"case": case, "stage": "1"})
    carol.expect(f"Added to {case}.")
    stored = await env.store.get_case(1)
    assert stored is not None and len(stored.comments) == 2


async def test_customers_reach_only_their_own_open_cases(env: DeskEnv) -> None:
    case = await env.new_question("carol")
    dave = env.chat("dave")  # Fabrikam's contact
    await dave.send(f"add {case} hello")
    dave.expect(f"I can't find {case}.")
    await dave.send(f"withdraw {case}")
    dave.expect(f"I can't find {case}.")
    nora = env.chat("nora")  # no role
    await nora.send(f"add {case} hello")
    nora.expect("I can only show `help`")
    alice = env.chat("alice")
    await alice.send(f"take {case}")
    await alice.send(f"resolve {case} Credit note issued")
    carol = env.chat("carol")
    before = await env.store.get_case(1)
    await carol.send(f"add {case} thanks")
    carol.expect(f"{case} is resolved, customer not told yet, so it can no longer be changed.")
    await carol.send(f"withdraw {case}")
    carol.expect("can no longer be changed")
    after = await env.store.get_case(1)
    assert before is not None and after is not None and after.audit == before.audit
    # Staff may still comment on it (the customer reads it).
    await alice.send(f"add {case} The credit note is CN-7")
    alice.expect(f"Comment added to {case}")


async def test_a_customer_withdraws_their_case_and_its_jobs_stop(env: DeskEnv) -> None:
    case = await env.new_question("carol")
    alice = env.chat("alice")
    await alice.send(f"take {case}")
    await mailbox(env, "alice")
    assert await env.store.get_job(watch_key(1)) is not None
    carol = env.chat("carol")
    await carol.send(f"withdraw {case} found the answer myself")
    carol.expect(f"{case} is withdrawn. Thank you for letting us know.")
    carol.expect("Cancelled because: found the answer myself")
    stored = await env.store.get_case(1)
    assert stored is not None and stored.state == State.CANCELLED
    assert stored.audit[-1].action == "withdrawn"
    assert stored.audit[-1].details["reason"] == "found the answer myself"
    # The watch and the close-the-loop job went in the same commit as the withdrawal.
    assert await env.store.get_job(watch_key(1)) is None
    assert await env.store.get_job(loop_key(1)) is None
    assert await mailbox(env, "alice") == [f"carol withdrew {case}: “found the answer myself”"]
    await alice.send(f"status {case}")
    alice.expect("carol withdrew the case — found the answer myself")
    await carol.send(f"withdraw {case}")
    carol.expect("can no longer be changed")


async def test_withdraw_without_a_reason_and_staff_withdraw_like_cancel(env: DeskEnv) -> None:
    first = await env.new_question("carol")
    carol = env.chat("carol")
    await carol.send(f"撤回 {first}")
    carol.expect(f"{first} is withdrawn.")
    assert await mailbox(env, "lena") == [f"carol withdrew {first}."]  # unassigned: the queue
    stored = await env.store.get_case(1)
    assert stored is not None and stored.state == State.CANCELLED and stored.cancel_reason is None
    second = await env.new_question("carol")
    alice = env.chat("alice")
    await alice.send(f"take {second}")
    await alice.send(f"escalate {second} 2411240010001234")
    await env.chat("lena").send(f"withdraw {second} the customer called: duplicate")
    assert await mailbox(env, "alice") == [
        f"Lena Lead withdrew {second}: “the customer called: duplicate”"
    ]
    # A resolved case is not withdrawn, by anyone: the state machine's words.
    third = await env.new_question("carol")
    await alice.send(f"take {third}")
    await alice.send(f"resolve {third} done")
    await alice.send(f"withdraw {third}")
    alice.expect(f"{third} is already resolved, customer not told yet; reopen it first.")


async def test_the_same_request_twice_adds_once(env: DeskEnv) -> None:
    """A double click, a platform's retry, a request redone after a crash: one comment."""
    case = await env.new_question("carol")

    def message(text: str) -> Message:
        return Message(Channel.LOCAL, "carol", "dm:carol", text=text, user_name="carol", id="r-1")

    first = await env.runtime.handle(message(f"add {case} only once"))
    again = await env.runtime.handle(message(f"add {case} only once"))
    assert "Added to" in (first.replies[0].text or "")
    assert "Already done" in (again.replies[0].text or "")
    stored = await env.store.get_case(1)
    assert stored is not None and len(stored.comments) == 1
    assert await mailbox(env, "lena") == [f"carol added to {case}: “only once”"]
    withdraw = Message(Channel.LOCAL, "carol", "dm:carol", text=f"withdraw {case}", id="r-2")
    await env.runtime.handle(withdraw)
    repeat = await env.runtime.handle(replace(withdraw))
    assert "Already done" in (repeat.replies[0].text or "")
    stored = await env.store.get_case(1)
    assert stored is not None
    assert [a.action for a in stored.audit].count("withdrawn") == 1
