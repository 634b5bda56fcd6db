"""``docs/security.md`` states the matrix's size and names files that exist."""

from __future__ import annotations

import re
from pathlib import Path

from bot.policy import Action
from tests.security.matrix import OPERATIONS, PEOPLE, policy_coverage, total_cells

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")


def test_docs_state_the_cell_count() -> None:
    assert f"**{total_cells()} matrix cells are checked end to end**" in DOC
    assert f"{len(OPERATIONS)} operations × {len(PEOPLE)} people × 4" in DOC
    assert policy_coverage() == set(Action)  # every action of the policy is exercised


def test_every_security_test_and_named_file_exists() -> None:
    for test in sorted((ROOT / "tests" / "security").glob("test_*.py")):
        if test.name != "test_docs.py":
            assert f"`{test.name}" in DOC or f"{test.stem}" in DOC, test.name
    for path in re.findall(r"`((?:bot|adapters|conversations|tests)/[\w/.]+\.py)", DOC):
        assert (ROOT / path).is_file(), path
