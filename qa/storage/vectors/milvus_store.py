"""Milvus as the vector store: each index segment's vectors are one Milvus collection.

    milvus:./index/milvus.db        Milvus Lite, a local file (relative to the working directory)
    milvus:http://host:19530        a Milvus server (also https:// and tcp://)

The same client code serves both (the database side, collections and milvus.json:
qa/storage/vectors/milvus_db.py). A collection, once saved, is never changed: a store loaded from a
segment keeps its additions and deletions pending on the object, searches see them (numpy
over the pending vectors), and `save(folder)` copies the collection's rows, less the deleted,
plus the added, into a new collection named in `folder/vectors/milvus.json`. So the readers of
the old state see it unchanged while the next one is written. A Milvus store is `whole`: each
write's segment replaces all the others, so the index's one segment names its collection.
Collections of the same index root that no segment folder names any more, and no store of
this process reads, are dropped on save. (A reader in another process, sharing a Milvus
server, is not known: once two writes were committed after the state it read, its questions
fail until it opens the index again.)

Milvus keys are the passage keys as text (the collections' primary key is a VARCHAR).

pymilvus is imported only when a Milvus store is used (it takes about half a second).
"""

from __future__ import annotations

import functools
import threading
import uuid
import weakref
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qa.storage.vectors import milvus_db as db
from qa.storage.vectors.milvus_db import MilvusUnavailable

MAX_TOP_K = 16384  # the largest `limit` a Milvus search accepts
_ROWS_PER_BATCH = 5000  # rows per insert and iterator batch (~8 MB of 384-dim vectors)
_IDS_PER_FILTER = 256  # ids per `id in [...]` filter expression

# tests/test_vector_stores.py reaches the database through these names
_client, _uri = db.client, db.uri

_live: weakref.WeakSet[MilvusStore] = weakref.WeakSet()  # the stores of this process
_live_lock = threading.Lock()


def _reported(method):
    """Turn a Milvus failure inside `method` into one line naming the database."""

    @functools.wraps(method)
    def wrapper(self: MilvusStore, *args, **kwargs):
        from pymilvus.exceptions import MilvusException

        try:
            return method(self, *args, **kwargs)
        except MilvusException as exc:
            raise MilvusUnavailable(f"Milvus at {self.uri}: {db.message(exc)}") from exc

    return wrapper


class MilvusStore:
    """Unit vectors by passage key in one Milvus collection (FLAT index, inner product: exact,
    as FAISS), with the changes not yet saved held on the object."""

    whole = True  # every write's segment holds all the vectors

    def __init__(self, uri: str, dimension: int, collection: str | None = None,
                 count: int = 0) -> None:
        self.uri = uri
        self.dimension = dimension
        self.collection = collection  # None until the first save
        self._count = count  # rows in the collection
        self._added: dict[str, np.ndarray] = {}  # never ids the collection holds undeleted
        self._deleted: set[str] = set()  # always ids the collection holds
        self._added_matrix: np.ndarray | None = None  # rows of `_added`, built when searched
        self._stored_ids: frozenset[str] | None = None  # the collection's ids, read when asked
        with _live_lock:
            _live.add(self)

    # ---- the VectorStore interface ---------------------------------------------------------
    def __len__(self) -> int:
        return self._count - len(self._deleted) + len(self._added)

    @_reported
    def ids(self) -> Collection[str]:
        return (self._all_stored_ids() - self._deleted).union(self._added)

    @_reported
    def add(self, keys: Sequence[int], vectors: np.ndarray) -> None:
        ids = _names(keys)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), self.dimension):
            raise ValueError(f"{vectors.shape[0]} vectors of {vectors.shape[1:]} for "
                             f"{len(ids)} ids of {self.dimension} dimensions")
        for pid in ids:
            if len(pid.encode("utf-8")) > db.MAX_ID_BYTES:
                raise ValueError(f"passage id longer than {db.MAX_ID_BYTES} bytes: {pid[:60]!r}...")
        self._deleted |= self._held_in_collection(ids)  # an id added again replaces its vector
        for pid, row in zip(ids, vectors.copy()):
            self._added[pid] = row
        self._added_matrix = None

    @_reported
    def delete(self, keys: Iterable[int]) -> None:
        ids = list(dict.fromkeys(_names(keys)))
        for pid in ids:
            self._added.pop(pid, None)
        self._deleted |= self._held_in_collection(ids)
        self._added_matrix = None

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        if allowed is not None:
            # the scope's vectors fetched by id and scored exactly: the collection keeps no
            # document field to filter on
            query = np.asarray(query, dtype=np.float32).reshape(-1)
            scores = self.fetch(allowed) @ query if len(allowed) else np.zeros(0, np.float32)
            top = np.argsort(-scores, kind="stable")[:k]
            return np.asarray(allowed, dtype=np.int64)[top], scores[top]
        ids, scores = self._search(query, k)
        return np.asarray([int(i) for i in ids], dtype=np.int64), scores

    @_reported
    def _search(self, query: np.ndarray, k: int) -> tuple[list[str], np.ndarray]:
        k = min(k, len(self))
        if k <= 0:
            return [], np.zeros(0, dtype=np.float32)
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        pending = self._added or self._deleted
        wanted = k + len(self._deleted)  # enough collection hits to keep k after the deleted
        if not pending and k <= MAX_TOP_K:
            return self._search_collection(query, k)
        if self._count and wanted > MAX_TOP_K:
            return _top_k(*_scan(self._held_rows(), query), k)
        ids: list[str] = []
        scores = np.zeros(0, dtype=np.float32)
        if self._count:
            found, found_scores = self._search_collection(query, min(wanted, self._count))
            keep = [i for i, pid in enumerate(found) if pid not in self._deleted]
            ids, scores = [found[i] for i in keep], found_scores[keep]
        if self._added:
            ids += list(self._added)
            scores = np.concatenate([scores, self._pending_matrix() @ query])
        return _top_k(ids, scores, k)

    @_reported
    def fetch(self, keys: Sequence[int]) -> np.ndarray:
        ids = _names(keys)
        out = np.zeros((len(ids), self.dimension), dtype=np.float32)
        wanted = {pid for pid in ids if pid not in self._added}
        gone = wanted & self._deleted
        if gone:
            raise KeyError(next(iter(gone)))
        stored = self._get_vectors(wanted)
        for row, pid in enumerate(ids):
            vector = self._added.get(pid)
            if vector is None:
                vector = stored.get(pid)
            if vector is None:
                raise KeyError(pid)
            out[row] = vector
        return out

    @_reported
    def save(self, folder: Path, merged: Sequence[Path] = ()) -> None:
        """Write the held vectors as a new collection and name it in `folder`'s milvus.json;
        then this object is a store of that segment, with no pending changes."""
        client = db.client(self.uri)
        root = db.index_root(folder)
        prefix = db.prefix(root)
        name = prefix + uuid.uuid4().hex
        db.create_collection(client, name, self.dimension)
        try:
            for batch in _batches(self._held_rows(), _ROWS_PER_BATCH):
                client.insert(name, [{"id": pid, "vector": vector} for pid, vector in batch])
            client.flush(name)
            client.load_collection(name)
            count = db.row_count(client, name)
            if count != len(self):
                raise ValueError(f"Milvus stored {count} of {len(self)} vectors")
            db.write_info(folder, {"format": db.FORMAT, "uri": self.uri, "collection": name,
                                   "dimension": self.dimension, "count": count})
        except BaseException:
            db.drop_quietly(client, name)
            raise
        self.collection, self._count = name, count
        self._added, self._deleted, self._added_matrix, self._stored_ids = {}, set(), None, None
        db.drop_unreferenced(client, root, prefix, keep=_in_use(self.uri))

    @classmethod
    def empty(cls, spec: str, dimension: int, index_root: Path | None = None) -> MilvusStore:
        # The collections' name prefix comes from the folder saved into (its parent is the
        # index root), so `index_root` is not needed here.
        return cls(db.uri(spec), dimension)

    @classmethod
    def load(cls, spec: str, folders: Sequence[Path], dimension: int) -> MilvusStore:
        folder = folders[-1]  # each segment holds them all
        info = db.read_info(folder)
        if info["dimension"] != dimension:
            raise ValueError(f"the vectors have {info['dimension']} dimensions, not {dimension}")
        uri = db.uri(spec)
        if info["uri"] != uri:
            raise ValueError(f"the vectors of {folder.name} are in {info['uri']}, "
                             f"but the store setting names {uri}")
        store = cls(uri, dimension, info["collection"], info["count"])
        store._open_collection(folder.name)
        return store

    # ---- the collection --------------------------------------------------------------------
    @_reported
    def _open_collection(self, generation: str) -> None:
        """Check that the collection holds what milvus.json says, and load it for search."""
        db.open_collection(db.client(self.uri), self.collection, self.dimension, self._count,
                           generation, self.uri)

    def _search_collection(self, query: np.ndarray, k: int) -> tuple[list[str], np.ndarray]:
        hits = db.client(self.uri).search(
            self.collection, data=[query.tolist()], limit=k, anns_field="vector",
            search_params={"metric_type": "IP"}, output_fields=["id"])[0]  # [] means all
        return ([h["id"] for h in hits],
                np.asarray([h["distance"] for h in hits], dtype=np.float32))

    def _held_in_collection(self, ids: Iterable[str]) -> set[str]:
        """Which of these ids the collection holds and are not deleted yet."""
        ids = [pid for pid in ids if pid not in self._deleted]
        if not self._count or not ids:
            return set()
        if self._stored_ids is not None:
            return self._stored_ids.intersection(ids)
        client = db.client(self.uri)
        held: set[str] = set()
        for batch in _batches(ids, _IDS_PER_FILTER):
            rows = client.query(self.collection, filter=db.id_filter(batch), output_fields=["id"])
            held.update(row["id"] for row in rows)
        return held

    def _all_stored_ids(self) -> frozenset[str]:
        if self._stored_ids is None:
            self._stored_ids = frozenset(pid for pid, _ in self._collection_rows(["id"]))
        return self._stored_ids

    def _get_vectors(self, ids: Collection[str]) -> dict[str, np.ndarray]:
        if not ids or not self._count:
            return {}
        client, found = db.client(self.uri), {}
        for batch in _batches(list(ids), _IDS_PER_FILTER):
            for row in client.query(self.collection, filter=db.id_filter(batch),
                                    output_fields=["vector"]):
                found[row["id"]] = np.asarray(row["vector"], dtype=np.float32)
        return found

    def _collection_rows(self, fields: list[str]) -> Iterator[tuple[str, Any]]:
        """(id, vector or None) of every row of the collection, read in batches."""
        if not self._count:
            return
        iterator = db.client(self.uri).query_iterator(
            self.collection, batch_size=_ROWS_PER_BATCH, output_fields=fields)
        try:
            while batch := iterator.next():
                for row in batch:
                    yield row["id"], row.get("vector")
        finally:
            iterator.close()

    def _held_rows(self) -> Iterator[tuple[str, Any]]:
        """(id, vector) of every vector held: the collection's less the deleted, then the added."""
        for pid, vector in self._collection_rows(["vector"]):
            if pid not in self._deleted:
                yield pid, vector
        for pid, vector in self._added.items():
            yield pid, vector.tolist()

    def _pending_matrix(self) -> np.ndarray:
        if self._added_matrix is None:
            self._added_matrix = np.stack(list(self._added.values()))
        return self._added_matrix


def _names(keys: Iterable[int]) -> list[str]:
    return [str(int(k)) for k in keys]


def _in_use(uri: str) -> set[str]:
    """The collections of a database that stores of this process read: an engine's snapshot
    of an older generation, still answering, keeps its collection past two writes by another
    engine of the index (other processes' readers are not known here)."""
    with _live_lock:
        return {s.collection for s in list(_live) if s.uri == uri and s.collection}


# ---- small pure helpers ---------------------------------------------------------------------
def _top_k(ids: list[str], scores: np.ndarray, k: int) -> tuple[list[str], np.ndarray]:
    order = np.argsort(-scores, kind="stable")[:k]
    return [ids[i] for i in order], scores[order].astype(np.float32)


def _scan(rows: Iterable[tuple[str, Any]], query: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Exact inner products of every row with the query (for a k past Milvus's limit)."""
    ids, scores = [], []
    for batch in _batches(rows, _ROWS_PER_BATCH):
        ids += [pid for pid, _ in batch]
        scores.append(np.asarray([v for _, v in batch], dtype=np.float32) @ query)
    return ids, np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


