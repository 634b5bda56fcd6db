"""The live-cases chart as server-rendered SVG: stacked bars, age bucket × state.

No JavaScript and no chart library: a ``viewBox`` makes it scale to any
width; each segment has a ``<title>`` (a tooltip and a screen-reader text);
the numbers are also in a table next to it.
"""

from __future__ import annotations

import html

from markupsafe import Markup

from adapters.web.views import AgeChart
from bot.domain import STATE_LABELS, State
from bot.i18n import _

COLORS: dict[State, str] = {
    State.OPEN: "#d9480f",
    State.REOPENED: "#e8590c",
    State.IN_PROGRESS: "#1c7ed6",
    State.ESCALATED: "#7048e8",
    State.RESOLVED: "#f59f00",
    State.CUSTOMER_INFORMED: "#2f9e44",
    State.CLOSED: "#868e96",
    State.CANCELLED: "#adb5bd",
}

WIDTH = 640
HEIGHT = 280
LEFT, RIGHT, TOP, BOTTOM = 40, 12, 16, 64


def _nice_max(n: int) -> int:
    for step in (4, 8, 12, 20, 40, 60, 100, 200, 400, 1000):
        if n <= step:
            return step
    return ((n // 1000) + 1) * 1000


def age_chart_svg(chart: AgeChart) -> Markup:
    """The chart as an inline ``<svg>`` element (every text escaped)."""
    e = html.escape
    totals = [sum(row) for row in chart.counts]
    top = _nice_max(max(totals, default=0) or 1)
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(chart.buckets))
    bar_w = slot * 0.6
    summary = _("Live cases by age and state: {n} in all").format(n=chart.total)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{e(summary)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{e(summary)}</title>",
    ]
    for i in range(5):  # grid lines and the y axis labels
        value = top * i // 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#dee2e6" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#495057">{value}</text>'
        )
    for b, label in enumerate(chart.buckets):
        x = LEFT + slot * b + (slot - bar_w) / 2
        y = TOP + plot_h
        for s, state in enumerate(chart.states):
            n = chart.counts[b][s]
            if not n:
                continue
            h = plot_h * n / top
            y -= h
            tip = _("{n} {state}, {age} old").format(n=n, state=_(STATE_LABELS[state]), age=label)
            parts.append(
                f'<rect class="seg seg-{state.value}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" fill="{COLORS[state]}">'
                f"<title>{e(tip)}</title></rect>"
            )
        if totals[b]:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" '
                f'font-size="11" fill="#212529">{totals[b]}</text>'
            )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" '
            f'font-size="11" fill="#495057">{e(label)}</text>'
        )
    # The legend, in rows under the axis labels.
    lx, ly = LEFT, HEIGHT - 28
    for state in chart.states:
        name = _(STATE_LABELS[state])
        width = 18 + 6.2 * len(name) + 14
        if lx + width > WIDTH - RIGHT:
            lx, ly = LEFT, ly + 14
        parts.append(
            f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{COLORS[state]}"/>'
            f'<text x="{lx + 14}" y="{ly}" font-size="11" fill="#212529">{e(name)}</text>'
        )
        lx += int(width)
    parts.append("</svg>")
    return Markup("".join(parts))  # built from escaped text and numbers only
