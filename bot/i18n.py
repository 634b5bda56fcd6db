"""The message catalog: every user-facing string goes through ``_()``.

Strings are gettext message ids with *named* placeholders, formatted by the
caller with ``.format(name=...)`` (never concatenated), so a translation can
move the placeholders around. The active locale is a context variable set
per incoming message, so concurrent conversations in different languages do
not interfere. English is the source language; compiled catalogs for other
locales live in ``bot/locale/<lang>/LC_MESSAGES/billing-bot.mo``.
"""

from __future__ import annotations

import gettext
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path

DOMAIN = "billing-bot"
LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT_LOCALE = "en"
SUPPORTED_LOCALES = ("en", "zh_CN")

_current: ContextVar[str] = ContextVar("billing_bot_locale", default=DEFAULT_LOCALE)


def normalize_locale(value: str | None) -> str:
    """Map a platform locale (``zh-CN``, ``zh_Hans``, ``en-US``, ``zh``) to a supported one."""
    if not value:
        return DEFAULT_LOCALE
    v = value.replace("-", "_").lower()
    if v.startswith("zh"):
        return "zh_CN"
    return DEFAULT_LOCALE


@lru_cache(maxsize=8)
def _translations(locale: str) -> gettext.NullTranslations:
    return gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[locale], fallback=True)


def current_locale() -> str:
    """The locale replies are rendered in right now."""
    return _current.get()


@contextmanager
def use_locale(locale: str | None) -> Iterator[str]:
    """Render everything inside the block in ``locale``."""
    token = _current.set(normalize_locale(locale))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def _(message: str) -> str:
    """Translate ``message`` into the current locale."""
    return _translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """Translate with plural forms; the caller formats ``{n}`` in."""
    return _translations(_current.get()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark ``message`` for extraction without translating it now."""
    return message
