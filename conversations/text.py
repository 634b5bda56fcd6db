"""Marking text that people typed, so every adapter can escape exactly that.

Flows wrap user-typed text (descriptions, notes, names) with :func:`u`.
The marks are two private-use characters, removed from all incoming text,
so nobody can forge them. Each adapter renders with its own escaping:
Slack escapes ``&``, ``<``, ``>`` (no ``<!channel>`` pings, no forged links),
Teams neutralises markdown, the terminal just drops the marks.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

START = "\ue000"
END = "\ue001"
_MARKED = re.compile(f"{START}(.*?){END}", re.DOTALL)
_CONTROL = {c for c in map(chr, range(32)) if c not in "\n\t"} | {"\x7f"}


def clean_input(text: str) -> str:
    """Incoming text, minus our marks and control characters (newlines and tabs kept)."""
    if not text:
        return ""
    out = []
    for ch in text:
        if ch in (START, END) or ch in _CONTROL:
            continue
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def u(text: object) -> str:
    """Mark ``text`` as typed by a person."""
    return f"{START}{text}{END}"


def render(text: str, escape: Callable[[str], str]) -> str:
    """Apply ``escape`` to the marked parts and drop the marks."""
    return _MARKED.sub(lambda m: escape(m.group(1)), text).replace(START, "").replace(END, "")


def plain(text: str) -> str:
    """The text with the marks dropped and nothing escaped (terminal, logs, tests)."""
    return text.replace(START, "").replace(END, "")
