"""doc_ids unique across every source indexed together, and stable from run to run.

A document's id is its path under the folder it was found in (a JSONL record: its `_id`).
When a file elsewhere already holds that id, it is qualified with the folder's name
(`b/notes.txt`; a record with its file, `corpus2.jsonl#7`), then also with a short hash of the
folder's absolute path (`b~3f2a1c/notes.txt`). A file keeps the ids it was given while they
are its own, so ids do not depend on the order sources are named in later runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from itertools import count, islice
from pathlib import Path
from typing import TYPE_CHECKING

from qa.ingest.records import DocumentRecord

if TYPE_CHECKING:  # LlamaIndex is imported where a Document is made, not by a question
    from llama_index.core.schema import Document

OWN_FORMS = 6  # forms looked through for an id a file already holds


class DocIds:
    """Which file (by origin, its absolute path) holds each doc_id during one update."""

    def __init__(self, documents: Mapping[str, DocumentRecord],
                 previous: dict[str, list[str]]) -> None:
        """`documents`: the index's documents now (read as needed); `previous`: origin ->
        the ids each file being indexed held before (on a rebuild, from the index it
        replaces)."""
        self._documents = documents
        self._claimed: dict[str, str] = {}
        self._previous: dict[str, str] = {}
        for origin, ids in previous.items():
            for doc_id in ids:
                self._previous.setdefault(doc_id, origin)

    def claimed_by(self, doc_id: str) -> str | None:
        """The file that took the id in this update, if one did."""
        return self._claimed.get(doc_id)

    def owner(self, doc_id: str) -> str | None:
        if doc_id in self._claimed:
            return self._claimed[doc_id]
        record = self._documents.get(doc_id)
        return record.origin if record is not None else self._previous.get(doc_id)

    def choose(self, doc: Document, file: Path, root: Path, origin: str, mine: set[str]) -> str:
        """The id `doc` gets: one its file held already, else the first form nobody holds.
        `mine`: ids already given to other documents of the same file in this update."""
        forms = candidates(doc.doc_id, file, root)
        for doc_id in islice(forms, OWN_FORMS):
            if self.owner(doc_id) == origin and doc_id not in mine:
                return doc_id
        for doc_id in candidates(doc.doc_id, file, root):
            if self.owner(doc_id) is None and doc_id not in mine:
                return doc_id
        raise AssertionError("unreachable: the numbered forms never end")

    def claim(self, doc_id: str, origin: str) -> None:
        self._claimed[doc_id] = origin


def candidates(base: str, file: Path, root: Path) -> Iterator[str]:
    """The forms of an id, plainest first: `notes.txt`, `b/notes.txt`, `b~3f2a1c/notes.txt`,
    then numbered (`b~3f2a1c-2/notes.txt`), which only a contrived set of names reaches."""
    folder = root.resolve()
    name = folder.name or "root"
    tag = hashlib.sha256(str(folder).encode("utf-8", "surrogateescape")).hexdigest()[:6]
    if file.suffix.lower() == ".jsonl":  # a record: qualified by its file
        rel = file.relative_to(root).as_posix()
        yield base
        yield f"{rel}#{base}"
        yield f"{name}/{rel}#{base}"
        yield f"{name}~{tag}/{rel}#{base}"
        for n in count(2):
            yield f"{name}~{tag}-{n}/{rel}#{base}"
    else:
        yield base
        yield f"{name}/{base}"
        yield f"{name}~{tag}/{base}"
        for n in count(2):
            yield f"{name}~{tag}-{n}/{base}"


def rename(doc: Document, doc_id: str) -> Document:
    """`doc` under another id; what is shown as its source follows when it was the id."""
    if doc_id != doc.doc_id:
        if doc.metadata.get("source") == doc.doc_id:
            doc.metadata["source"] = doc_id
        doc.metadata["doc_id"] = doc_id
        doc.id_ = doc_id
    return doc
