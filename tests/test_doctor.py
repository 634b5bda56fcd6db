"""``billing-bot doctor`` finds what a deployment must fix; store files are owner-only."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

from bot.app.doctor import check, report
from bot.config import UserConfig
from bot.storage import open_store
from tests.harness import make_settings


def levels(findings: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {f.what: f.level for f in findings}


async def test_a_new_store_is_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "data" / "billing-bot.json"
    store = open_store(db)
    await store.open()
    await store.close()
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    for path in db.parent.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


async def test_doctor_on_a_good_local_setup(tmp_path: Path) -> None:
    db = tmp_path / "data" / "billing-bot.json"
    store = open_store(db)
    await store.open()
    await store.close()
    text, code = report(check(make_settings(db_path=str(db))))
    assert code == 0, text
    assert "All good." in text


def test_doctor_finds_half_set_credentials_public_bind_and_loose_files(tmp_path: Path) -> None:
    cfg = tmp_path / "billing-bot.toml"
    cfg.write_text("")
    cfg.chmod(0o644)
    settings = replace(
        make_settings(db_path=str(tmp_path / "db.json")),
        config_path=cfg,
        host="0.0.0.0",
        slack_bot_token="xoxb-1",
        teams_app_id="app",
        partner_center_client_id="id",
    )
    text, code = report(check(settings))
    assert code == 1
    assert "SLACK_SIGNING_SECRET is missing" in text
    assert "MICROSOFT_APP_ID is set without MICROSOFT_APP_PASSWORD" in text
    assert "incomplete credentials" in text and "PARTNER_CENTER_CLIENT_SECRET" in text
    assert "nobody can log in to the web page" in text
    assert f"chmod 600 {cfg}" in text
    assert "xoxb-1" not in text  # secrets are never printed
    with_tokens = replace(settings, users=(UserConfig(name="lena", web_token_sha256="ab" * 32),))
    assert "web page: 1 user can log in with a token" in report(check(with_tokens))[0]
