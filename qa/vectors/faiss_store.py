"""The default vector store: exact FAISS inner product, saved inside each generation folder."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.vector_stores.faiss import FaissMapVectorStore

FILE = Path("vectors") / "faiss.index"


class FaissStore(FaissMapVectorStore):
    """LlamaIndex's FAISS map store, with batched adds and ids that never collide.

    The stock `add` numbers vectors by `ntotal`, which repeats an id still in use once a
    vector was deleted, and it adds one vector per FAISS call.
    """

    @property
    def dimension(self) -> int:
        return int(self._faiss_index.d)

    def __len__(self) -> int:
        return int(self._faiss_index.ntotal)

    def ids(self) -> Collection[str]:
        return self._node_id_to_faiss_id_map.keys()

    def add(self, ids: Sequence[str], vectors: np.ndarray, **_: Any) -> None:  # type: ignore[override]
        self.delete([i for i in ids if i in self._node_id_to_faiss_id_map])  # replaced, not kept
        first = max(self._faiss_id_to_node_id_map, default=-1) + 1
        faiss_ids = np.arange(first, first + len(ids), dtype=np.int64)
        self._faiss_index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), faiss_ids)
        for faiss_id, node_id in zip(faiss_ids.tolist(), ids):
            self._node_id_to_faiss_id_map[node_id] = faiss_id
            self._faiss_id_to_node_id_map[faiss_id] = node_id

    def delete(self, ids: Iterable[str], **_: Any) -> None:  # type: ignore[override]
        self.delete_nodes(list(ids))

    def search(self, query: np.ndarray, k: int) -> tuple[list[str], np.ndarray]:
        k = min(k, len(self))
        if k <= 0:
            return [], np.zeros(0, dtype=np.float32)
        import faiss

        # One query is too small to share: on 12k SciFact passages an exact search took 36 ms
        # with FAISS's two OpenMP threads (the other core busy) and 0.75 ms with one. OpenMP's
        # thread count is the calling thread's own, and is given back after.
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            scores, ids = self._faiss_index.search(query[np.newaxis, :].astype(np.float32), k)
        finally:
            faiss.omp_set_num_threads(before)
        keep = ids[0] >= 0
        return [self._faiss_id_to_node_id_map[int(i)] for i in ids[0][keep]], scores[0][keep]

    def fetch(self, ids: Sequence[str]) -> np.ndarray:
        if not ids:
            return np.zeros((0, self.dimension), dtype=np.float32)
        rows = np.asarray([self._node_id_to_faiss_id_map[n] for n in ids], dtype=np.int64)
        return self._faiss_index.reconstruct_batch(rows)

    def save(self, folder: Path) -> None:
        self.persist(str(folder / FILE))

    @classmethod
    def empty(cls, spec: str, dimension: int, index_root: Path | None = None) -> FaissStore:
        import faiss

        return cls(faiss_index=faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)))

    @classmethod
    def load(cls, spec: str, folder: Path, dimension: int) -> FaissStore:
        store = cls.from_persist_path(str(folder / FILE))
        if store.dimension != dimension:
            raise ValueError(f"the vectors have {store.dimension} dimensions, not {dimension}")
        return store
