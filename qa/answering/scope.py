"""Questions scoped to some documents: `Where` names them by folder, file pattern or document
id, and `passage_keys` turns it into the passage keys the search may return.

The search applies those keys inside itself (the vector store's and BM25's own rows, see
qa/answering/retrieve.py), never by dropping results after a top-k cut, so a scoped question finds
its passages however many others the index holds. Folders and patterns are matched against the
index's files (one row per file, a few hundred at a million passages), never against every document,
and a snapshot keeps the keys of its last few scopes.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.errors import QAError

if TYPE_CHECKING:
    from qa.storage.index import PassageIndex

KINDS = ("folders", "patterns", "doc_ids")
MAX_TERMS = 1000  # folders, patterns and ids in one filter


class BadFilter(QAError):
    """A filter that cannot be read, or that no indexed document matches."""


@dataclass(frozen=True)
class Where:
    """Which documents a question may be answered from: those that any of the folders,
    patterns or doc_ids names.

    folders   documents whose file lies in one of these folders (or is one of these files)
    patterns  documents whose file matches one of these shell patterns (`*.md`,
              `notes/*`, `report.pdf`), by its name or the end of its path; case-insensitive
    doc_ids   these documents (`qa index --json`, `engine.documents()` list them)
    """

    folders: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()

    @classmethod
    def of(cls, value: Any) -> Where | None:
        """A filter from what a face was given: None (everything), a `Where`, a pattern or
        a list of patterns, or a mapping with the keys `folders`, `patterns`, `doc_ids`
        (each a string or a list of strings)."""
        if value is None or isinstance(value, Where):
            return value if value is None or not value.empty else None
        if isinstance(value, str):
            value = {"patterns": [value]}
        elif isinstance(value, (list, tuple)):
            value = {"patterns": list(value)}
        if not isinstance(value, Mapping):
            raise BadFilter(f"a filter is a pattern, a list of patterns or an object with "
                            f"{', '.join(KINDS)}; got {type(value).__name__}")
        unknown = [str(k) for k in value if k not in KINDS]
        if unknown:
            raise BadFilter(f"unknown filter key {unknown[0]!r}; use {', '.join(KINDS)}")
        where = cls(**{kind: _strings(kind, value.get(kind)) for kind in KINDS})
        return None if where.empty else where

    @classmethod
    def named(cls, names: Iterable[str]) -> Where | None:
        """A filter from words a user typed (`qa ask --in`): each an existing folder, else a
        file pattern or a doc_id."""
        names = [n for n in names if n.strip()]
        folders = [n for n in names if Path(n).expanduser().is_dir()]
        others = [n for n in names if n not in folders]
        return cls.of({"folders": folders, "patterns": others, "doc_ids": others})

    @property
    def empty(self) -> bool:
        return not (self.folders or self.patterns or self.doc_ids)

    def __str__(self) -> str:
        return ", ".join(dict.fromkeys([*self.folders, *self.patterns, *self.doc_ids]))

    def matches_file(self, origin: str) -> bool:
        """Whether a file (its absolute path) lies in one of the folders or matches one of
        the patterns."""
        if any(_inside(origin, f) for f in _resolved(self.folders)):
            return True
        path = origin.replace(os.sep, "/").lower()
        name = path.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(path, "*/" + p)
                   or fnmatch.fnmatchcase(path, p) for p in _lowered(self.patterns))


WhereLike = Where | str | list[str] | Mapping[str, Any] | None  # what `Where.of` reads


def passage_keys(index: PassageIndex, where: Where) -> np.ndarray:
    """The keys (int64, ascending) of the passages of the documents `where` names; BadFilter
    when it names none that is indexed."""
    doc_ids = set(where.doc_ids)
    if where.folders or where.patterns:
        for origin, doc_ids_of_file in index.db.file_documents():
            if where.matches_file(origin):
                doc_ids.update(doc_ids_of_file)
    keys = index.db.keys_of_documents(sorted(doc_ids))
    if not len(keys):
        raise BadFilter(f"no indexed document matches the filter ({where})")
    return keys


def _strings(kind: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items: Iterable[Any] = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        raise BadFilter(f"filter {kind} must be a string or a list of strings")
    items = [v.strip() for v in items if v.strip()]
    if len(items) > MAX_TERMS:
        raise BadFilter(f"filter {kind} holds {len(items)} entries; at most {MAX_TERMS}")
    return tuple(items)


def _resolved(folders: tuple[str, ...]) -> list[str]:
    return [os.fspath(Path(f).expanduser().resolve()) for f in folders]


def _lowered(patterns: tuple[str, ...]) -> list[str]:
    return [p.replace(os.sep, "/").lower() for p in patterns]


def _inside(origin: str, folder: str) -> bool:
    return origin == folder or origin.startswith(folder.rstrip(os.sep) + os.sep)
