"""Passage vectors by passage id, behind one small interface; the store is a setting.

    Settings(store="faiss")                           exact FAISS, saved in each generation
    Settings(store="milvus:./index/milvus.db")        Milvus Lite, a local file
    Settings(store="milvus:http://host:19530")        a Milvus server

A store is part of the index's segments: `save(folder)` writes what a write changed as the
segment it adds, and `load_store(folders, ...)` reads back what the live segments hold.
Adding a store is one module here with a class following `VectorStore`, plus its line in
`_KINDS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from qa.errors import QAError


class VectorStore(Protocol):
    """Unit vectors by passage key (int64, never reused); inner product = cosine.

    A store is read from the index's segment folders, oldest first; a write adds and
    deletes on the object, then `save`s them as the segment it writes."""

    dimension: int

    def __len__(self) -> int: ...

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors (rows of `vectors`, float32, unit length) under new keys."""
        ...

    def delete(self, keys: Sequence[int]) -> None:
        """Remove the vectors of these keys (held ones)."""
        ...

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The keys of the k vectors nearest one unit query vector, best first, with their
        cosines; `allowed` (ascending keys, all held): among those alone (qa/answering/scope.py)."""
        ...

    def fetch(self, keys: Sequence[int]) -> np.ndarray:
        """The stored vectors of these keys, one row each, in order."""
        ...

    def save(self, folder: Path, merged: Sequence[Path] = ()) -> None:
        """Write the changes as the segment being written in `folder`, which replaces the
        segments `merged` (the newest ones)."""
        ...


def store_kind(spec: str) -> str:
    """"faiss" or "milvus" from a store setting ("milvus:./index/milvus.db")."""
    kind = spec.split(":", 1)[0].strip().lower()
    if kind not in _KINDS or (kind == "milvus") != (":" in spec):
        raise QAError(f"unknown vector store {spec!r}; use faiss, milvus:FILE.db or "
                      "milvus:http://HOST:PORT")
    return kind


def canonical_store(spec: str) -> str:
    """The setting as the index keeps it: a Milvus Lite file by its absolute path, so the
    index names the same file from any working folder."""
    if store_kind(spec) == "faiss":
        return "faiss"
    from qa.storage.vectors.milvus_db import uri  # imports no pymilvus

    return "milvus:" + uri(spec)


def new_store(spec: str, dimension: int, index_root: Path | None = None) -> VectorStore:
    """An empty store of the kind `spec` names."""
    return _class(spec).empty(spec, dimension, index_root)


def load_store(spec: str, folders: Sequence[Path], dimension: int) -> VectorStore:
    """The vectors the segment folders hold (oldest first)."""
    return _class(spec).load(spec, folders, dimension)


def _class(spec: str):
    module, name = _KINDS[store_kind(spec)].split(":")
    return getattr(importlib.import_module(module), name)  # only the store in use is imported


# The stores a setting can name: kind -> "module:class"
_KINDS = {
    "faiss": "qa.storage.vectors.faiss_store:FaissStore",
    "milvus": "qa.storage.vectors.milvus_store:MilvusStore",
}
