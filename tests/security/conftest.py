"""The security package's log recorder and matrix cell counter.

Every log record emitted while this package's tests run (any logger, from
DEBUG up) is kept in :data:`RECORDS`; ``test_zz_secrets.py`` scans them for
tokens, secrets and ``Authorization`` values. Passed matrix cells are
counted per channel and printed at the end of the run.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.security.logs import RECORDS, Recorder

CELLS: Counter[str] = Counter()


@pytest.fixture(scope="package", autouse=True)
def record_every_log() -> Iterator[list[str]]:
    root = logging.getLogger()
    handler = Recorder(logging.DEBUG)
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield RECORDS
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed and "test_matrix_" in report.nodeid:
        channel = report.nodeid.split("test_matrix_")[1].split(".py")[0]
        CELLS[channel] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if CELLS:
        per = ", ".join(f"{c} {n}" for c, n in sorted(CELLS.items()))
        terminalreporter.write_line(
            f"authorization matrix: {sum(CELLS.values())} cells checked end to end ({per})"
        )
