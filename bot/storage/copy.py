"""``billing-bot store copy --from FROM --to TO``: a whole store from one engine to another.

FROM and TO are each a TinyDB path or a ``postgresql://`` URL. Both are opened
as their owner (a store a running serve owns is refused: the copy must read a
store nobody writes). The target must be empty, or hold an unfinished copy from
the same source, which is resumed: progress is the ``store_copy`` record, written
in the same commit as each batch of documents, so a copy killed at any point
goes on from its last batch. Every table is copied in key order (cases with the
archived ones), then verified — the count of every table, a checksum of every
case, one of every other table — and the progress record dropped. Documents are
copied as they are, versions included.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.i18n import _, ngettext
from bot.storage.engine import Doc, Engine, Op, StorageError, declare_tables, known_tables

COPY_TABLE = declare_tables("store_copy")[0]
_PROGRESS = "progress"
READ_BATCH = 1000  # documents read per Engine.get_many


def table_names(engine: Engine) -> list[str]:
    """Every table an engine holds (its own, declared ones, ones it found stored)."""
    names = dict.fromkeys(known_tables())
    hot = getattr(engine, "hot", None)
    if isinstance(hot, dict):
        names.update(dict.fromkeys(hot))
    return [n for n in names if n not in ("meta", COPY_TABLE)]


def table_keys(engine: Engine, table: str) -> list[str]:
    """The keys of ``table`` in copy order (sorted); for ``cases`` the archived ones too."""
    keys = set(engine.view(table))
    if table == "cases":
        keys.update(str(s.number) for s in list(engine.archived()))
    return sorted(keys)


async def table_batches(
    engine: Engine, table: str, keys: list[str], size: int, start: int = 0
) -> AsyncIterator[tuple[int, dict[str, Doc]]]:
    """``keys[start:]`` of ``table`` a batch at a time: (index of the batch, its documents).

    One batch in memory at a time (a whole 100,000-case store in Python objects costs
    gigabytes and makes every garbage collection walk it); archived cases are read with one
    :meth:`Engine.get_many` per batch.
    """
    for i in range(start, len(keys), size):
        yield i, await engine.get_many(table, keys[i : i + size])


async def table_docs(engine: Engine, table: str) -> dict[str, Doc]:
    """Every document of ``table``; for ``cases`` the archived ones too."""
    docs: dict[str, Doc] = {}
    async for _i, batch in table_batches(engine, table, table_keys(engine, table), READ_BATCH):
        docs.update(batch)
    return docs


def digest(doc: Doc) -> str:
    """A document's checksum: SHA-256 of its canonical JSON (sorted keys)."""
    raw = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


async def contents(engine: Engine) -> dict[str, dict[str, Doc]]:
    """Everything a store holds, by table (empty tables left out)."""
    out = {}
    for table in table_names(engine):
        docs = await table_docs(engine, table)
        if docs:
            out[table] = docs
    return out


def is_empty(engine: Engine) -> bool:
    return not any(engine.view(t) for t in table_names(engine)) and not any(engine.archived())


@dataclass
class CopyReport:
    lines: list[str] = field(default_factory=list)
    resumed: bool = False


async def copy_store(
    source: Engine,
    target: Engine,
    source_name: str,
    target_name: str,
    *,
    batch: int = 500,
    say: Callable[[str], None] = lambda line: None,
) -> CopyReport:
    """Copy every document of ``source`` into ``target`` (both open); see the module doc."""
    report = CopyReport()

    def tell(line: str) -> None:
        report.lines.append(line)
        say(line)

    started = time.monotonic()
    # Every table the source holds, also one a flow this process did not load declared:
    # the target keeps it as the source does.
    declare_tables(*(t for t in table_names(source) if t.isidentifier()))
    progress = target.peek(COPY_TABLE, _PROGRESS)
    if progress is not None:
        if progress.get("source") != source_name:
            raise StorageError(
                f"{target_name} holds an unfinished copy from {progress.get('source')}, "
                f"not from {source_name}: finish that copy, or copy into an empty store"
            )
        report.resumed = True
        tell(
            f"resuming the unfinished copy from {source_name} "
            f"(at table {progress.get('table')}, {progress.get('done', 0)} documents)"
        )
    elif not is_empty(target):
        raise StorageError(
            f"{target_name} already holds data; store copy writes only into an empty store "
            "(or resumes an unfinished copy from the same source)"
        )
    else:
        await target.commit([Op(COPY_TABLE, _PROGRESS, _progress(source_name, "", 0), expect=None)])
    files = await _copy_files(source, target, tell)
    tables = table_names(source)
    resume_table = progress.get("table", "") if progress else ""
    resume_done = int(progress.get("done", 0)) if progress else 0
    skipping = bool(resume_table)
    keys: dict[str, list[str]] = {}
    for table in tables:
        keys[table] = table_keys(source, table)
        if skipping:
            if table != resume_table:
                continue  # copied before the interruption
            skipping = False
            start = resume_done
        else:
            start = 0
        async for i, docs in table_batches(source, table, keys[table], batch, start):
            chunk = keys[table][i : i + batch]
            # get_many's documents are fresh copies: handed over, not copied once more.
            ops = [Op(table, key, docs[key], handed_over=True) for key in chunk if key in docs]
            done = i + len(chunk)
            ops.append(Op(COPY_TABLE, _PROGRESS, _progress(source_name, table, done)))
            await target.commit(ops)
        if not keys[table]:
            continue
        done = len(keys[table])
        await target.commit([Op(COPY_TABLE, _PROGRESS, _progress(source_name, table, done))])
    counts = {table: len(k) for table, k in keys.items()}
    await _verify(source, target, keys, tell)
    missing = [f for f in files if not await target.has_blob(f)]
    if missing:
        raise StorageError(f"files missing in the copy: {len(missing)} (first: {missing[0]})")
    await target.commit([Op(COPY_TABLE, _PROGRESS, None)])
    total = sum(counts.values())
    copied = ngettext(
        "copied {n} document from {source} to {target} in {seconds} s: ",
        "copied {n} documents from {source} to {target} in {seconds} s: ",
        total,
    ).format(
        n=total, source=source_name, target=target_name, seconds=f"{time.monotonic() - started:.1f}"
    )
    tell(copied + ", ".join(f"{t}: {n}" for t, n in counts.items() if n))
    return report


def stored_files(cases: dict[str, Doc]) -> list[str]:
    """The ids of every file (blob) the cases' attachments keep in the store, sorted."""
    ids = {
        str(a["id"])
        for doc in cases.values()
        for a in doc.get("attachments") or []
        if isinstance(a, dict) and a.get("stored")
    }
    return sorted(ids)


async def _copy_files(source: Engine, target: Engine, tell: Callable[[str], None]) -> list[str]:
    """Copy every file a case names (idempotent: a resumed copy puts them again)."""
    files = stored_files(await table_docs(source, "cases"))
    copied = []
    for file_id in files:
        data = await source.get_blob(file_id)
        if data is None:
            tell(f"file {file_id} is named by a case but missing in the source; not copied")
            continue
        await target.put_blob(file_id, data)
        copied.append(file_id)
    if copied:
        tell(f"files copied (attachments): {len(copied)}")
    return copied


def _progress(source: str, table: str, done: int) -> Doc:
    return {"source": source, "table": table, "done": done}


async def _verify(
    source: Engine,
    target: Engine,
    copied: dict[str, list[str]],
    tell: Callable[[str], None],
) -> None:
    """Counts per table, every case's checksum, one checksum of every other table; a batch
    of keys at a time from both stores."""
    problems: list[str] = []
    for table, keys in copied.items():
        want_keys = table_keys(source, table)
        got_keys = table_keys(target, table)
        if want_keys != keys:
            problems.append(f"{table}: the source changed during the copy")
        if len(got_keys) != len(want_keys):
            problems.append(
                _("{table}: the target holds {got}, the source {want}").format(
                    table=table, got=len(got_keys), want=len(want_keys)
                )
            )
            continue
        bad: list[str] = []
        want_digest, got_digest = hashlib.sha256(), hashlib.sha256()
        for i in range(0, len(want_keys), READ_BATCH):
            want = await source.get_many(table, want_keys[i : i + READ_BATCH])
            got = await target.get_many(table, got_keys[i : i + READ_BATCH])
            if table == "cases":
                bad += [k for k in want if k not in got or digest(got[k]) != digest(want[k])]
            else:
                _digest_into(want_digest, want)
                _digest_into(got_digest, got)
        if table == "cases":
            if bad:
                differ = ngettext("{n} case differs", "{n} cases differ", len(bad))
                first = ", ".join(sorted(bad)[:5])
                problems.append(differ.format(n=len(bad)) + f" (first: {first})")
            else:
                verified = ngettext(
                    "verified: {n} case, its checksum equal",
                    "verified: {n} cases, each checksum equal",
                    len(want_keys),
                )
                tell(verified.format(n=len(want_keys)))
        elif want_digest.hexdigest() != got_digest.hexdigest():
            problems.append(f"{table}: checksum differs")
        elif want_keys:
            verified = ngettext(
                "verified: {table}: {n} document, checksum {digest}",
                "verified: {table}: {n} documents, checksum {digest}",
                len(want_keys),
            )
            tell(
                verified.format(table=table, n=len(want_keys), digest=want_digest.hexdigest()[:12])
            )
    if problems:
        raise StorageError("the copy does not match its source: " + "; ".join(problems))


def _digest_into(h: Any, docs: dict[str, Doc]) -> None:
    """Add a batch of a table (in key order) to the table's checksum."""
    for key in sorted(docs):
        h.update(key.encode("utf-8", "surrogatepass") + b"\0" + digest(docs[key]).encode())


def describe(where: Any) -> str:
    """A store's name in messages: its real path, or its URL without the password."""
    from bot.storage.pg_migrate import is_postgres_url, safe_url
    from bot.storage.tinydb_engine import real_store_path

    return safe_url(str(where)) if is_postgres_url(where) else str(real_store_path(where))


def _engine(where: str) -> Engine:
    from bot.storage.pg_engine import PostgresEngine
    from bot.storage.pg_migrate import is_postgres_url
    from bot.storage.tinydb_engine import TinyDBEngine

    return PostgresEngine(where) if is_postgres_url(where) else TinyDBEngine(where)


async def copy_between(
    source: str, target: str, *, batch: int = 500, say: Callable[[str], None] = print
) -> CopyReport:
    """Open both stores as their owner and copy; StorageError says why it cannot."""
    from bot.storage.tinydb_engine import StoreLocked

    src_name, dst_name = describe(source), describe(target)
    if src_name == dst_name:
        raise StorageError("store copy needs two different stores")
    src = _engine(source)
    try:
        await src.open()
    except StoreLocked as exc:
        url = exc.info.get("url")
        owner = f"the serve at {url}" if url else f"pid {exc.info.get('pid', '?')}"
        raise StorageError(
            f"the store {src_name} is in use by {owner}; stop it first: "
            "store copy reads a store nobody is writing"
        ) from exc
    try:
        dst = _engine(target)
        await dst.open()
        try:
            return await copy_store(src, dst, src_name, dst_name, batch=max(1, batch), say=say)
        finally:
            await dst.close()
    finally:
        await src.close()
