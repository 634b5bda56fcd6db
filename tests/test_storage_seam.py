"""Layering: flows and adapters reach storage only through the typed ``Store`` (issue 18).

Production code outside ``bot/storage/`` never touches ``store.engine``, never
builds an ``Op`` itself and never names a table: the store's methods say what
they read and write (``store.job(key)``, ``store.queued_request_op(...)``).
Tests may still read the engine; they are not checked here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.storage import COLLECTIONS_TABLES, WEB_TABLES, known_tables

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ("bot", "adapters", "conversations")
STORAGE = ROOT / "bot" / "storage"
TABLE_READS = frozenset({"peek", "view", "scan"})  # an engine's reads by table name


def production_files() -> Iterator[Path]:
    for top in PRODUCTION:
        for path in sorted((ROOT / top).rglob("*.py")):
            if STORAGE not in path.parents:
                yield path


def table_names() -> frozenset[str]:
    return frozenset(known_tables()) | frozenset(COLLECTIONS_TABLES) | frozenset(WEB_TABLES)


def violations(source: str, tables: frozenset[str]) -> list[str]:
    """What in ``source`` reaches past the Store: ``.engine``, ``Op(...)``, a table name read."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == "engine":
            found.append(f"line {node.lineno}: .engine")
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name == "Op":
            found.append(f"line {node.lineno}: Op(...) built outside bot/storage")
        elif (
            isinstance(func, ast.Attribute)
            and name in TABLE_READS
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value in tables
        ):
            found.append(f"line {node.lineno}: .{name}({node.args[0].value!r}, ...)")
    if ".engine." in source:
        found.append(".engine. in the text")
    return found


def test_the_checked_files_are_the_production_code() -> None:
    files = {p.relative_to(ROOT).as_posix() for p in production_files()}
    expected = {
        "bot/kernel/runtime.py",
        "conversations/collections/state.py",
        "adapters/web/pages.py",
    }
    assert expected <= files
    assert not any(f.startswith("bot/storage/") for f in files)


@pytest.mark.parametrize(
    "snippet",
    [
        "store.engine.peek('events', key)",
        "engine = runtime.store.engine",
        "ops = [Op('jobs', key, None)]",
        "ops = [storage.Op(table, key, None)]",
        "doc = store.peek('receivables', key)",
        "docs = thing.view('inbox')",
        "docs = await db.scan('cases')",
    ],
)
def test_the_check_catches_each_way_past_the_store(snippet: str) -> None:
    assert violations(snippet, table_names())


def test_the_check_lets_typed_store_calls_and_dicts_through() -> None:
    ok = "\n".join(
        [
            "job = store.job(loop_key(n))",
            "ops = [store.job_op(key, None), Store.case_op(case)]",
            "users = data.get('users', [])",
            "ids = dict(doc.get('identities', {}))",
        ]
    )
    assert violations(ok, table_names()) == []


def test_production_code_reaches_storage_only_through_the_store() -> None:
    tables = table_names()
    problems = [
        f"{path.relative_to(ROOT)}: {what}"
        for path in production_files()
        for what in violations(path.read_text(encoding="utf-8"), tables)
    ]
    assert problems == [], "\n".join(problems)
