"""The default vector store: FAISS over the index's segments, each written once.

A write saves the vectors it added as a segment of their own (`vectors.npy`, memory-mapped,
with their passage keys) and the keys it removed from older segments as tombstones, so its
cost follows what it changed, not the corpus. Segments are searched one by one and the hits
merged; a segment of `APPROXIMATE_FROM` vectors or more also carries an IVF index, searched
approximately (`NPROBE` lists), the others are searched exactly. Plain FAISS rather than
LlamaIndex's `FaissMapVectorStore`: importing LlamaIndex takes longer than a whole cold
question may.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from qa.storage.rows import rows_in

FOLDER = Path("vectors")
# From bench/ann.py (one thread, 384-dim vectors made from the packaged MiniLM's; SciFact's
# test claims as queries): exact search took 6.7-10.4 ms per query at 100k vectors, 20-27 ms
# at 300k and 63-87 ms at 1M; IVF (4096 lists at 1M) took 0.6 ms at 16 probes with recall@10
# 0.980 of exact, 1.1 ms at 32 with 0.987. HNSW reached 0.907 at best at 1M and cannot remove
# vectors. 32 probes: at 250k (2048 lists) bench/scale.py measured recall@10 0.900 at 16.
APPROXIMATE_FROM = 200_000
NPROBE = 32
# A scoped search (qa/answering/scope.py) scores the segment's rows in scope exactly up to this many
# (150 MB of vectors); past it an IVF segment is searched with an id selector.
EXACT_AMONG = 100_000
CHUNK = 65_536  # vectors copied at a time


def _lists(rows: int) -> int:
    """IVF lists for a segment: about 4 * sqrt(rows), a power of two (4096 at 1M)."""
    return 1 << max(6, round(np.log2(4 * np.sqrt(rows))))


class _Part:
    """One segment's vectors."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        where = folder / FOLDER
        self.keys = np.load(where / "keys.npy", mmap_mode="r")
        self.vectors = np.load(where / "vectors.npy", mmap_mode="r")
        self.gone = np.load(where / "gone.npy")
        self.ivf = None
        if (where / "ivf.index").is_file():
            import faiss

            # memory-mapped: at a million vectors a plain read takes seconds (1.5 GB)
            flag = getattr(faiss, "IO_FLAG_MMAP_IFC", faiss.IO_FLAG_MMAP)
            self.ivf = faiss.read_index(os.fspath(where / "ivf.index"), flag)
            self.ivf.nprobe = NPROBE
        self.dead: np.ndarray | None = None  # rows removed by later writes
        self.dead_keys = np.zeros(0, np.int64)
        self.n_dead = 0

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        if allowed is not None:
            return self._search_among(query, k, allowed)
        want = min(k + self.n_dead, len(self.keys))
        if want <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if self.ivf is not None:
            scores, keys = self.ivf.search(query[np.newaxis, :], want)
            scores, keys = scores[0], keys[0]
            keep = keys >= 0
            keys, scores = keys[keep], scores[keep]
            alive = ~np.isin(keys, self.dead_keys) if self.n_dead else slice(None)
            return keys[alive][:k], scores[alive][:k]
        scores, rows = faiss.knn(query[np.newaxis, :], self.vectors, want,
                                 metric=faiss.METRIC_INNER_PRODUCT)
        rows, scores = rows[0], scores[0]
        keep = rows >= 0
        if self.n_dead:
            keep &= ~self.dead[np.maximum(rows, 0)]
        return np.asarray(self.keys)[rows[keep]][:k], scores[keep][:k]

    def _search_among(self, query: np.ndarray, k: int, allowed: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest of the live rows whose keys `allowed` (ascending) holds: those rows
        scored exactly when they are few (or the segment is searched exactly anyway), else
        the IVF index searched with FAISS's id selector and more lists probed, so that a
        narrow scope still finds its k."""
        import faiss

        keys = np.asarray(self.keys)
        rows = rows_in(keys, allowed)
        if self.n_dead:
            rows = rows[~self.dead[rows]]
        if not len(rows) or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if self.ivf is None or len(rows) <= EXACT_AMONG:
            scores = np.asarray(self.vectors[rows], dtype=np.float32) @ query
            top = np.argsort(-scores, kind="stable")[:k]
            return keys[rows[top]], scores[top]
        params = faiss.SearchParametersIVF()
        params.sel = faiss.IDSelectorBatch(np.ascontiguousarray(keys[rows]))
        params.nprobe = int(min(self.ivf.nlist, NPROBE * np.ceil(len(keys) / len(rows))))
        scores, found = self.ivf.search(query[np.newaxis, :], min(k, len(rows)), params=params)
        keep = found[0] >= 0
        return found[0][keep], scores[0][keep]


class FaissStore:
    """Unit vectors by passage key (int64, never reused), in segments plus the pending write."""

    def __init__(self, dimension: int, parts: Sequence[_Part] = ()) -> None:
        self.dimension = dimension
        self._parts = list(parts)
        removed = [p.gone for p in self._parts]
        self._removed = np.concatenate(removed) if removed else np.zeros(0, np.int64)
        for part in self._parts:
            if len(self._removed):
                part.dead = np.isin(part.keys, self._removed)
                part.n_dead = int(part.dead.sum())
                part.dead_keys = np.asarray(part.keys)[part.dead]
        # parts holding vectors, by their first key (a later write's keys are all larger)
        self._held = [p for p in self._parts if len(p.keys)]
        self._firsts = np.asarray([p.keys[0] for p in self._held], dtype=np.int64)
        self._added_keys: list[np.ndarray] = []
        self._added: list[np.ndarray] = []
        self._deleted: set[int] = set()

    def __len__(self) -> int:
        held = sum(len(p.keys) - p.n_dead for p in self._parts)
        return held + sum(len(k) for k in self._added_keys) - len(self._deleted)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self._added_keys.append(np.asarray(keys, dtype=np.int64))
        self._added.append(np.ascontiguousarray(vectors, dtype=np.float32))

    def delete(self, keys: Sequence[int]) -> None:
        self._deleted.update(int(k) for k in keys)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        query = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        # One query is too small to share: on 12k SciFact passages an exact search took 36 ms
        # with FAISS's two OpenMP threads (the other core busy) and 0.75 ms with one. OpenMP's
        # thread count is the calling thread's own, and is given back after.
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            # k more than the deletions pending, so that k are left once they are dropped
            found = [p.search(query, k + len(self._deleted), allowed) for p in self._parts]
        finally:
            faiss.omp_set_num_threads(before)
        if self._added:
            keys, vectors = self._pending()
            if allowed is not None:
                mine = np.isin(keys, allowed)
                keys, vectors = keys[mine], vectors[mine]
            found.append((keys, vectors @ query))
        keys = np.concatenate([f[0] for f in found]) if found else np.zeros(0, np.int64)
        scores = np.concatenate([f[1] for f in found]) if found else np.zeros(0, np.float32)
        if self._deleted:
            alive = ~np.isin(keys, list(self._deleted))
            keys, scores = keys[alive], scores[alive]
        order = np.argsort(-scores, kind="stable")[:k]
        return keys[order], scores[order]

    def fetch(self, keys: Sequence[int]) -> np.ndarray:
        keys = np.asarray(keys, dtype=np.int64)
        out = np.zeros((len(keys), self.dimension), dtype=np.float32)
        found = np.zeros(len(keys), dtype=bool)
        if self._held and len(keys):
            part_of = np.searchsorted(self._firsts, keys, side="right") - 1
            for p in np.unique(part_of[part_of >= 0]):
                part, mine = self._held[p], np.flatnonzero(part_of == p)
                rows = np.searchsorted(part.keys, keys[mine])
                hit = rows < len(part.keys)
                hit[hit] = np.asarray(part.keys)[rows[hit]] == keys[mine][hit]
                if part.n_dead:  # removed by a later segment's tombstone
                    hit[hit] = ~part.dead[rows[hit]]
                out[mine[hit]] = part.vectors[rows[hit]]
                found[mine[hit]] = True
        if self._added and not found.all():
            added_keys, vectors = self._pending()
            where = {int(k): i for i, k in enumerate(added_keys)}
            for i in np.flatnonzero(~found):
                if int(keys[i]) in where:
                    out[i], found[i] = vectors[where[int(keys[i])]], True
        if self._deleted:  # deleted by the write under way
            found &= ~np.isin(keys, np.fromiter(self._deleted, np.int64, len(self._deleted)))
        if not found.all():
            raise KeyError(f"no vector for passage key {int(keys[~found][0])}")
        return out

    def _pending(self) -> tuple[np.ndarray, np.ndarray]:
        if len(self._added) == 1:
            return self._added_keys[0], self._added[0]
        return np.concatenate(self._added_keys), np.concatenate(self._added)

    def save(self, folder: Path, merged: Sequence[Path] = ()) -> None:
        """Write the pending write as the segment `folder`, taking in the segments `merged`
        (the newest ones, named by folder): their live vectors and their tombstones."""
        parts = [p for p in self._parts if p.folder in set(merged)]
        if len(parts) != len(merged):
            raise ValueError("a segment to merge is not one this store read")
        pieces = [(np.asarray(p.keys), p.vectors) for p in parts]
        pieces += list(zip(self._added_keys, self._added))
        held = np.concatenate([k for k, _ in pieces]) if pieces else np.zeros(0, np.int64)
        removed = np.union1d(np.fromiter(self._deleted, np.int64, len(self._deleted)),
                             np.concatenate([p.gone for p in parts] or [held[:0]]))
        where = folder / FOLDER
        where.mkdir(parents=True, exist_ok=True)
        alive = [~np.isin(k, removed) for k, _ in pieces]
        keys = np.concatenate([k[a] for (k, _), a in zip(pieces, alive)] or [held[:0]])
        path = where / "vectors.npy"
        _write_rows(path, ((v, a) for (_, v), a in zip(pieces, alive)), len(keys),
                    self.dimension)
        del pieces, alive
        np.save(where / "keys.npy", keys.astype(np.int64))
        np.save(where / "gone.npy", removed[~np.isin(removed, held)].astype(np.int64))
        # The pending vectors are the file's last rows now: read from there, memory holds no
        # copy of them (at a million vectors, 1.5 GB while the IVF index below is built).
        if self._added_keys:
            mine = np.concatenate(self._added_keys)
            kept = int(np.isin(mine, keys).sum())
            self._deleted.difference_update(mine[~np.isin(mine, keys)].tolist())
            self._added_keys = [keys[len(keys) - kept:]]
            self._added = [np.load(path, mmap_mode="r")[len(keys) - kept:]]
        if len(keys) >= APPROXIMATE_FROM:
            import faiss

            faiss.write_index(_ivf(keys, path, self.dimension), os.fspath(where / "ivf.index"))

    @classmethod
    def empty(cls, spec: str, dimension: int, index_root: Path | None = None) -> FaissStore:
        return cls(dimension)

    @classmethod
    def load(cls, spec: str, folders: Sequence[Path], dimension: int) -> FaissStore:
        parts = [_Part(f) for f in folders]
        for part in parts:
            if part.vectors.shape[1:] != (dimension,) or len(part.vectors) != len(part.keys):
                raise ValueError(f"the vectors of {part.folder.name} have shape "
                                 f"{part.vectors.shape}, not ({len(part.keys)}, {dimension})")
        return cls(dimension, parts)


def _write_rows(path: Path, pieces: Iterable[tuple[np.ndarray, np.ndarray]], rows: int,
                dimension: int) -> None:
    """Write the rows of each (vectors, keep mask) piece as one float32 `.npy` file, a chunk
    at a time through plain writes: a memory map would hold every page written in memory."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
              "fortran_order": False, "shape": (rows, dimension)}
    written = 0
    with open(path, "wb") as out:
        np.lib.format.write_array_header_1_0(out, header)
        for vectors, keep in pieces:
            for start in range(0, len(keep), CHUNK):
                chunk = np.asarray(vectors[start:start + CHUNK], dtype=np.float32)
                chunk = np.ascontiguousarray(chunk[keep[start:start + CHUNK]])
                out.write(chunk.tobytes())
                written += len(chunk)
    if written != rows:
        raise ValueError(f"{written} vectors written to {path.name}, not {rows}")


def _chunks(path: Path, dimension: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of a `.npy` matrix, CHUNK rows at a time, read with plain reads (a
    memory map would keep every page read in this process's memory)."""
    mapped = np.load(path, mmap_mode="r")  # for its shape and offset only: no page is read
    shape, offset = mapped.shape, mapped.offset
    del mapped
    with open(path, "rb") as f:
        f.seek(offset)
        for start in range(0, shape[0], CHUNK):
            count = min(CHUNK, shape[0] - start) * dimension
            yield start, np.fromfile(f, dtype=np.float32, count=count).reshape(-1, dimension)


def _ivf(keys: np.ndarray, path: Path, dimension: int):
    """An IVF index (inner product) over the vectors of the file `path`, trained on a seeded
    sample of them."""
    import faiss

    lists = _lists(len(keys))
    quantizer = faiss.IndexFlatIP(dimension)
    index = faiss.IndexIVFFlat(quantizer, dimension, lists, faiss.METRIC_INNER_PRODUCT)
    # (k-means wants 39 points a list; training took 68-86 s on 100k at 1M)
    sample = np.sort(np.random.default_rng(0).choice(len(keys), min(len(keys), 40 * lists),
                                                     replace=False))
    picked = [rows[sample[(sample >= start) & (sample < start + len(rows))] - start]
              for start, rows in _chunks(path, dimension)]
    index.train(np.ascontiguousarray(np.concatenate(picked)))
    del picked
    for start, rows in _chunks(path, dimension):
        index.add_with_ids(rows, keys[start:start + len(rows)])
    index.nprobe = NPROBE
    return index
