"""Replies as terminal text: cards as blocks, buttons as numbered choices."""

from __future__ import annotations

from bot.kernel.model import Button, Reply
from conversations.text import plain


def render_reply(reply: Reply, numbered: list[Button]) -> str:
    """Text for one reply; its buttons are appended to ``numbered`` and shown as ``[n]``."""
    parts: list[str] = []
    if reply.text:
        parts.append(plain(reply.text))
    card = reply.card
    if card is not None:
        lines = [f"┌ {plain(card.title)}"]
        for fact in card.facts:
            lines.append(f"│ {plain(fact.label)}: {plain(fact.value)}")
        if card.history:
            lines.append("│ —")
            lines += [f"│ {plain(h)}" for h in card.history]
        lines.append("└")
        parts.append("\n".join(lines))
    buttons = list(reply.buttons) + (card.buttons if card else [])
    if buttons:
        labels = []
        for b in buttons:
            numbered.append(b)
            labels.append(f"[{len(numbered)}] {plain(b.label)}")
        parts.append("  ".join(labels))
    return "\n".join(parts)


def render_replies(replies: list[Reply]) -> tuple[str, list[Button]]:
    numbered: list[Button] = []
    text = "\n".join(t for t in (render_reply(r, numbered) for r in replies) if t)
    return text, numbered
