"""The index's passages, documents and files in one SQLite file (WAL, transactions).

SQLite rather than LlamaIndex's `SimpleDocumentStore`: that store is one JSON file read whole
on every open (44 MB for SciFact's 12,008 passages) and rewritten whole on every write; here
a passage is read by its key when a question needs it, and a write is one transaction. A
crash mid-write leaves the last committed state.

Tables:
    meta       key -> value: format, fingerprint, settings, when written
    documents  doc_id -> its record (qa/ingest/records.py) and its text
    passages   key (never reused) -> passage id, document, text, chunker metadata (JSON)
    files      origin (absolute path) -> its record
    terms      BM25 term -> its id in the segments' postings (qa/storage/lexical.py)
    segments   the live segment folders, oldest first, with their files' sizes and CRCs
"""

from __future__ import annotations

import json
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import IndexDamaged
from qa.ingest.records import DocumentRecord, FileRecord

FILE = "qa.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, record TEXT NOT NULL, text_hash TEXT NOT NULL,
    origin TEXT NOT NULL, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS documents_by_text ON documents (text_hash);
CREATE TABLE IF NOT EXISTS passages (
    key INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, doc_id TEXT NOT NULL,
    text TEXT NOT NULL, metadata TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS passages_by_document ON passages (doc_id);
CREATE TABLE IF NOT EXISTS files (origin TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS terms (term TEXT PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS segments (
    position INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, sums TEXT NOT NULL);
"""


class Database:
    """One connection, shared by the threads of one reader or the one writer (in turn)."""

    def __init__(self, folder: Path | None, write: bool = False) -> None:
        """`folder` None: an empty index in memory (nothing indexed yet)."""
        self.path = folder / FILE if folder is not None else ":memory:"
        self.folder = folder or Path(".")
        write = write or folder is None
        self._lock = threading.RLock()
        try:
            if folder is not None and not write and not self.path.is_file():
                raise sqlite3.DatabaseError(f"{FILE} is missing")
            # (a reader opens read-write all the same: a read-only connection cannot make the
            # WAL's shared-memory file when the last connection took it away)
            self._db = sqlite3.connect(self.path, isolation_level=None,
                                       check_same_thread=False, timeout=30)
            if write:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")  # a commit survives a power cut
                self._db.executescript(SCHEMA)
                self._db.execute("BEGIN IMMEDIATE")
            else:
                self._db.execute("BEGIN")  # one snapshot: later commits stay unseen
                self._db.execute("SELECT count(*) FROM meta").fetchone()
        except sqlite3.Error as exc:
            raise self.damaged(exc) from exc
        weakref.finalize(self, self._db.close)  # when no reader holds it any more

    def damaged(self, exc: Exception) -> IndexDamaged:
        detail = (str(exc).strip().splitlines() or [""])[0][:160]
        return IndexDamaged(f"index at {self.folder.parent} is damaged ({FILE}: {detail}); "
                            "run `qa index --rebuild`")

    @contextmanager
    def _guarded(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise self.damaged(exc) from exc

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._guarded() as db:
            found = db.execute(sql, _held(args)).fetchall()
        return [tuple(_str(v) for v in row) for row in found]

    def run(self, sql: str, args: Sequence[Any] = ()) -> None:
        with self._guarded() as db:
            db.execute(sql, _held(args))

    def run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._guarded() as db:
            db.executemany(sql, (_held(r) for r in rows))

    def commit(self) -> None:
        with self._guarded() as db:
            db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            try:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._db.close()
            except sqlite3.Error:
                pass

    def check(self, largest: int) -> None:
        """Raise ValueError when SQLite's quick check finds damage; only for a file of at
        most `largest` bytes (the check reads it whole)."""
        if isinstance(self.path, Path) and self.path.stat().st_size <= largest:
            result = self.rows("PRAGMA quick_check")[0][0]
            if result != "ok":
                raise ValueError(f"{FILE}: {result}")

    # ---- meta ------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.rows("SELECT key, value FROM meta")}

    def set_meta(self, values: dict[str, Any]) -> None:
        self.run_many("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                      [(k, json.dumps(v)) for k, v in values.items()])

    # ---- passages ----------------------------------------------------------------------------
    def passage(self, passage_id: str) -> tuple[str, dict[str, Any]] | None:
        """(text, metadata) of a passage by id."""
        row = self.rows("SELECT text, metadata FROM passages WHERE id = ?", (passage_id,))
        return (row[0][0], json.loads(row[0][1])) if row else None

    def key_of(self, passage_id: str) -> int | None:
        row = self.rows("SELECT key FROM passages WHERE id = ?", (passage_id,))
        return row[0][0] if row else None

    def ids_of(self, keys: Sequence[int]) -> dict[int, str]:
        return self._by_key("id", keys)

    def texts_of(self, keys: Sequence[int]) -> dict[int, str]:
        return self._by_key("text", keys)

    def _by_key(self, column: str, keys: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for part in _parts(list(keys)):
            marks = ",".join("?" * len(part))
            out.update(self.rows(f"SELECT key, {column} FROM passages WHERE key IN ({marks})",
                                 part))
        return out

    def add_passage(self, passage_id: str, doc_id: str, text: str, metadata: dict) -> int:
        with self._guarded() as db:
            cursor = db.execute(
                "INSERT INTO passages (id, doc_id, text, metadata) VALUES (?, ?, ?, ?)",
                _held((passage_id, doc_id, text, json.dumps(metadata))))
            return int(cursor.lastrowid)

    def passage_ids_of(self, doc_id: str) -> list[str]:
        return [r[0] for r in self.rows("SELECT id FROM passages WHERE doc_id = ?", (doc_id,))]

    def delete_passages(self, keys: Sequence[int]) -> None:
        self.run_many("DELETE FROM passages WHERE key = ?", [(k,) for k in keys])

    def count(self, table: str) -> int:
        return int(self.rows(f"SELECT count(*) FROM {table}")[0][0])

    # ---- documents ---------------------------------------------------------------------------
    def document(self, doc_id: str) -> DocumentRecord | None:
        row = self.rows("SELECT record FROM documents WHERE doc_id = ?", (doc_id,))
        return DocumentRecord.from_dict(json.loads(row[0][0])) if row else None

    def document_text(self, doc_id: str) -> str | None:
        row = self.rows("SELECT text FROM documents WHERE doc_id = ?", (doc_id,))
        return row[0][0] if row else None

    def document_ids(self) -> list[str]:
        return [r[0] for r in self.rows("SELECT doc_id FROM documents ORDER BY doc_id")]

    def documents_with_text(self, text_hash: str) -> list[str]:
        return [r[0] for r in self.rows(
            "SELECT doc_id FROM documents WHERE text_hash = ? ORDER BY doc_id", (text_hash,))]

    def put_document(self, doc_id: str, record: DocumentRecord, text: str) -> None:
        self.run("INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?)",
                 (doc_id, json.dumps(record.to_dict()), record.text_hash, record.origin, text))

    def delete_document(self, doc_id: str) -> None:
        self.run("DELETE FROM documents WHERE doc_id = ?", (doc_id,))

    # ---- files -------------------------------------------------------------------------------
    def file(self, origin: str) -> FileRecord | None:
        row = self.rows("SELECT record FROM files WHERE origin = ?", (origin,))
        return FileRecord.from_dict(json.loads(row[0][0])) if row else None

    def file_origins(self) -> list[str]:
        return [r[0] for r in self.rows("SELECT origin FROM files ORDER BY origin")]

    def file_documents(self) -> Iterator[tuple[str, list[str]]]:
        """(origin, doc_ids) of every indexed file (one row per file: a scope reads them)."""
        for origin, record in self.rows("SELECT origin, record FROM files ORDER BY origin"):
            data = json.loads(record)  # a file copying another's text lists it as a twin
            yield origin, [*data.get("doc_ids", []), *data.get("twins", {})]

    def keys_of_documents(self, doc_ids: Sequence[str]) -> np.ndarray:
        """The passage keys of these documents, ascending."""
        keys: list[int] = []
        for part in _parts(list(doc_ids)):
            marks = ",".join("?" * len(part))
            keys += [k for (k,) in self.rows(
                f"SELECT key FROM passages WHERE doc_id IN ({marks})", part)]
        return np.unique(np.asarray(keys, dtype=np.int64))

    def put_file(self, origin: str, record: FileRecord) -> None:
        self.run("INSERT OR REPLACE INTO files VALUES (?, ?)",
                 (origin, json.dumps(record.to_dict())))

    def delete_file(self, origin: str) -> None:
        self.run("DELETE FROM files WHERE origin = ?", (origin,))

    # ---- terms and segments ------------------------------------------------------------------
    def term_ids(self, terms: Iterable[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for part in _parts(sorted(set(terms))):
            marks = ",".join("?" * len(part))
            out.update(self.rows(f"SELECT term, id FROM terms WHERE term IN ({marks})", part))
        return out

    def add_terms(self, terms: Sequence[str], first: int) -> None:
        self.run_many("INSERT INTO terms VALUES (?, ?)",
                      [(t, first + i) for i, t in enumerate(terms)])

    def segments(self) -> list[tuple[str, dict[str, list[int]]]]:
        """(name, {file: [size, crc]}) of the live segments, oldest first."""
        return [(name, json.loads(sums)) for name, sums in
                self.rows("SELECT name, sums FROM segments ORDER BY position")]

    def set_segments(self, segments: Sequence[tuple[str, dict[str, list[int]]]]) -> None:
        self.run("DELETE FROM segments")
        self.run_many("INSERT INTO segments VALUES (?, ?, ?)",
                      [(i, name, json.dumps(sums)) for i, (name, sums) in enumerate(segments)])


def _text(value: str) -> str | bytes:
    """A string as SQLite can hold it: a file name that is not valid UTF-8 (kept with
    surrogate escapes) is stored as its bytes."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


def _str(value: Any) -> Any:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _held(args: Sequence[Any]) -> tuple:
    return tuple(_text(a) if isinstance(a, str) else a for a in args)


def _parts(items: list, size: int = 500) -> Iterator[list]:
    """SQLite binds at most 999 values per statement in older builds."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
