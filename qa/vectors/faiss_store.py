"""The default vector store: exact FAISS inner product, saved inside each generation folder.

Plain FAISS rather than LlamaIndex's `FaissMapVectorStore`: importing LlamaIndex takes
longer than a whole cold question may.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

import numpy as np

FILE = Path("vectors") / "faiss.index"
ID_MAP = Path("vectors") / "id_map.json"  # passage id -> FAISS id


class FaissStore:
    """Vectors under int64 FAISS ids, mapped to passage ids; ids are never reused."""

    def __init__(self, faiss_index, id_to_faiss: dict[str, int]) -> None:
        self._index = faiss_index  # an IndexIDMap2 over an exact inner-product index
        self._faiss_id = id_to_faiss
        self._passage_id = {f: p for p, f in id_to_faiss.items()}

    @property
    def dimension(self) -> int:
        return int(self._index.d)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> Collection[str]:
        return self._faiss_id.keys()

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        self.delete([i for i in ids if i in self._faiss_id])  # replaced, not kept twice
        first = max(self._passage_id, default=-1) + 1
        faiss_ids = np.arange(first, first + len(ids), dtype=np.int64)
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), faiss_ids)
        for faiss_id, passage_id in zip(faiss_ids.tolist(), ids):
            self._faiss_id[passage_id] = faiss_id
            self._passage_id[faiss_id] = passage_id

    def delete(self, ids: Iterable[str]) -> None:
        gone = [self._faiss_id.pop(i) for i in ids if i in self._faiss_id]
        if gone:
            self._index.remove_ids(np.asarray(gone, dtype=np.int64))
            for faiss_id in gone:
                del self._passage_id[faiss_id]

    def search(self, query: np.ndarray, k: int) -> tuple[list[str], np.ndarray]:
        import faiss

        k = min(k, len(self))
        if k <= 0:
            return [], np.zeros(0, dtype=np.float32)
        # One query is too small to share: on 12k SciFact passages an exact search took 36 ms
        # with FAISS's two OpenMP threads (the other core busy) and 0.75 ms with one. OpenMP's
        # thread count is the calling thread's own, and is given back after.
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            scores, ids = self._index.search(query[np.newaxis, :].astype(np.float32), k)
        finally:
            faiss.omp_set_num_threads(before)
        keep = ids[0] >= 0
        return [self._passage_id[int(i)] for i in ids[0][keep]], scores[0][keep]

    def fetch(self, ids: Sequence[str]) -> np.ndarray:
        if not ids:
            return np.zeros((0, self.dimension), dtype=np.float32)
        rows = np.asarray([self._faiss_id[i] for i in ids], dtype=np.int64)
        return self._index.reconstruct_batch(rows)

    def save(self, folder: Path) -> None:
        import faiss

        (folder / FILE).parent.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._index, os.fspath(folder / FILE))
        (folder / ID_MAP).write_text(json.dumps(self._faiss_id), encoding="utf-8")

    @classmethod
    def empty(cls, spec: str, dimension: int, index_root: Path | None = None) -> FaissStore:
        import faiss

        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)), {})

    @classmethod
    def load(cls, spec: str, folder: Path, dimension: int) -> FaissStore:
        import faiss

        index = faiss.read_index(os.fspath(folder / FILE))
        id_map = json.loads((folder / ID_MAP).read_text(encoding="utf-8"))
        store = cls(index, {p: int(f) for p, f in id_map.items()})
        if store.dimension != dimension:
            raise ValueError(f"the vectors have {store.dimension} dimensions, not {dimension}")
        if len(store._faiss_id) != len(store):
            raise ValueError(f"{len(store._faiss_id)} ids for {len(store)} vectors")
        return store
