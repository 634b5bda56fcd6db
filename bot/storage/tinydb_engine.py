"""The durable engine: a TinyDB snapshot, a write-ahead journal, and an append-only archive.

TinyDB's JSON storage rewrites the whole file in place on every write, which
is neither crash-safe nor fast at 100,000 cases. This engine keeps TinyDB's
file format for the *snapshot* of the live data and adds what it lacks:

``<stem>.json``        TinyDB file (one table per kind, documents carry ``_key``):
                       the live cases and everything else, as of journal ``seq``.
                       Written atomically (temp file, fsync, rename, fsync dir)
                       through :class:`DurableJSONStorage`, a TinyDB ``Storage``.
``<stem>.journal``     one JSON line per commit, fsynced before the commit returns
                       (group commit: concurrent writers share one fsync), ending
                       in the CRC32 of the rest (``,"crc":"<8 hex>"}``; lines of
                       older versions have none and still load). Bytes after the
                       last newline are a torn, unacknowledged write and are
                       dropped on load; any other damage stops the load (see
                       :func:`scan_journal`, ``billing-bot store check|repair``).
``<stem>.archive.jsonl`` finished cases (closed, cancelled), appended at compaction;
``<stem>.archive.idx``   their byte offsets and list summaries, appended too, so a
                       read by id is one ``pread`` however large the archive.
``<stem>.lock``        the OS file lock: one owner process per store.
``<stem>.files/``      blobs (attachments' bytes), one file per blob named by its SHA-256;
                       each written to a temp file, fsynced, renamed, the folder fsynced,
                       before the document naming it is committed. A temp file left by a
                       crash is removed at open.

All of these are named after the store's real path (symlinks resolved), so
two names for one store share one lock.

All data that requests touch stays in memory; the archive is read per case.
Compaction (snapshot + archive + journal reset) runs in the background and at
close. It runs when the journal has grown to ``compact_bytes`` (16 MiB) or to
twice the last snapshot, whichever is larger, or to ``compact_every`` commits
(100,000): each compaction rewrites the whole live data, so tying it to the
journal's bytes keeps that cost a bounded share of what was written (the
journal is at most ~2/3 of what reaches the disk), while the journal a start
replays stays bounded too (~0.3 s for 16 MiB).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import zlib
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage

from bot.i18n import ngettext
from bot.storage.engine import (
    ARCHIVED,
    CORE_TABLES,
    CaseSummary,
    Doc,
    Engine,
    Op,
    StorageError,
    blob_digest,
    check_digest,
    check_expectations,
    declared_table,
    known_tables,
    summarize,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

# schema_version -> function upgrading the snapshot's tables dict in place to version + 1.
MIGRATIONS: dict[int, Callable[[dict[str, dict[str, Doc]]], None]] = {}

COMPACT_BYTES = 16 * 2**20  # journal bytes that make a compaction due (at least)


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode(value: Any) -> bytes:
    """The one JSON form of the journal, snapshot and archive (compact, UTF-8)."""
    return _ENCODER.encode(value).encode()


def snapshot_row(encoded_doc: bytes, encoded_key: bytes) -> bytes:
    """A document as a TinyDB row: its JSON with ``"_key"`` added as the last member."""
    tail = b'"_key":' + encoded_key + b"}"
    return b"{" + tail if encoded_doc == b"{}" else encoded_doc[:-1] + b"," + tail


_CRC_SUFFIX = len(b',"crc":"00000000"}')


def journal_line(seq: int, rows: bytes) -> bytes:
    """One journal line: ``{"seq":N,"ops":[ROWS],"crc":"<hex>"}`` and a newline.

    The CRC32 covers ``{"seq":N,"ops":[ROWS]}`` (the line without its checksum
    member): a complete line whose bytes changed after the write, even where
    they still parse, is found as damage instead of replayed.
    """
    body = b'{"seq":%d,"ops":[%s]}' % (seq, rows)
    return body[:-1] + b',"crc":"%08x"}\n' % zlib.crc32(body)


@dataclass(frozen=True)
class JournalLine:
    """A line of the journal as :func:`scan_journal` found it.

    ``problem`` is None for a good line (then ``seq`` and ``ops`` hold what it
    says); ``torn`` marks bytes after the last newline: a write that was never
    acknowledged.
    """

    number: int  # 1-based
    offset: int  # of its first byte in the journal
    length: int  # bytes, with the newline
    seq: int = 0
    ops: tuple[tuple[str, str, Doc | None], ...] = ()
    problem: str | None = None
    torn: bool = False


def parse_journal_line(
    line: bytes, tables: Container[str] | None = None
) -> tuple[int, tuple[tuple[str, str, Doc | None], ...]]:
    """``(seq, ops)`` of one complete journal line; ValueError says what is wrong with it.

    ``tables``: the table names an op may name (default: :func:`known_tables`).
    """
    if tables is None:
        tables = known_tables()
    try:
        entry = json.loads(line)
    except ValueError as exc:  # UnicodeDecodeError included
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(entry, dict):
        raise ValueError(f"a JSON {type(entry).__name__}, not an object")
    if "crc" in entry:
        crc = entry["crc"]
        tail = b',"crc":"%s"}' % str(crc).encode()
        if not (isinstance(crc, str) and len(tail) == _CRC_SUFFIX and line.endswith(tail)):
            raise ValueError("the checksum member is malformed")
        if f"{zlib.crc32(line[:-_CRC_SUFFIX] + b'}'):08x}" != crc:
            raise ValueError("checksum mismatch: the line changed after it was written")
    if set(entry) - {"crc"} != {"seq", "ops"}:
        raise ValueError(f"members {sorted(entry)}, expected seq and ops")
    seq, ops = entry["seq"], entry["ops"]
    if type(seq) is not int or seq < 1:
        raise ValueError(f"seq {seq!r} is not a whole number from 1 up")
    if not isinstance(ops, list):
        raise ValueError(f"ops is a JSON {type(ops).__name__}, not a list")
    out: list[tuple[str, str, Doc | None]] = []
    for n, op in enumerate(ops, 1):
        if not (isinstance(op, list) and len(op) == 3):
            raise ValueError(f"op {n} is not [table, key, document]")
        table, key, doc = op
        if table not in tables:
            raise ValueError(f"op {n} names an unknown table {table!r}")
        if not isinstance(key, str):
            raise ValueError(f"op {n} has a key that is not a string")
        if doc is not None and not isinstance(doc, dict):
            raise ValueError(f"op {n} has a document that is not an object or null")
        out.append((table, key, doc))
    return seq, tuple(out)


def scan_journal(raw: bytes, tables: Container[str] | None = None) -> Iterator[JournalLine]:
    """Every line of a journal's bytes, good or not, and a torn tail last if there is one.

    Only the bytes after the last newline can be a torn write (the newline is
    the last byte of every append). Every newline-terminated line was complete
    once, so anything wrong with it is damage: not JSON, the wrong shape, a
    checksum mismatch, or a ``seq`` not above the good line before it (seqs only
    grow within a journal).
    """
    offset = 0
    number = 0
    previous = 0
    size = len(raw)
    while offset < size:
        number += 1
        end = raw.find(b"\n", offset)
        if end < 0:
            yield JournalLine(number, offset, size - offset, torn=True)
            return
        line = raw[offset:end]
        length = end + 1 - offset
        try:
            seq, ops = parse_journal_line(line, tables)
            if seq <= previous:
                raise ValueError(f"seq {seq} does not follow seq {previous} of an earlier line")
        except ValueError as exc:
            yield JournalLine(number, offset, length, problem=str(exc))
        else:
            previous = seq
            yield JournalLine(number, offset, length, seq, ops)
        offset = end + 1


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, payload: bytes) -> None:
    """Write every byte of ``payload`` at the file's position (``os.write`` may write less)."""
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view) :]


def cut_to(path: Path, size: int) -> None:
    """Cut a file back to ``size`` bytes and make that durable (a torn tail, dropped)."""
    with open(path, "r+b") as fh:
        fh.truncate(size)
        os.fsync(fh.fileno())


class DurableJSONStorage(Storage):
    """A TinyDB storage that writes atomically and durably (temp, fsync, rename, fsync dir)."""

    def __init__(self, path: str | os.PathLike[str], **_: Any) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            with self.path.open("rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            return None
        if not raw.strip():
            return None
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("top level is not an object")
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self.write_bytes(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode())

    def write_bytes(self, payload: bytes) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            write_all(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)

    def close(self) -> None:
        return None


def open_tinydb(path: str | os.PathLike[str]) -> TinyDB:
    """Open a store's snapshot with plain TinyDB, e.g. for inspection or export."""
    return TinyDB(path, storage=DurableJSONStorage)


@dataclass
class _Batch:
    lines: list[bytes] = field(default_factory=list)
    undo: list[tuple[str, str, Doc | None]] = field(default_factory=list)
    keys: set[tuple[str, str]] = field(default_factory=set)
    future: asyncio.Future[None] | None = None


class StoreLocked(StorageError):
    """Another process owns this store; ``info`` is what the owner said of itself (pid, url)."""

    def __init__(self, message: str, *, info: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.info: dict[str, Any] = dict(info or {})


class StoreUnavailable(StorageError):
    """The operating system refused a file of the store at open (full disk, not a directory…).

    The message names the store and the OS error, and reads on its own:
    ``cannot open the store PATH: [Errno 28] No space left on device: 'FILE'``.
    """


def real_store_path(path: str | os.PathLike[str]) -> Path:
    """The store's real path: symlinks resolved, so that one store has one lock."""
    return Path(os.path.realpath(path))


def store_files(path: Path) -> dict[str, Path]:
    """The files of the store at ``path`` (already resolved), by role."""
    stem = path.with_suffix("") if path.suffix == ".json" else path
    return {
        "snapshot": path,
        "journal": stem.with_name(stem.name + ".journal"),
        "archive": stem.with_name(stem.name + ".archive.jsonl"),
        "index": stem.with_name(stem.name + ".archive.idx"),
        "lock": stem.with_name(stem.name + ".lock"),
        "files": stem.with_name(stem.name + ".files"),
    }


def parse_snapshot(
    data: dict[str, Any] | None,
    tables: Iterable[str] | None = None,
) -> tuple[int, int, dict[str, dict[str, Doc]]]:
    """``(schema_version, seq, tables)`` of a snapshot as read (None: a new store).

    ``tables`` (default :func:`known_tables`) are always in the result, empty if
    the snapshot lacks them; every other table the snapshot holds is kept too:
    a table a flow declares is never dropped by a process that did not load the
    flow. Raises AttributeError, TypeError or ValueError when its shape is wrong.
    """
    fresh = data is None
    data = data or {}
    meta: dict[str, Any] = next(iter(data.get("meta", {}).values()), {})
    version = int(meta.get("schema_version", SCHEMA_VERSION if fresh else 1))
    seq = int(meta.get("seq", 0))
    names = dict.fromkeys(known_tables() if tables is None else tables) | dict.fromkeys(data)
    out = {t: _keyed(data.get(t, {})) for t in names if t != "meta"}
    return version, seq, out


def _keyed(table: dict[str, Doc]) -> dict[str, Doc]:
    out: dict[str, Doc] = {}
    for doc in table.values():
        if not isinstance(doc, dict):
            raise TypeError(f"a document is a {type(doc).__name__}, not an object")
        key = doc.pop("_key", None)
        if key is not None:
            out[str(key)] = doc
    return out


class TinyDBEngine(Engine):
    """Durable storage on TinyDB files; see the module docstring for the layout."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        compact_every: int = 100_000,
        compact_bytes: int = COMPACT_BYTES,
        tables: Iterable[str] | None = None,
    ) -> None:
        """``tables``: the flow tables to keep besides the store's own (default: every
        declared one, see :func:`bot.storage.engine.declare_tables`)."""
        super().__init__()
        # The real path: through a symlink (to the file or a directory) a second name
        # would get its own lock, and a snapshot renamed onto the link would split the store.
        self.path = real_store_path(path)
        files = store_files(self.path)
        self.journal_path = files["journal"]
        self.archive_path = files["archive"]
        self.index_path = files["index"]
        self.lock_path = files["lock"]
        self.files_path = files["files"]
        self.compact_every = compact_every
        self.compact_bytes = compact_bytes
        self._snapshot_size = 0
        self._tables = known_tables() if tables is None else (*CORE_TABLES, *tables)
        self.hot: dict[str, dict[str, Doc]] = {t: {} for t in self._tables}
        # Each document's snapshot row as last written (valid while the doc is the same
        # object): a snapshot joins these instead of encoding the live data again.
        self._rows: dict[str, dict[str, tuple[Doc, bytes]]] = {t: {} for t in self._tables}
        self.index: dict[int, tuple[int, int, CaseSummary]] = {}
        self._index_states: dict[str, int] = {}  # archived cases in the index, per state
        self.seq = 0
        self._snapshot_seq = 0
        self._journal_lines = 0
        self._journal_fd: int | None = None
        self._journal_good_size = 0
        self._archive_fd: int | None = None
        self._archive_size = 0
        self._lock_fd: int | None = None
        self._pending = _Batch()
        self._inflight: _Batch | None = None
        self._dirty: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._wake: asyncio.Event | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False
        self.last_error: str | None = None
        self._storage = DurableJSONStorage(self.path)

    # ---- open / close ---------------------------------------------------
    async def open(self) -> None:
        await asyncio.to_thread(self._open_sync)
        self._wake = asyncio.Event()
        self._flusher = asyncio.create_task(self._flush_loop(), name="storage-flusher")

    def _open_sync(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._acquire_lock()
            try:
                self._load()
                self._drop_blob_temps()
            except BaseException:
                self._close_files()
                raise
        except OSError as exc:
            # Said as a store problem: callers must not take it for, say, a bind failure.
            raise StoreUnavailable(f"cannot open the store {self.path}: {exc}") from exc

    def _acquire_lock(self) -> None:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            owner = read_lock_info(self.lock_path)
            pid = owner.get("pid", "?")
            raise StoreLocked(
                f"the store {self.path} is in use by another billing-bot (pid {pid}); "
                "stop it first, or use BOT_DB to point at another store",
                info=owner,
            ) from exc
        self._lock_fd = fd
        self.set_lock_info({})

    def set_lock_info(self, info: dict[str, Any]) -> None:
        """Record who owns the store (pid, and the serve URL for ``billing-bot chat``)."""
        if self._lock_fd is None:
            return
        payload = json.dumps({"pid": os.getpid(), **info}).encode()
        try:
            # Write, then cut to length: never an empty lock file for a reader to find.
            os.pwrite(self._lock_fd, payload, 0)
            os.ftruncate(self._lock_fd, len(payload))
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot open the store {self.path}: writing {self.lock_path}: {exc}"
            ) from exc

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._lock_fd, 0)
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _load(self) -> None:
        try:
            data = self._storage.read()
        except (ValueError, UnicodeDecodeError) as exc:
            raise self._damaged(exc) from exc
        fresh = data is None
        if fresh and (self._nonempty(self.journal_path) or self._nonempty(self.archive_path)):
            # No snapshot yet is a new store, unless data already sits beside it.
            raise StorageError(
                f"the store file {self.path} is missing or empty, but its journal or "
                "archive holds data; billing-bot will not start over on top of them: "
                "restore the file from a backup or move the store away"
            )
        try:
            version, seq, tables = parse_snapshot(data, self._tables)
        except (AttributeError, TypeError, ValueError) as exc:
            raise self._damaged(exc) from exc
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"the store {self.path} was written by a newer billing-bot "
                f"(schema {version}, this one knows {SCHEMA_VERSION})"
            )
        while version < SCHEMA_VERSION:
            MIGRATIONS[version](tables)
            version += 1
        for name, docs in tables.items():
            self.hot[name] = docs
            self._rows.setdefault(name, {})
        self._snapshot_seq = self.seq = seq
        self._replay_journal()
        self._load_archive()
        for name, docs in self.hot.items():  # encode now (off the event loop), not at compaction
            for key, doc in docs.items():
                self._snapshot_row(name, key, doc)
        self._journal_fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._journal_good_size = os.fstat(self._journal_fd).st_size
        self._archive_fd = os.open(self.archive_path, os.O_RDWR | os.O_CREAT, 0o600)
        if fresh:
            self._write_snapshot(self._snapshot_bytes(self.seq, set()))  # also syncs the dir
        else:
            self._snapshot_size = os.stat(self.path).st_size
            fsync_dir(self.path.parent)  # the journal may just have been created

    def _damaged(self, exc: Exception) -> StorageError:
        return StorageError(
            f"the store file {self.path} is damaged ({exc}); billing-bot will not "
            "overwrite it: restore it from a backup or move it away"
        )

    @staticmethod
    def _nonempty(path: Path) -> bool:
        try:
            return path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def _replay_journal(self) -> None:
        try:
            raw = self.journal_path.read_bytes()
        except FileNotFoundError:
            return
        for line in scan_journal(raw, self._journal_tables()):
            if line.torn:
                log.warning(
                    "dropping a torn journal line (a write never acknowledged) at the end of %s",
                    self.journal_path,
                )
                cut_to(self.journal_path, line.offset)
                break
            if line.problem is not None:
                # A complete line was an acknowledged write: dropping it would lose it.
                raise StorageError(
                    f"the journal {self.journal_path} is damaged at line {line.number} "
                    f"({line.problem}); billing-bot will not drop or overwrite an acknowledged "
                    "write: `billing-bot store check` lists every damaged line, `billing-bot "
                    "store repair --to NEW.json` writes a copy with every good line (then point "
                    "BOT_DB at it), or restore the store from a backup"
                )
            self._journal_lines += 1
            if line.seq <= self._snapshot_seq:
                continue  # already in the snapshot (a crash between its rename and the reset)
            for table, key, doc in line.ops:
                if doc is None:
                    self._table(table).pop(key, None)
                else:
                    self._table(table)[key] = doc
            self.seq = max(self.seq, line.seq)

    def _journal_tables(self) -> set[str]:
        """The tables a journal line may name: this engine's (its snapshot's too), declared ones."""
        return set(self.hot) | set(known_tables())

    def _table(self, name: str) -> dict[str, Doc]:
        """A table by name; one declared after this engine was made is added now."""
        try:
            return self.hot[name]
        except KeyError:
            table = declared_table(self.hot, name)
            self._rows.setdefault(name, {})
            return table

    def _load_archive(self) -> None:
        """Load the archive index; repair what a crash (or a full disk) can leave behind.

        The index is derived data: a torn last row is cut off, a damaged row makes
        the whole index be rebuilt from the archive, and archive lines past the
        index (a crash between the two appends) are indexed. A torn archive tail
        is cut off: the snapshot still holds those cases, as the crash came before
        it was rewritten.
        """
        rebuild = False
        good = 0
        index_size = 0
        try:
            with self.index_path.open("rb") as fh:
                for line in fh:
                    index_size += len(line)
                    if not line.endswith(b"\n"):
                        break  # torn last row
                    try:
                        number, off, length, state, owner, customer, updated, kind = json.loads(
                            line
                        )
                        summary = CaseSummary(int(number), state, owner, customer, updated, kind)
                        self._set_index(int(number), (int(off), int(length), summary))
                    except (ValueError, TypeError) as exc:
                        log.warning(
                            "rebuilding the damaged archive index %s (%s)", self.index_path, exc
                        )
                        rebuild = True
                        break
                    good += len(line)
                index_size = fh.seek(0, os.SEEK_END)
        except FileNotFoundError:
            pass
        try:
            size = self.archive_path.stat().st_size
        except FileNotFoundError:
            size = 0
        covered = max((off + length for off, length, _s in self.index.values()), default=0)
        if covered > size:
            log.warning("the archive index %s points past the archive: rebuilding", self.index_path)
            rebuild = True
        if rebuild:
            self.index.clear()
            self._index_states.clear()
            covered = 0
        rows: list[bytes] = []
        if size > covered:
            with self.archive_path.open("rb") as fh:
                fh.seek(covered)
                off = covered
                for line in fh:
                    if not line.endswith(b"\n"):
                        break
                    try:
                        doc = json.loads(line)
                        row = self._index_line(doc, off, len(line))
                    except (ValueError, TypeError, KeyError):
                        break
                    rows.append(row)
                    self._index_doc(doc, off, len(line))
                    off += len(line)
            if off < size:
                log.warning("dropping a torn tail of the archive %s", self.archive_path)
                cut_to(self.archive_path, off)
            size = off
        self._archive_size = size
        if rebuild:
            DurableJSONStorage(self.index_path).write_bytes(b"".join(rows))
        else:
            if index_size > good:
                cut_to(self.index_path, good)  # a torn row must not glue onto the next append
            if rows:
                self._append_durably(self.index_path, b"".join(rows))

    def _index_doc(self, doc: Doc, off: int, length: int) -> None:
        self._set_index(int(doc["number"]), (off, length, summarize(doc)))

    def _set_index(self, number: int, entry: tuple[int, int, CaseSummary]) -> None:
        previous = self.index.get(number)
        if previous is not None:
            self._index_states[previous[2].state] -= 1
        self.index[number] = entry
        self._index_states[entry[2].state] = self._index_states.get(entry[2].state, 0) + 1

    @staticmethod
    def _index_line(doc: Doc, off: int, length: int) -> bytes:
        row = [
            int(doc["number"]),
            off,
            length,
            doc["state"],
            doc.get("owner"),
            doc["customer_id"],
            doc.get("updated_at") or doc["created_at"],
            doc["kind"],
        ]
        return json.dumps(row, ensure_ascii=False).encode() + b"\n"

    async def close(self) -> None:
        if self._flusher is None:
            await asyncio.to_thread(self._release_lock)
            return
        self._closing = True
        assert self._wake is not None
        self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._flusher
        self._flusher = None
        if self.last_error is None:
            with contextlib.suppress(OSError):
                await self._compact()
        await asyncio.to_thread(self._close_files)

    def _close_files(self) -> None:
        for fd in (self._journal_fd, self._archive_fd):
            if fd is not None:
                os.close(fd)
        self._journal_fd = self._archive_fd = None
        self._release_lock()

    # ---- blobs ----------------------------------------------------------
    _BLOB_TEMP = ".tmp-"

    def _drop_blob_temps(self) -> None:
        """Remove blob temp files a crash left behind (never renamed: never named by data)."""
        if not self.files_path.is_dir():
            return
        for f in self.files_path.iterdir():
            if f.name.startswith(self._BLOB_TEMP):
                with contextlib.suppress(OSError):
                    f.unlink()

    def _blob_path(self, digest: str) -> Path:
        return self.files_path / check_digest(digest)

    async def put_blob(self, digest: str, data: bytes) -> None:
        if blob_digest(data) != check_digest(digest):
            raise ValueError("the blob's name is not the SHA-256 of its bytes")
        try:
            await asyncio.to_thread(self._put_blob_sync, digest, data)
        except OSError as exc:
            raise StorageError(f"cannot write a file into {self.files_path}: {exc}") from exc

    def _put_blob_sync(self, digest: str, data: bytes) -> None:
        path = self._blob_path(digest)
        with contextlib.suppress(OSError):
            if path.stat().st_size == len(data) and blob_digest(path.read_bytes()) == digest:
                return  # kept already (an upload again, or one whose commit a crash stopped)
        self.files_path.mkdir(mode=0o700, exist_ok=True)
        temp = self.files_path / f"{self._BLOB_TEMP}{digest}-{os.getpid()}-{os.urandom(4).hex()}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            write_all(fd, data)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        os.close(fd)
        os.replace(temp, path)
        fsync_dir(self.files_path)
        fsync_dir(self.files_path.parent)

    async def get_blob(self, digest: str) -> bytes | None:
        path = self._blob_path(digest)

        def read() -> bytes | None:
            try:
                return path.read_bytes()
            except FileNotFoundError:
                return None

        try:
            data = await asyncio.to_thread(read)
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc}") from exc
        if data is not None and blob_digest(data) != digest:
            raise StorageError(f"{path} is damaged: its bytes are not what its name says")
        return data

    async def has_blob(self, digest: str) -> bool:
        return await asyncio.to_thread(self._blob_path(digest).is_file)

    # ---- reads ----------------------------------------------------------
    async def get(self, table: str, key: str) -> Doc | None:
        dirty = self._dirty.get((table, key))
        if dirty is not None and not dirty.done():
            # Never answer from a write that is not durable yet.
            with contextlib.suppress(Exception):
                await asyncio.shield(dirty)
        doc = self._table(table).get(key)
        if doc is not None:
            return json.loads(json.dumps(doc))
        if table == "cases":
            return self._read_archived(key)
        return None

    def peek(self, table: str, key: str) -> Doc | None:
        try:
            doc = self.hot[table].get(key)
        except KeyError:
            doc = self._table(table).get(key)
        if doc is None and table == "cases":
            return self._read_archived(key)
        return doc

    def _read_archived(self, key: str) -> Doc | None:
        try:
            entry = self.index.get(int(key))
        except ValueError:
            return None
        if entry is None or self._archive_fd is None:
            return None
        off, length, _summary = entry
        raw = os.pread(self._archive_fd, length, off)
        doc: Doc = json.loads(raw)
        return doc

    async def scan(self, table: str) -> list[Doc]:
        docs = self._table(table).values()
        if table == "cases":
            return [json.loads(json.dumps(d)) for d in docs if d["state"] not in ARCHIVED]
        return [json.loads(json.dumps(d)) for d in docs]

    def archived(self) -> Iterable[CaseSummary]:
        hot = self.hot["cases"]
        for number, (_o, _l, summary) in self.index.items():
            if str(number) not in hot:
                yield summary
        for doc in hot.values():
            if doc["state"] in ARCHIVED:
                yield summarize(doc)

    def archived_counts(self) -> dict[str, int]:
        counts = {state: n for state, n in self._index_states.items() if n}
        index = self.index
        for key, doc in self.hot["cases"].items():  # the live data: small
            entry = index.get(int(key)) if key.isdigit() else None
            if entry is not None:  # reopened (or re-closed) since it was archived
                counts[entry[2].state] -= 1
            if doc["state"] in ARCHIVED:
                counts[doc["state"]] = counts.get(doc["state"], 0) + 1
        return {state: n for state, n in counts.items() if n}

    def view(self, table: str) -> dict[str, Doc]:
        return self._table(table)

    def health(self) -> dict[str, Any]:
        return {
            "backend": "tinydb",
            "path": str(self.path),
            "ok": self.last_error is None,
            "error": self.last_error,
            "live_cases": sum(1 for d in self.hot["cases"].values() if d["state"] not in ARCHIVED),
            "archived_cases": len(self.index),
            "journal_lines": self._journal_lines,
            "journal_bytes": self._journal_good_size,
        }

    # ---- writes ---------------------------------------------------------
    async def commit(self, ops: Sequence[Op]) -> None:
        if self._flusher is None or self._wake is None or self._flusher.done():
            raise StorageError(f"the store {self.path} is not open")
        if not ops:
            return
        for op in ops:
            if op.table not in self.hot:
                self._table(op.table)  # StorageError for a table nobody declared
        check_expectations(ops, self.peek)
        encoded = [b"null" if op.doc is None else encode(op.doc) for op in ops]  # may raise
        batch = self._pending
        if batch.future is None:
            batch.future = asyncio.get_running_loop().create_future()
        self.seq += 1
        keys = [encode(op.key) for op in ops]
        rows = b",".join(
            b'["' + op.table.encode() + b'",' + key + b"," + enc + b"]"
            for op, key, enc in zip(ops, keys, encoded, strict=True)
        )
        batch.lines.append(journal_line(self.seq, rows))
        for op, key, enc in zip(ops, keys, encoded, strict=True):
            # The stored copy is parsed from the journal's bytes: exactly what a replay sees
            # (unless handed over: the caller's plain-JSON document itself, see Op).
            if op.doc is None:
                doc = None
            else:
                doc = op.doc if op.handed_over else json.loads(enc)
            table = self.hot[op.table]
            old = table.get(op.key)
            batch.undo.append((op.table, op.key, old))
            if doc is None:
                table.pop(op.key, None)
                self._rows[op.table].pop(op.key, None)
            else:
                table[op.key] = doc
                self._rows[op.table][op.key] = (doc, snapshot_row(enc, key))
            batch.keys.add((op.table, op.key))
            self._dirty[(op.table, op.key)] = batch.future
            if old is not None or doc is not None:
                self._notify(op.table, op.key, old, doc)
        self._wake.set()
        await asyncio.shield(batch.future)

    async def _flush_loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending.lines:
                batch, self._pending = self._pending, _Batch()
                self._inflight = batch
                try:
                    await asyncio.to_thread(self._append_journal, b"".join(batch.lines))
                except OSError as exc:
                    self._fail(batch, exc)
                else:
                    self.last_error = None
                    self._journal_lines += len(batch.lines)
                    self._settle(batch, None)
                self._inflight = None
            if self._closing:
                return
            if self._compaction_due() and self.last_error is None:
                try:
                    await self._compact()
                except OSError as exc:
                    self.last_error = f"compaction failed: {exc}"
                    log.error("storage compaction failed: %s", exc)

    def _compaction_due(self) -> bool:
        """The journal has grown enough that rewriting the live data is worth it."""
        if self._journal_lines >= self.compact_every:
            return True
        return self._journal_good_size >= max(self.compact_bytes, 2 * self._snapshot_size)

    def _append_journal(self, payload: bytes) -> None:
        assert self._journal_fd is not None
        fd = self._journal_fd
        if os.fstat(fd).st_size != self._journal_good_size:
            os.ftruncate(fd, self._journal_good_size)  # drop a half-written failed batch
        try:
            write_all(fd, payload)
            os.fdatasync(fd)
        except OSError:
            # The callers are told this batch failed: it must not come back after a
            # crash either, so cut it off now (best effort; retried before the next write).
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._journal_good_size)
                os.fsync(fd)
            raise
        self._journal_good_size += len(payload)

    def _fail(self, batch: _Batch, exc: OSError) -> None:
        reason = errno.errorcode.get(exc.errno or 0, "") or str(exc)
        self.last_error = f"cannot write {self.journal_path.name}: {exc.strerror or reason}"
        log.error("storage write failed: %s", exc)
        # Later batches were built on top of this one: undo them too, newest first.
        later, self._pending = self._pending, _Batch()
        for failed in (later, batch):
            for table, key, previous in reversed(failed.undo):
                current = self.hot[table].get(key)
                self._rows[table].pop(key, None)
                if previous is None:
                    self.hot[table].pop(key, None)
                else:
                    self.hot[table][key] = previous
                if current is not None or previous is not None:
                    self._notify(table, key, current, previous)
        err = StorageError(self.last_error)
        self._settle(later, err)
        self._settle(batch, err)

    def _settle(self, batch: _Batch, err: Exception | None) -> None:
        fut = batch.future
        for key in batch.keys:
            if self._dirty.get(key) is fut:
                del self._dirty[key]
        if fut is not None and not fut.done():
            if err is None:
                fut.set_result(None)
            else:
                fut.set_exception(err)
                fut.exception()  # mark retrieved: waiters that gave up must not warn

    # ---- compaction -----------------------------------------------------
    async def _compact(self) -> None:
        """Snapshot the live data, move finished cases to the archive, reset the journal."""
        archive_docs = {k: d for k, d in self.hot["cases"].items() if d["state"] in ARCHIVED}
        snapshot = self._snapshot_bytes(self.seq, set(archive_docs))
        archive_lines = [(k, encode(d) + b"\n", d) for k, d in archive_docs.items()]
        offsets = await asyncio.to_thread(self._compact_sync, snapshot, archive_lines)
        for (key, _line, doc), (off, length) in zip(archive_lines, offsets, strict=True):
            self._set_index(int(key), (off, length, summarize(doc)))
            if self.hot["cases"].get(key) is doc:  # unchanged while we wrote: drop from memory
                del self.hot["cases"][key]
                self._rows["cases"].pop(key, None)
                self._notify("cases", key, doc, None)
        self._journal_lines = 0

    def _snapshot_row(self, table: str, key: str, doc: Doc) -> bytes:
        cache = self._rows[table]
        hit = cache.get(key)
        if hit is not None and hit[0] is doc:
            return hit[1]
        row = snapshot_row(encode(doc), encode(key))
        cache[key] = (doc, row)
        return row

    def _compact_sync(
        self, snapshot: bytes, archive_lines: list[tuple[str, bytes, Doc]]
    ) -> list[tuple[int, int]]:
        assert self._archive_fd is not None and self._journal_fd is not None
        offsets: list[tuple[int, int]] = []
        if archive_lines:
            payload = b"".join(line for _k, line, _d in archive_lines)
            off = self._archive_size
            os.ftruncate(self._archive_fd, off)
            view = memoryview(payload)
            at = off
            while view:
                n = os.pwrite(self._archive_fd, view, at)
                view, at = view[n:], at + n
            os.fsync(self._archive_fd)
            index_rows = []
            for _key, line, doc in archive_lines:
                offsets.append((off, len(line)))
                index_rows.append(self._index_line(doc, off, len(line)))
                off += len(line)
            self._archive_size = off
            self._append_durably(self.index_path, b"".join(index_rows))
        self._write_snapshot(snapshot)
        os.ftruncate(self._journal_fd, 0)
        os.fsync(self._journal_fd)
        self._journal_good_size = 0
        return offsets

    def _snapshot_bytes(self, seq: int, skip_cases: set[str]) -> bytes:
        """The TinyDB file: ``{"meta": {...}, "<table>": {"1": {..., "_key": key}, ...}}``."""
        meta = encode({"1": {"schema_version": SCHEMA_VERSION, "seq": seq}})
        parts = [b'{"meta":', meta]
        for table in list(self.hot):
            if table == "meta":
                continue
            parts.append(b',"' + table.encode() + b'":{')
            i = 0
            for key, doc in self.hot[table].items():
                if table == "cases" and key in skip_cases:
                    continue
                i += 1
                parts.append(b'"%d":' % i if i == 1 else b',"%d":' % i)
                parts.append(self._snapshot_row(table, key, doc))
            parts.append(b"}")
        parts.append(b"}")
        self._snapshot_seq = seq
        return b"".join(parts)

    def _write_snapshot(self, payload: bytes) -> None:
        self._storage.write_bytes(payload)
        self._snapshot_size = len(payload)

    @staticmethod
    def _append_durably(path: Path, payload: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            start = os.fstat(fd).st_size
            try:
                write_all(fd, payload)
                os.fdatasync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)  # no half row for the next append to glue onto
                raise
        finally:
            os.close(fd)


def read_lock_info(lock_path: Path) -> dict[str, Any]:
    """What the owner of a store wrote into its lock file (pid, serve URL), if anything."""
    try:
        raw = lock_path.read_text()
        info = json.loads(raw) if raw.strip() else {}
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def lock_path_for(path: str | os.PathLike[str]) -> Path:
    """The lock file of the store at ``path``, named after its real path like the engine's."""
    return store_files(real_store_path(path))["lock"]


# ---- store check / store repair ---------------------------------------------
def _read_optional(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _snapshot_report(path: Path, names: set[str] | None = None) -> tuple[str | None, str]:
    """``(problem or None, description)`` of the snapshot file at ``path``.

    ``names`` gets the names of the snapshot's tables (what its journal may name).
    """
    if names is None:
        names = set()
    try:
        data = DurableJSONStorage(path).read()
        version, seq, tables = parse_snapshot(data)
        names.update(tables)
    except OSError as exc:
        return f"cannot be read: {exc}", ""
    except (AttributeError, TypeError, ValueError) as exc:  # UnicodeDecodeError included
        return f"damaged: {exc}", ""
    if data is None:
        return None, "missing or empty (a new store)"
    if version > SCHEMA_VERSION:
        return f"written by a newer billing-bot (schema {version})", ""
    docs = sum(len(t) for t in tables.values())
    return None, ngettext(
        "ok (seq {seq}, {n} document)", "ok (seq {seq}, {n} documents)", docs
    ).format(seq=seq, n=docs)


def _torn_text(line: JournalLine) -> str:
    return ngettext(
        "journal line {line} (byte {offset}): torn tail of {n} byte "
        "without a newline — a write never acknowledged, dropped at the next start",
        "journal line {line} (byte {offset}): torn tail of {n} bytes "
        "without a newline — a write never acknowledged, dropped at the next start",
        line.length,
    ).format(line=line.number, offset=line.offset, n=line.length)


def check_store(path: str | os.PathLike[str]) -> tuple[bool, list[str]]:
    """Check a store's snapshot and every journal line, reading only (no lock needed).

    Returns whether it is healthy and a report, one finding a line. Reading a
    store a serve owns is safe: its files are replaced by rename or appended to,
    and an append in flight shows as a torn tail, which is not damage.
    """
    files = store_files(real_store_path(path))
    report = [f"store {files['snapshot']}"]
    if not any(p.exists() for role, p in files.items() if role != "lock"):
        return False, [*report, "no store there (no snapshot, journal or archive)"]
    tables = set(known_tables())
    problem, text = _snapshot_report(files["snapshot"], tables)
    ok = problem is None
    report.append(f"snapshot: {problem or text}")
    try:
        raw = _read_optional(files["journal"])
    except OSError as exc:
        report.append(f"journal {files['journal']}: cannot be read: {exc}")
        return False, report
    good = damaged = 0
    for line in scan_journal(raw, tables):
        if line.torn:
            report.append(_torn_text(line))
        elif line.problem is not None:
            damaged += 1
            report.append(
                f"journal line {line.number} (byte {line.offset}): damaged — {line.problem}"
            )
        else:
            good += 1
    report.append(
        ngettext(
            "journal: {n} good line, {damaged} damaged",
            "journal: {n} good lines, {damaged} damaged",
            good,
        ).format(n=good, damaged=damaged)
    )
    if text.startswith("missing") and (raw.strip() or _nonempty(files["archive"])):
        ok = False
        report.append("the snapshot is missing but the journal or archive holds data")
    ok = ok and damaged == 0
    if ok:
        report.append("healthy")
    elif problem is None and damaged:
        report.append(
            "DAMAGED: `billing-bot store repair --to NEW.json` writes a copy with the "
            "snapshot and every good journal line; or restore the store from a backup"
        )
    else:
        report.append("DAMAGED: restore the store from a backup")
    return ok, report


def _nonempty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def repair_store(path: str | os.PathLike[str], to: str | os.PathLike[str]) -> list[str]:
    """Write a new store at ``to``: the snapshot, the archive and every good journal line.

    The original is only read (under a shared lock, so no serve owns it
    meanwhile); nothing at ``to`` is overwritten. Returns the report: each
    journal line left out and why. Raises :class:`StorageError` when no repair
    can be written (the store is in use, the snapshot itself is damaged, ``to``
    exists). The copy is opened once with the engine before this returns, which
    also rebuilds its archive index.
    """
    src = store_files(real_store_path(path))
    dst = store_files(real_store_path(to))
    if not any(p.exists() for role, p in src.items() if role != "lock"):
        raise StorageError(f"there is no store at {src['snapshot']}")
    if dst["snapshot"] == src["snapshot"]:
        raise StorageError("store repair writes a new store: give --to another path")
    taken = [p for role, p in dst.items() if role != "lock" and p.exists()]
    if taken:
        raise StorageError(
            f"{taken[0]} exists; store repair never overwrites: give --to a new path"
        )
    try:
        fd = os.open(src["lock"], os.O_RDONLY)
    except FileNotFoundError:
        fd = None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as exc:
                pid = read_lock_info(src["lock"]).get("pid", "?")
                raise StoreLocked(
                    f"the store {src['snapshot']} is in use by another billing-bot (pid {pid}); "
                    "stop it first"
                ) from exc
        return _write_repair(src, dst)
    finally:
        if fd is not None:
            os.close(fd)  # also drops the shared lock


def _copy_blobs(src: Path, dst: Path) -> None:
    """Copy every whole blob (attachments' bytes) of a store's files folder, durably."""
    if not src.is_dir():
        return
    dst.mkdir(mode=0o700)
    for f in sorted(src.iterdir()):
        if f.name.startswith(TinyDBEngine._BLOB_TEMP) or not f.is_file():
            continue
        fd = os.open(dst / f.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            write_all(fd, f.read_bytes())
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(dst)


def _write_repair(src: dict[str, Path], dst: dict[str, Path]) -> list[str]:
    tables = set(known_tables())
    problem, _text = _snapshot_report(src["snapshot"], tables)
    if problem is not None:
        raise StorageError(
            f"the store file {src['snapshot']} {problem}; store repair keeps the snapshot "
            "and mends the journal only: restore the store from a backup"
        )
    snapshot = _read_optional(src["snapshot"])
    raw = _read_optional(src["journal"])
    archive = _read_optional(src["archive"])
    if not snapshot.strip() and (raw.strip() or archive):
        raise StorageError(
            f"the store file {src['snapshot']} is missing or empty, but its journal or "
            "archive holds data: restore the store from a backup"
        )
    report: list[str] = []
    kept: list[bytes] = []
    total = 0
    for line in scan_journal(raw, tables):
        if line.torn:
            report.append("left out " + _torn_text(line))
            continue
        total += 1
        if line.problem is not None:
            report.append(
                f"left out journal line {line.number} (byte {line.offset}): {line.problem}"
            )
        else:
            kept.append(raw[line.offset : line.offset + line.length])
    dst["snapshot"].parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The derived index is not copied: opening the copy rebuilds it from the archive.
    for role, payload in (("archive", archive), ("journal", b"".join(kept))):
        fd = os.open(dst[role], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            write_all(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
    _copy_blobs(src["files"], dst["files"])
    if snapshot.strip():
        DurableJSONStorage(dst["snapshot"]).write_bytes(snapshot)  # also syncs the directory
    else:
        fsync_dir(dst["snapshot"].parent)
    engine = TinyDBEngine(dst["snapshot"])
    try:
        engine._open_sync()  # proves the copy loads, and indexes its archive
    finally:
        engine._close_files()
    archive_size = ngettext("{n} byte", "{n} bytes", len(archive)).format(n=len(archive))
    report.append(
        ngettext(
            "wrote {path}: the snapshot, {kept} of {n} complete journal line and the archive "
            "({size}); point BOT_DB at it to use it",
            "wrote {path}: the snapshot, {kept} of {n} complete journal lines and the archive "
            "({size}); point BOT_DB at it to use it",
            total,
        ).format(path=dst["snapshot"], kept=len(kept), n=total, size=archive_size)
    )
    return report
