"""The figures of a reliability run (docs/reliability.md quotes them), printed at its end.

Tests append lines to :data:`FIGURES` (kill cycles, requests acknowledged and
done), name each injected fault with :func:`fault_case` and count their
hypothesis examples with :func:`count_example`; the ``pytest_terminal_summary``
hook in ``conftest.py`` prints it all. (A plain module, so that tests and the
conftest share one copy whatever name pytest imports the conftest under.)
"""

from __future__ import annotations

from collections import Counter

FIGURES: list[str] = []
EXAMPLES: Counter[str] = Counter()
FAULTS: list[str] = []


def fault_case(name: str) -> None:
    """A dependency fault was injected and the bot's answer checked (listed in the summary)."""
    FAULTS.append(name)


def count_example(name: str) -> None:
    """One hypothesis example of ``name`` ran (counted for the summary)."""
    EXAMPLES[name] += 1


def summary() -> list[str]:
    """The lines the terminal summary shows."""
    lines = list(FIGURES)
    if FAULTS:
        lines.append(f"fault cases tried: {len(FAULTS)}")
        lines += [f"  {name}" for name in FAULTS]
    if EXAMPLES:
        lines.append(f"hypothesis examples run: {sum(EXAMPLES.values())}")
        lines += [f"  {name}: {n}" for name, n in sorted(EXAMPLES.items())]
    return lines
