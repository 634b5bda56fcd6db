"""``billing-bot doctor``: check a deployment's settings and say what to fix.

Each check gives a level (ok, warn, error) and, when something is wrong,
one sentence on how to fix it. Secrets are reported as set or not set, never
printed.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from bot.config import Settings


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
            out.append(Finding("ok", f"web page: {len(tokens)} user(s) can log in with a token"))
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
    db = Path(settings.db_path)
    if db.parent.exists():
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


def report(findings: list[Finding]) -> tuple[str, int]:
    marks = {"ok": "ok  ", "warn": "warn", "error": "FIX "}
    lines = []
    for f in findings:
        line = f"[{marks[f.level]}] {f.what}"
        if f.fix:
            line += f" — fix: {f.fix}"
        lines.append(line)
    errors = sum(1 for f in findings if f.level == "error")
    lines.append(f"{errors} problem(s) to fix." if errors else "All good.")
    return "\n".join(lines), 1 if errors else 0
