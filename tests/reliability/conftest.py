"""The figures of a reliability run, printed at its end (docs/reliability.md quotes them).

Tests append lines to the ``figures`` fixture (kill cycles, requests
acknowledged and done, fault cases) and count their hypothesis examples with
:func:`count_example`; ``pytest_terminal_summary`` prints it all.
"""

from __future__ import annotations

from collections import Counter

import pytest

FIGURES: list[str] = []
EXAMPLES: Counter[str] = Counter()


def count_example(name: str) -> None:
    """One hypothesis example of ``name`` ran (counted for the summary)."""
    EXAMPLES[name] += 1


@pytest.fixture
def figures() -> list[str]:
    return FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES and not EXAMPLES:
        return
    terminalreporter.section("reliability figures")
    for line in FIGURES:
        terminalreporter.write_line(line)
    if EXAMPLES:
        total = sum(EXAMPLES.values())
        terminalreporter.write_line(f"hypothesis examples run: {total}")
        for name, n in sorted(EXAMPLES.items()):
            terminalreporter.write_line(f"  {name}: {n}")
