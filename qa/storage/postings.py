"""BM25 postings of one segment, as files: what `LexicalIndex` scores and a write adds.

A segment holds the passages one write added (or several merged): for each term id, the rows
that hold it and how often (CSC: `indptr`, `rows`, `tf`), each row's length in tokens, and the
passage key of each row. It also holds what that write removed from older segments (`gone`):
the keys, their lengths and their distinct terms, so that document frequencies and the
average length stay exact without rewriting the older segment.

bm25s precomputes every score into its matrix, so one added passage changes all of them
(the product rebuilt BM25 whole on every write); raw term counts let a write add a segment of
its own and a question score with the statistics of the moment (bench/bm25_engines.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FOLDER = "bm25"
ARRAYS = ("keys", "lengths", "indptr", "rows", "tf",
          "gone_keys", "gone_lengths", "gone_ptr", "gone_terms")


@dataclass
class Postings:
    keys: np.ndarray  # int64, ascending: the passage key of each row
    lengths: np.ndarray  # int32: tokens per row
    indptr: np.ndarray  # int64: term id t's postings are [indptr[t], indptr[t + 1])
    rows: np.ndarray  # int32: local rows
    tf: np.ndarray  # float32: the term's count in the row
    gone_keys: np.ndarray  # int64: passages of older segments this write removed
    gone_lengths: np.ndarray  # int32
    gone_ptr: np.ndarray  # int64: gone_keys[i]'s distinct terms are gone_terms[ptr[i]:ptr[i+1]]
    gone_terms: np.ndarray  # int64

    @property
    def terms(self) -> int:
        return len(self.indptr) - 1

    def doc_freq(self, size: int) -> np.ndarray:
        """Rows holding each term id (0 past this segment's terms), minus none gone."""
        out = np.zeros(size, dtype=np.int64)
        n = min(size, self.terms)
        out[:n] = np.diff(self.indptr)[:n]
        return out

    def save(self, folder: Path) -> None:
        where = folder / FOLDER
        where.mkdir(parents=True, exist_ok=True)
        for name in ARRAYS:
            np.save(where / f"{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path) -> Postings:
        where = folder / FOLDER
        return cls(**{name: np.load(where / f"{name}.npy", mmap_mode="r") for name in ARRAYS})

    @classmethod
    def build(cls, keys: np.ndarray, token_ids: Sequence[np.ndarray]) -> Postings:
        """Postings of rows given as their tokens' term ids (one array a row, in key order)."""
        lengths = np.asarray([len(t) for t in token_ids], dtype=np.int32)
        if token_ids:
            flat = np.concatenate([np.asarray(t, dtype=np.int64) for t in token_ids])
        else:
            flat = np.zeros(0, dtype=np.int64)
        row_of = np.repeat(np.arange(len(token_ids), dtype=np.int64), lengths)
        return cls.from_pairs(np.asarray(keys, dtype=np.int64), lengths, flat, row_of,
                              np.ones(len(flat), dtype=np.float32), Gone.of([], []))

    @classmethod
    def from_pairs(cls, keys: np.ndarray, lengths: np.ndarray, terms: np.ndarray,
                   rows: np.ndarray, counts: np.ndarray, gone: Gone) -> Postings:
        """From (term, row, count) triples, summing repeated (term, row) pairs."""
        n_terms = int(terms.max()) + 1 if len(terms) else 0
        pair = terms * max(len(keys), 1) + rows
        order = np.argsort(pair, kind="stable")
        pair, counts = pair[order], counts[order]
        starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]]) if len(pair) else pair
        summed = np.add.reduceat(counts, starts) if len(pair) else counts
        pair = pair[starts] if len(pair) else pair
        term_of = pair // max(len(keys), 1)
        indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_of, minlength=n_terms), out=indptr[1:])
        return cls(keys, lengths.astype(np.int32), indptr,
                   (pair % max(len(keys), 1)).astype(np.int32), summed.astype(np.float32),
                   gone.keys, gone.lengths, gone.ptr, gone.terms)

    def gone(self) -> Gone:
        return Gone(np.asarray(self.gone_keys), np.asarray(self.gone_lengths),
                    np.asarray(self.gone_ptr), np.asarray(self.gone_terms))


@dataclass
class Gone:
    """Passages removed from older segments, with what they counted for in the statistics."""

    keys: np.ndarray
    lengths: np.ndarray
    ptr: np.ndarray
    terms: np.ndarray

    @classmethod
    def of(cls, keys: Sequence[int], token_ids: Sequence[np.ndarray]) -> Gone:
        distinct = [np.unique(np.asarray(t, dtype=np.int64)) for t in token_ids]
        ptr = np.zeros(len(distinct) + 1, dtype=np.int64)
        np.cumsum([len(d) for d in distinct], out=ptr[1:])
        return cls(np.asarray(keys, dtype=np.int64),
                   np.asarray([len(t) for t in token_ids], dtype=np.int32), ptr,
                   np.concatenate(distinct) if distinct else np.zeros(0, dtype=np.int64))

    def where(self, keep: np.ndarray) -> Gone:
        """The entries where `keep` (a mask over `keys`) is set."""
        sizes = np.diff(self.ptr)
        terms = np.split(self.terms, self.ptr[1:-1]) if len(self.keys) else []
        kept = [t for t, k in zip(terms, keep) if k]
        ptr = np.zeros(len(kept) + 1, dtype=np.int64)
        np.cumsum(sizes[keep], out=ptr[1:])
        return Gone(self.keys[keep], self.lengths[keep], ptr,
                    np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64))

    @staticmethod
    def joined(parts: Sequence[Gone]) -> Gone:
        if not parts:
            return Gone.of([], [])
        ptr = [np.zeros(1, dtype=np.int64)]
        offset = 0
        for part in parts:
            ptr.append(part.ptr[1:] + offset)
            offset += int(part.ptr[-1])
        return Gone(np.concatenate([p.keys for p in parts]).astype(np.int64),
                    np.concatenate([p.lengths for p in parts]).astype(np.int32),
                    np.concatenate(ptr),
                    np.concatenate([p.terms for p in parts]).astype(np.int64))


def merge(parts: Sequence[Postings], dead: np.ndarray, gone: Gone) -> Postings:
    """One segment of `parts` (oldest first, rows in key order), less the rows whose keys
    are in `dead`, with the removals `gone` made by the write; removals (of the parts' own
    and `gone`) that reach segments older than these are kept. Each term's postings are
    copied part after part into place: no sort, whatever the size."""
    n_terms = max((p.terms for p in parts), default=0)
    alive = [~np.isin(p.keys, dead) if len(dead) else np.ones(len(p.keys), bool) for p in parts]

    # two passes, so that memory holds one block of one part's postings at a time beside
    # the output (at a million passages a part holds tens of millions of postings)
    total = np.zeros(n_terms, dtype=np.int64)
    for part, keep in zip(parts, alive):
        for first, t, _, _ in _kept_blocks(part, keep):
            total[first:first + len(t)] += t
    indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(total, out=indptr[1:])
    rows = np.empty(int(indptr[-1]), dtype=np.int32)
    tf = np.empty(int(indptr[-1]), dtype=np.float32)
    placed = indptr[:-1].copy()  # where each term's next posting goes
    offset = 0
    for part, keep in zip(parts, alive):
        new_row = (np.cumsum(keep) - 1 + offset).astype(np.int32)
        for first, count, part_rows, part_tf in _kept_blocks(part, keep):
            # the block's postings, term after term: each goes after those already placed
            term = np.repeat(np.arange(first, first + len(count)), count)
            before = np.zeros(len(count), dtype=np.int64)
            np.cumsum(count[:-1], out=before[1:])
            dest = placed[term] + np.arange(len(term)) - before[term - first]
            rows[dest] = new_row[part_rows]
            tf[dest] = part_tf
            placed[first:first + len(count)] += count
        offset += int(keep.sum())
    keys = np.concatenate([np.asarray(p.keys)[k] for p, k in zip(parts, alive)] or [dead[:0]])
    lengths = np.concatenate([np.asarray(p.lengths)[k] for p, k in zip(parts, alive)]
                             or [np.zeros(0, np.int32)])
    merged_keys = np.concatenate([np.asarray(p.keys) for p in parts] or [dead[:0]])
    removed = Gone.joined([*(p.gone() for p in parts), gone])
    removed = removed.where(~np.isin(removed.keys, merged_keys))  # those rows are gone here
    return Postings(keys.astype(np.int64), lengths.astype(np.int32), indptr, rows, tf,
                    removed.keys, removed.lengths, removed.ptr, removed.terms)


BLOCK = 4_000_000  # postings read at a time by `merge`


def _kept_blocks(part: Postings, keep: np.ndarray
                 ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """A part's postings of rows it keeps, by blocks of whole terms of about BLOCK postings:
    (first term id, kept postings per term, their rows, their counts)."""
    indptr = np.asarray(part.indptr)
    cuts = np.unique(np.r_[np.searchsorted(indptr, np.arange(0, indptr[-1], BLOCK),
                                           side="right") - 1, part.terms])
    for a, b in zip(cuts[:-1], cuts[1:]):
        lo, hi = int(indptr[a]), int(indptr[b])
        part_rows = np.asarray(part.rows[lo:hi])
        kept = keep[part_rows]
        term = np.repeat(np.arange(b - a), np.diff(indptr[a:b + 1]))
        count = np.bincount(term[kept], minlength=b - a)
        yield int(a), count, part_rows[kept], np.asarray(part.tf[lo:hi])[kept]
