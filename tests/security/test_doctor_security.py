"""``billing-bot doctor`` on the deployment mistakes issue 11 names, secrets never printed.

The doctor's own tests (``tests/test_doctor.py``) cover half-set credentials,
a public bind without web tokens, loose file modes and owner-only stores;
these add the web page opened to the network by ``require_login = false``,
weak or shared web tokens (issue 17: only their digests are in the config),
and a serve's store, journal and lock all owner-only after real writes.
"""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

from bot.app.doctor import check, report
from bot.app.wiring import build_runtime
from bot.config import UserConfig
from bot.domain import State
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


def _tokens(host: str, **tokens: str) -> str:
    """The doctor's lines about the web page for users with these tokens (only digests stored)."""
    from tests.web.helpers import digest

    users = tuple(UserConfig(name=name, web_token_sha256=digest(t)) for name, t in tokens.items())
    text, _code = report(check(make_settings(host=host, users=users)))
    return "\n".join(line for line in text.splitlines() if "web page" in line)


def test_weak_and_shared_web_tokens_are_found_from_their_digests() -> None:
    strong = "Zq3v9-kP2xW7mN4rT8yB1cF6hJ0sL5dG"
    text = _tokens("0.0.0.0", lena=strong, alice=strong + "x")
    assert text.startswith("[ok  ]") and "\n" not in text, text  # nothing to warn about
    assert "secrets.token_urlsafe(32)" in text  # how to make a good one (length is unseen)
    for weak in ("", "password", "changeme", "token", "12345678", "lena", "Lena123"):
        text = _tokens("0.0.0.0", lena=weak, alice=strong)
        assert "[FIX ] web page: the web token of lena is a well-known weak one" in text, weak
        assert "secrets.token_urlsafe(32)" in text and "alice" not in text
        if weak in ("changeme", "12345678", "Lena123"):
            assert weak not in text  # which weak word it is stays unsaid
    text = _tokens("0.0.0.0", lena=strong, alice=strong, bob=strong + "y")
    assert "[FIX ] web page: lena, alice share one web token" in text and "bob" not in text
    text = _tokens("127.0.0.1", lena="password")  # on loopback: a warning
    assert "[warn] web page: the web token of lena is a well-known weak one" in text


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
    runtime = build_runtime(make_settings(db_path=str(db)), store)
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
