"""``billing-bot doctor``: check a deployment's settings and say what to fix.

Each check gives a level (ok, warn, error) and, when something is wrong,
one sentence on how to fix it. Secrets are reported as set or not set, never
printed.

Web tokens are stored only as SHA-256 digests, so their length cannot be
seen; what can be checked honestly is a digest that two users share and a
digest of a well-known weak token (the empty string, ``password``, the user's
own name, ``1234…``): :func:`weak_tokens` hashes those and compares.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.config import Settings, UserConfig
from bot.i18n import ngettext

MAKE_TOKEN = 'python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
DIGEST_OF_TOKEN = (
    'python3 -c "import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())" TOKEN'
)
# Tokens people type when asked for one; each is also tried in upper and title case.
WEAK_TOKENS = (
    "", "password", "passw0rd", "changeme", "change-me", "token", "secret", "admin",
    "letmein", "welcome", "qwerty", "test", "default", "billing", "billing-bot", "lead",
    "agent", "1234", "12345", "123456", "1234567", "12345678", "123456789", "1234567890",
    "0000", "00000000", "1111", "abc123", "password1", "password123",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Finding:
    level: str  # ok | warn | error
    what: str
    fix: str = ""


def _loopback(host: str) -> bool:
    from bot.locality import is_loopback

    return is_loopback(host)


def _private(path: Path) -> Finding | None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return Finding(
            "error",
            f"{path} can be read by other users (mode {stat.filemode(mode)})",
            f"chmod 600 {path}" if path.is_file() else f"chmod 700 {path}",
        )
    return Finding("ok", f"{path} is private ({stat.filemode(mode)})")


def check(settings: Settings) -> list[Finding]:
    """Every check, in the order a person would fix them."""
    out: list[Finding] = []
    slack = (settings.slack_bot_token, settings.slack_signing_secret)
    if all(slack):
        out.append(Finding("ok", "Slack: token and signing secret are set"))
    elif any(slack):
        missing = "SLACK_SIGNING_SECRET" if settings.slack_bot_token else "SLACK_BOT_TOKEN"
        out.append(
            Finding("error", f"Slack: {missing} is missing, so Slack stays off", f"set {missing}")
        )
    else:
        out.append(Finding("ok", "Slack: off (no credentials)"))
    if settings.slack_bot_token and not settings.slack_bot_token.startswith("xoxb-"):
        out.append(
            Finding(
                "warn",
                "Slack: SLACK_BOT_TOKEN does not look like a bot token (xoxb-…)",
                "use the Bot User OAuth Token",
            )
        )
    if settings.teams_app_id:
        if (
            settings.teams_app_password
            or (settings.teams_app_type or "").lower() == "userassignedmsi"
        ):
            out.append(
                Finding("ok", "Teams: app id and password are set; requests are authenticated")
            )
        else:
            out.append(
                Finding(
                    "error",
                    "Teams: MICROSOFT_APP_ID is set without MICROSOFT_APP_PASSWORD",
                    "set MICROSOFT_APP_PASSWORD",
                )
            )
        if (
            settings.teams_app_type or ""
        ).lower() == "singletenant" and not settings.teams_app_tenant_id:
            out.append(
                Finding(
                    "error",
                    "Teams: a SingleTenant app needs MICROSOFT_APP_TENANT_ID",
                    "set MICROSOFT_APP_TENANT_ID",
                )
            )
    elif _loopback(settings.host):
        out.append(Finding("ok", "Teams: local (Emulator) mode on loopback, no app id"))
    else:
        out.append(
            Finding(
                "warn",
                f"Teams: off — no MICROSOFT_APP_ID and bound to {settings.host}",
                "set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD",
            )
        )
    pc = {
        "PARTNER_CENTER_TENANT_ID": settings.partner_center_tenant_id,
        "PARTNER_CENTER_CLIENT_ID": settings.partner_center_client_id,
        "PARTNER_CENTER_CLIENT_SECRET": settings.partner_center_client_secret,
        "PARTNER_CENTER_REFRESH_TOKEN": settings.partner_center_refresh_token,
    }
    missing_pc = [k for k, v in pc.items() if not v]
    if not missing_pc:
        out.append(Finding("ok", "Partner Center: API mode"))
    elif len(missing_pc) == len(pc):
        out.append(Finding("ok", "Partner Center: manual mode (no credentials)"))
    else:
        out.append(
            Finding(
                "error",
                "Partner Center: incomplete credentials, so manual mode",
                "set " + ", ".join(missing_pc),
            )
        )
    for url in (settings.partner_center_url, settings.partner_center_login_url):
        if not url.startswith("https://") and not _loopback(
            url.split("//")[-1].split(":")[0].split("/")[0]
        ):
            out.append(Finding("error", f"{url} is not https", "use an https URL"))
    if not _loopback(settings.host):
        tokens = [u.name for u in settings.users if u.web_token_sha256]
        if not tokens:
            out.append(
                Finding(
                    "error",
                    f"bound to {settings.host} but no user has a web_token_sha256: "
                    "nobody can log in to the web page",
                    "give each web user a token (users[].web_token_sha256)",
                )
            )
        else:
            # Only digests are stored, so a short token can't be seen: say how to make a good one.
            out.append(
                Finding(
                    "ok",
                    ngettext(
                        "web page: {n} user can log in with a token "
                        "(make each a long random one: {make})",
                        "web page: {n} users can log in with a token "
                        "(make each a long random one: {make})",
                        len(tokens),
                    ).format(n=len(tokens), make=MAKE_TOKEN),
                )
            )
    out.extend(weak_tokens(settings))
    web = settings.raw.get("web")
    if isinstance(web, dict) and web.get("require_login") is False:
        # A name is then enough to act as anyone, the lead included.
        out.append(
            Finding(
                "warn" if _loopback(settings.host) else "error",
                "web page: [web] require_login = false, so anyone who reaches it can act "
                "as any user by typing a name"
                + ("" if _loopback(settings.host) else f" (bound to {settings.host})"),
                "remove require_login = false (or set it to true) and give each web user a token",
            )
        )
    if settings.config_path is not None:
        finding = _private(settings.config_path)
        if finding:
            out.append(finding)
    from bot.storage import is_postgres_url

    if is_postgres_url(settings.db_path):
        out.append(postgres_schema(settings.db_path))
    db = Path(settings.db_path)
    if not is_postgres_url(settings.db_path) and db.parent.exists():
        for path in [db.parent, *sorted(db.parent.glob(db.stem + "*"))]:
            finding = _private(path)
            if finding:
                out.append(finding)
    if os.environ.get("BILLING_BOT_FAKE_CLOCK"):
        out.append(
            Finding(
                "error",
                "BILLING_BOT_FAKE_CLOCK is set: a test-only setting",
                "unset BILLING_BOT_FAKE_CLOCK",
            )
        )
    return out


def postgres_schema(url: str) -> Finding:
    """The PostgreSQL store's schema version against the one this billing-bot knows."""
    from bot.storage import StorageError
    from bot.storage.pg_engine import safe_url
    from bot.storage.pg_migrate import schema_status

    where = safe_url(url)
    try:
        current, known = schema_status(url)
    except StorageError as exc:
        return Finding("error", f"store: {exc}", "start PostgreSQL or fix BOT_DB")
    if current > known + 1:
        return Finding(
            "error",
            f"store {where}: schema version {current}, this billing-bot knows {known}: "
            "migrated by a newer billing-bot, it will refuse to start",
            "run the billing-bot version that migrated it",
        )
    if current < known:
        return Finding(
            "warn",
            f"store {where}: schema version {current}, this billing-bot knows {known}",
            "billing-bot migrate (serve also applies the migrations at start)",
        )
    return Finding("ok", f"store {where}: PostgreSQL, schema version {current} (knows {known})")


def report(findings: list[Finding]) -> tuple[str, int]:
    marks = {"ok": "ok  ", "warn": "warn", "error": "FIX "}
    lines = []
    for f in findings:
        line = f"[{marks[f.level]}] {f.what}"
        if f.fix:
            line += f" — fix: {f.fix}"
        lines.append(line)
    errors = sum(1 for f in findings if f.level == "error")
    lines.append(
        ngettext("{n} problem to fix.", "{n} problems to fix.", errors).format(n=errors)
        if errors
        else "All good."
    )
    return "\n".join(lines), 1 if errors else 0


def _guesses(user: UserConfig) -> Iterator[str]:
    """The weak tokens tried for ``user``: the common ones, their name, name + digits."""
    names = {user.name, user.display_name or ""} - {""}
    for word in (*WEAK_TOKENS, *names, *(n + d for n in names for d in ("1", "123", "1234"))):
        yield from {word, word.lower(), word.upper(), word.title()}


def weak_tokens(settings: Settings) -> list[Finding]:
    """Web tokens whose digest gives them away: shared by two users, or a well-known weak one."""
    out: list[Finding] = []
    level = "warn" if _loopback(settings.host) else "error"
    fix = (
        f"make a long random token for each user ({MAKE_TOKEN}) and put its digest "
        f"({DIGEST_OF_TOKEN}) in users[].web_token_sha256"
    )
    by_digest: dict[str, list[str]] = {}
    for user in settings.users:
        if user.web_token_sha256:
            by_digest.setdefault(user.web_token_sha256.lower(), []).append(user.name)
    for names in by_digest.values():
        if len(names) > 1:
            # One token for several people: each can act as the others, and none is told apart.
            out.append(Finding(level, f"web page: {', '.join(names)} share one web token", fix))
    weak = [
        u.name
        for u in settings.users
        if u.web_token_sha256
        and u.web_token_sha256.lower()
        in {hashlib.sha256(g.encode("utf-8")).hexdigest() for g in _guesses(u)}
    ]
    if weak:
        # Which weak word it is stays unsaid: the report is a log, the token a secret.
        out.append(
            Finding(
                level,
                f"web page: the web token of {', '.join(weak)} is a well-known weak one "
                "(a common password, a run of digits, or the user's own name)",
                fix,
            )
        )
    return out
