"""What the index keeps about each document and each file, as typed records.

They are written to the manifest (and `index/files.json`) as plain JSON objects; `from_dict`
reads back what `to_dict` wrote.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from functools import cache
from typing import Any


@dataclass
class DocumentRecord:
    """One indexed document: its content hashes, where it came from, and its passages."""

    hash: str  # of the text and the metadata that reach passages
    text_hash: str = ""  # of the text alone (finds copies)
    origin: str = ""  # the absolute path of its file
    title: str = ""
    source: str = ""  # shown in citations
    passages: list[str] = field(default_factory=list)
    date: str = ""  # as its sidecar gives them (qa/ingest/titles.py)
    publisher: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("date", "publisher"):
            if not data[key]:
                del data[key]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DocumentRecord:
        return cls(**_known(cls, data))


@dataclass
class FileRecord:
    """One indexed file, by its absolute path: what it looked like and what it gave."""

    size: int = -1
    mtime_ns: int = -1
    sha: str = ""  # of its bytes
    doc_ids: list[str] = field(default_factory=list)
    root: str = ""  # the folder it was found in
    # found in a folder given as a source (kept in sync as a whole); None: indexed before
    # folders and named files were told apart
    in_folder: bool | None = None
    twins: dict[str, str] = field(default_factory=dict)  # documents it copies -> their text hash

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.twins:
            del data["twins"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileRecord:
        return cls(**_known(cls, data))


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"a {cls.__name__} is not an object")
    names = _field_names(cls)
    return {k: v for k, v in data.items() if k in names}


@cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls))  # once: a large index has many records


def documents_to_json(documents: dict[str, DocumentRecord]) -> dict[str, dict[str, Any]]:
    return {doc_id: record.to_dict() for doc_id, record in documents.items()}


def documents_from_json(data: dict[str, Any]) -> dict[str, DocumentRecord]:
    return {doc_id: DocumentRecord.from_dict(entry) for doc_id, entry in data.items()}


def files_to_json(files: dict[str, FileRecord]) -> dict[str, dict[str, Any]]:
    return {origin: record.to_dict() for origin, record in files.items()}


def files_from_json(data: dict[str, Any]) -> dict[str, FileRecord]:
    return {origin: FileRecord.from_dict(entry) for origin, entry in data.items()}
