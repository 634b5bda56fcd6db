"""``billing-bot doctor`` on the deployment mistakes issue 11 names, secrets never printed.

The doctor's own tests (``tests/test_doctor.py``) cover half-set credentials,
a public bind without web tokens, loose file modes and owner-only stores;
these add the web page opened to the network by ``require_login = false``
and a serve's store, journal and lock all owner-only after real writes.
"""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

from bot.doctor import check, report
from bot.domain import State
from bot.runtime import Runtime
from bot.storage import open_store
from tests.harness import make_settings
from tests.security.matrix import seed_case, seed_world
from tests.slack.slackfake import TOKEN


def test_a_web_page_opened_beyond_loopback_is_an_error() -> None:
    settings = make_settings(host="0.0.0.0", raw={"web": {"require_login": False}})
    text, code = report(check(settings))
    assert code == 1
    assert "require_login = false" in text and "bound to 0.0.0.0" in text
    local = replace(settings, host="127.0.0.1")
    text, _code = report(check(local))
    assert "[warn] web page: [web] require_login = false" in text


def test_the_doctor_names_credentials_but_never_prints_them(tmp_path: Path) -> None:
    settings = make_settings(
        db_path=str(tmp_path / "db.json"),
        slack_bot_token=TOKEN,
        slack_signing_secret="signing-secret-never-printed",
        teams_app_id="c9e8c047-2a74-40a2-b28a-b162d5f5327c",
        teams_app_password="teams-password-never-printed",
        partner_center_client_secret="pc-secret-never-printed",
    )
    text, _code = report(check(settings))
    for secret in (TOKEN, "never-printed"):
        assert secret not in text


async def test_a_stores_files_are_owner_only_after_real_writes(tmp_path: Path) -> None:
    db = tmp_path / "data" / "billing-bot.json"
    store = open_store(db)
    await store.open()
    runtime = Runtime(make_settings(db_path=str(db)), store)
    await seed_world(runtime)
    for state in (State.RESOLVED, State.ESCALATED, State.CUSTOMER_INFORMED):
        await seed_case(runtime, state)
    await store.close()
    files = [db.parent, *db.parent.iterdir()]
    assert len(files) > 2
    for path in files:
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
    text, code = report(check(make_settings(db_path=str(db))))
    assert code == 0, text
