"""The message catalog: every user-facing string goes through ``_()``.

Strings are gettext message ids with *named* placeholders, formatted by the
caller with ``.format(name=...)`` (never concatenated), so a translation can
move the placeholders around. The active locale is a context variable set
per incoming message, so concurrent conversations in different languages do
not interfere.

English is the source language. Translations live in
``bot/locale/<lang>/LC_MESSAGES/billing-bot.po``; they are compiled to ``.mo``
by ``make`` (``python -m bot.i18n compile``) and, if a ``.mo`` is missing or
older than its ``.po`` (a plain ``pip install``), on first use into a cache
directory. Dates, times and amounts are formatted for the locale with Babel.
The ``pseudo`` locale marks every catalog string (``⟦…⟧``) so a test can find
text that bypasses the catalog.
"""

from __future__ import annotations

import gettext
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from bot.workhours import zone_or_utc

log = logging.getLogger(__name__)

DOMAIN = "billing-bot"
LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT_LOCALE = "en"
SUPPORTED_LOCALES = ("en", "zh_CN")
PSEUDO = "pseudo"
PSEUDO_OPEN, PSEUDO_CLOSE = "⟦", "⟧"

_current: ContextVar[str] = ContextVar("billing_bot_locale", default=DEFAULT_LOCALE)


def normalize_locale(value: str | None) -> str:
    """Map a platform locale (``zh-CN``, ``zh_Hans``, ``en-US``, ``zh``) to a supported one."""
    if not value:
        return DEFAULT_LOCALE
    v = value.replace("-", "_").lower()
    if v == PSEUDO:
        return PSEUDO
    if v.startswith("zh"):
        return "zh_CN"
    return DEFAULT_LOCALE


def negotiate(accept_language: str | None) -> str | None:
    """The supported locale an HTTP ``Accept-Language`` header prefers, or None.

    ``zh-CN,zh;q=0.9,en;q=0.8`` → ``zh_CN``; ``fr-FR,en;q=0.5`` → ``en``; ``fr`` → None
    (nothing we speak: the caller keeps its default).
    """
    if not accept_language:
        return None
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept_language.split(",")):
        tag, _sep, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _eq, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, i, tag.strip().lower()))
    for _q, _i, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh_CN"
        if tag == "en" or tag.startswith("en-") or tag.startswith("en_"):
            return DEFAULT_LOCALE
    return None


class _Pseudo(gettext.NullTranslations):
    """Wraps every catalog string in marks: text outside them bypassed the catalog."""

    def gettext(self, message: str) -> str:
        return f"{PSEUDO_OPEN}{message}{PSEUDO_CLOSE}"

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        return f"{PSEUDO_OPEN}{msgid1 if n == 1 else msgid2}{PSEUDO_CLOSE}"


def _mo_path(locale: str) -> Path | None:
    """The compiled catalog of ``locale``: shipped if fresh, else compiled into a cache."""
    po = LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    mo = po.with_suffix(".mo")
    if not po.exists():
        return mo if mo.exists() else None
    if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
        return mo
    try:
        return compile_catalog(po, mo)
    except OSError:
        cache = Path(tempfile.gettempdir()) / f"billing-bot-{os.getuid()}" / locale
        return compile_catalog(po, cache / f"{DOMAIN}.mo")


def compile_catalog(po: Path, mo: Path) -> Path:
    """Compile one ``.po`` file to ``.mo`` (Babel), atomically."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as fh:
        catalog = read_po(fh)
    mo.parent.mkdir(parents=True, exist_ok=True)
    tmp = mo.with_suffix(".mo.tmp")
    with tmp.open("wb") as fh:
        write_mo(fh, catalog)
    os.replace(tmp, mo)
    return mo


@lru_cache(maxsize=8)
def _translations(locale: str) -> gettext.NullTranslations:
    if locale == PSEUDO:
        return _Pseudo()
    if locale == DEFAULT_LOCALE:
        return gettext.NullTranslations()
    try:
        mo = _mo_path(locale)
    except Exception:  # noqa: BLE001 - a broken catalog must never break a reply
        log.exception("the %s catalog could not be compiled; answering in English", locale)
        return gettext.NullTranslations()
    if mo is None:
        return gettext.NullTranslations()
    with mo.open("rb") as fh:
        return gettext.GNUTranslations(fh)


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


def plural_count(shown: str) -> int:
    """The count that picks the plural form of a number already formatted as text.

    For a value that may have a fraction (``f"{minutes:g}"``, ``f"{days:.1f}"``): exactly
    ``1`` takes the singular, anything else (``2``, ``1.5``, ``1.0``, ``0``) the plural, as
    English (CLDR) does. Whole counts go to :func:`ngettext` as they are.
    """
    return 1 if shown.strip() == "1" else 2


def N_(message: str) -> str:
    """Mark ``message`` for extraction without translating it now."""
    return message


def _babel_locale() -> str:
    loc = _current.get()
    return "en" if loc in (DEFAULT_LOCALE, PSEUDO) else loc


def format_time(when: datetime, tz: str) -> str:
    """A UTC instant shown in the viewer's time zone, the way their locale writes it."""
    from babel.dates import format_datetime

    pattern = "yyyy年M月d日 HH:mm z" if _babel_locale() == "zh_CN" else "yyyy-MM-dd HH:mm z"
    return format_datetime(when, pattern, tzinfo=zone_or_utc(tz), locale=_babel_locale())


def format_date(day: date) -> str:
    """A calendar day the way the locale writes it: ``2026-11-24``, ``2026年11月24日``."""
    from babel.dates import format_date as babel_format_date

    pattern = "yyyy年M月d日" if _babel_locale() == "zh_CN" else "yyyy-MM-dd"
    return babel_format_date(day, pattern, locale=_babel_locale())


def format_days(n: int) -> str:
    """A number of whole days: ``1 day``, ``5 days``, ``5 天``."""
    return ngettext("{n} day", "{n} days", n).format(n=n)


def format_amount(amount: Decimal, currency: str) -> str:
    """``1,234.50 EUR``: digits grouped for the locale, the ISO code (no ambiguous ¥ or $)."""
    from babel.numbers import format_currency

    return format_currency(
        amount, currency, format="#,##0.00 ¤¤", locale=_babel_locale(), currency_digits=True
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m bot.i18n compile``: compile every shipped ``.po`` next to it."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["compile"]:
        print("usage: python -m bot.i18n compile", file=sys.stderr)
        return 2
    for po in sorted(LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        print(f"compiled {compile_catalog(po, po.with_suffix('.mo'))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
