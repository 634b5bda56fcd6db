"""The Teams channel's own settings, read without the SDK: app types, the signing-key listing.

Both the package's ``status`` (no SDK import, cheap at start) and ``auth``
read them from here.
"""

from __future__ import annotations

# Where the channel's signing keys are listed, if not Microsoft's (tests, private clouds);
# botbuilder's own name for the setting is BotOpenIdMetadata.
OPENID_METADATA_ENV = "BOT_OPENID_METADATA"
APP_TYPES = {
    "multitenant": "MultiTenant",
    "singletenant": "SingleTenant",
    "userassignedmsi": "UserAssignedMSI",
}


def openid_metadata_problem(url: str) -> str | None:
    """Why ``url`` cannot list the signing keys (None when it can).

    Whoever serves it signs the tokens the bot accepts: https, or plain http
    only to this machine (a test's fake issuer).
    """
    from bot.locality import is_loopback_url

    if url.startswith("https://") or (url.startswith("http://") and is_loopback_url(url)):
        return None
    return f"{OPENID_METADATA_ENV} must be an https URL (http only on loopback), not {url!r}"
