"""The index's documents and files as mappings over its SQLite file, read on demand.

A large index holds a million documents: a write reads the few it touches, not all of them.
A writer's changes go to SQLite in its transaction (documents) or when it commits (files,
whose records sync.py updates in place).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import TypeVar

from qa.ingest.records import DocumentRecord, FileRecord
from qa.storage.db import Database

R = TypeVar("R")
KEPT = 5000  # documents a write keeps in memory as it stores them (for its checks)


class DocumentTable(Mapping[str, DocumentRecord]):
    """doc_id -> DocumentRecord."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._read: dict[str, DocumentRecord | None] = {}
        self._touched: dict[str, DocumentRecord] = {}
        self.changed = False

    def __getitem__(self, doc_id: str) -> DocumentRecord:
        return _read_through(self._read, doc_id, self._db.document)

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self.get(doc_id) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._db.document_ids())

    def __len__(self) -> int:
        return self._db.count("documents")

    def with_text(self, text_hash: str) -> list[str]:
        """The documents whose text has this hash."""
        return self._db.documents_with_text(text_hash)

    def put(self, doc_id: str, record: DocumentRecord, text: str) -> None:
        self._db.put_document(doc_id, record, text)
        if len(self._touched) < KEPT:
            self._read[doc_id] = self._touched[doc_id] = record
        else:  # read again from SQLite when asked
            self._read.pop(doc_id, None)
        self.changed = True

    def drop(self, doc_id: str) -> None:
        self._db.delete_document(doc_id)
        self._read[doc_id] = None
        self._touched.pop(doc_id, None)
        self.changed = True

    def touched(self) -> dict[str, DocumentRecord]:
        """The documents this write stored (the first `KEPT` of them)."""
        return dict(self._touched)


class FileTable(MutableMapping[str, FileRecord]):
    """origin (a file's absolute path) -> FileRecord; records read are kept, and written
    back on `flush` (sync.py updates a record's size and time in place)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._read: dict[str, FileRecord | None] = {}
        self._set: set[str] = set()
        self.changed = False

    def __getitem__(self, origin: str) -> FileRecord:
        return _read_through(self._read, origin, self._db.file)

    def __contains__(self, origin: object) -> bool:
        return isinstance(origin, str) and self.get(origin) is not None

    def __setitem__(self, origin: str, record: FileRecord) -> None:
        self._read[origin] = record
        self._set.add(origin)
        self.changed = True

    def __delitem__(self, origin: str) -> None:
        self[origin]  # KeyError when absent
        self._read[origin] = None
        self._set.add(origin)
        self.changed = True

    def __iter__(self) -> Iterator[str]:
        stored = [o for o in self._db.file_origins() if self._read.get(o, True) is not None]
        new = [o for o in self._set if self._read.get(o) is not None and o not in stored]
        return iter(sorted({*stored, *new}))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def touched(self) -> dict[str, FileRecord]:
        """The files this write set (whose records must hold together)."""
        return {o: r for o in self._set if (r := self._read.get(o)) is not None}

    def flush(self) -> None:
        """Write the records set or read (read ones may have been updated in place)."""
        for origin, record in self._read.items():
            if record is None:
                if origin in self._set:
                    self._db.delete_file(origin)
            elif origin in self._set or record != self._db.file(origin):
                self._db.put_file(origin, record)


def _read_through(known: dict[str, R | None], key: str, read: Callable[[str], R | None]) -> R:
    """`known[key]`, read from SQLite the first time; KeyError when there is none."""
    if key not in known:
        known[key] = read(key)
    record = known[key]
    if record is None:
        raise KeyError(key)
    return record
