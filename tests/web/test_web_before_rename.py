"""A mailbox, a page and a form from before the card's stage was renamed still work on the web.

``tests/fixtures/written-by-79a86d9/mailbox_bob.json`` is a mailbox as commit
79a86d9's ``add_to_inbox`` wrote it (``status BILL-1`` and ``resolve BILL-1``
answered to a person with no chat open): its card, its buttons and its form's
context name the card's stage ``version``. A page rendered before the rename
posts ``ctx_version``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bot.domain import State
from bot.kernel.runtime import mailbox_key
from tests.web.conftest import AppFactory
from tests.web.helpers import TOKENS, button, form_context
from tests.web.test_web import ask

OLD = Path(__file__).resolve().parents[1] / "fixtures" / "written-by-79a86d9"


async def test_a_mailbox_written_by_79a86d9_shows_with_its_cards_stage(
    make_web: AppFactory,
) -> None:
    b, runtime, _client = await make_web()
    await b.login("lena")
    case = await ask(b, "Contoso", "Why two charges?")
    assert case == "BILL-1" and (await runtime.store.get_case(1)).stage == 1
    mailbox = json.loads((OLD / "mailbox_bob.json").read_text())
    await runtime.store.save_conversation(mailbox_key("alice"), mailbox)
    b.client.session.cookie_jar.clear()
    await b.login("alice", TOKENS["alice"])
    inbox = await b.get("/chat/inbox")
    assert 'data-count="3"' in inbox  # no item skipped as unreadable
    assert 'data-case="BILL-1" data-stage="1"' in inbox  # the card's "version": 1
    take = button(inbox, "take", "BILL-1")
    assert take == "take|BILL-1|1"
    # The old form's context, as the page shows it (the key as it was written).
    assert form_context(inbox, "resolve") == {"case": "BILL-1", "version": "1"}
    out = await b.click(take)
    assert "BILL-1 is yours now" in out
    # The old form was made for stage 1; the case moved on: refused as stale.
    out = await b.submit(
        "resolve", {"resolution": "Credit note issued"}, {"case": "BILL-1", "version": "1"}
    )
    assert "Already done" in out
    assert (await runtime.store.get_case(1)).state == State.IN_PROGRESS
    # The same form at the case's current stage (old key) completes.
    stage = str((await runtime.store.get_case(1)).stage)
    out = await b.submit(
        "resolve", {"resolution": "Credit note issued"}, {"case": "BILL-1", "version": stage}
    )
    assert "BILL-1 is resolved." in out


async def test_a_dashboard_rendered_before_the_rename_still_records_informed(
    make_web: AppFactory,
) -> None:
    b, runtime, _client = await make_web()
    await b.login("lena")
    case = await ask(b, "Contoso", "Why two charges?")
    await b.say(f"resolve {case} Credit note issued")
    dash = await b.get("/dashboard")
    stage = re.search(r'name="ctx_stage" value="(\d+)"', dash)  # what today's page writes
    assert stage and 'name="ctx_version"' not in dash
    fields = {"ctx_case": case, "ctx_version": stage.group(1), "f_via": "email"}
    out = await b.post("/chat/send", {"form_id": "informed", **fields})
    assert "Recorded: the customer was told about BILL-1" in out
    assert (await runtime.store.get_case(1)).state == State.CUSTOMER_INFORMED
    # A page older than the case: refused as stale.
    out = await b.post("/chat/send", {"form_id": "informed", **fields, "ctx_version": "1"})
    assert "Already done" in out
