"""Searches -> ranked passages: dense and BM25 fused into one calibrated score.

LlamaIndex's `QueryFusionRetriever` fuses by rank (RRF) or by per-query min-max scaling, so its
scores do not mean the same from one question to the next; abstention needs scores that do.
Here both signals are absolute:

    cosine    the search's cosine with the passage (unit vectors, inner product)
    coverage  BM25 coverage (qa/storage/lexical.py): how much of the search's weighted vocabulary
              the passage holds, in [0, 1)

    fused = w * cosine + (1 - w) * coverage

The weight w was chosen on SciFact's train split (see bench/fusion.py). A follow-up is
searched twice (alone and joined to earlier questions, see qa/answering/chat.py); each passage then
scores the weighted sum of its fused scores. `search` is the one way in: `Engine.retrieve`,
`Engine.ask` and `Engine.as_retriever` all call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from qa.settings import RetrieveSettings

if TYPE_CHECKING:
    from qa.models.embed import Embedder
    from qa.storage.index import PassageIndex


@dataclass(frozen=True)
class WeightedQuery:
    """A text searched on behalf of the question, and its share of the evidence; `vector`,
    once embedded, so that search and reading embed it once between them."""

    text: str
    weight: float = 1.0
    vector: np.ndarray | None = field(default=None, compare=False, repr=False)


def embedded(queries: Sequence[WeightedQuery], embedder: Embedder) -> tuple[WeightedQuery, ...]:
    """The queries with their vectors (one model call for those that lack one)."""
    missing = [q.text for q in queries if q.vector is None]
    vectors = iter(embedder.encode_queries(missing) if missing else [])
    return tuple(q if q.vector is not None else replace(q, vector=next(vectors))
                 for q in queries)


@dataclass(frozen=True)
class Hit:
    passage_id: str
    score: float  # fused
    cosine: float
    coverage: float


def search(
    index: PassageIndex,
    embedder: Embedder,
    queries: Sequence[WeightedQuery],
    k: int,
    settings: RetrieveSettings,
    allowed: np.ndarray | None = None,
) -> list[Hit]:
    """The k best passages for one search or several weighted ones, best first. With
    several, a passage missing from one search's top counts with that search's lowest score.
    `allowed`: the only passage keys to return (ascending; qa/answering/scope.py), applied inside
    the
    vector store's and BM25's search."""
    if len(index) == 0 or not queries:
        return []
    queries = embedded(queries, embedder)
    vectors = [q.vector for q in queries]
    if len(queries) == 1:
        found = _hybrid(index, vectors[0], queries[0].text, k, settings, allowed)
    else:
        depth = max(k, settings.fused_depth)
        results = [_hybrid(index, v, q.text, depth, settings, allowed)
                   for q, v in zip(queries, vectors)]
        totals: dict[int, np.ndarray] = {}
        keys = {key for r in results for key in r}
        for query, hits in zip(queries, results):
            floor = list(hits.values())[-1] if hits else np.zeros(3)
            for key in keys:
                totals[key] = totals.get(key, 0.0) + query.weight * hits.get(key, floor)
        best = sorted(totals, key=lambda key: -totals[key][0])[:k]
        found = {key: totals[key] for key in best}
    ids = index.ids_of(found)
    return [Hit(ids[key], *(float(x) for x in signals)) for key, signals in found.items()]


def _hybrid(
    index: PassageIndex, query: np.ndarray, text: str, k: int, settings: RetrieveSettings,
    allowed: np.ndarray | None = None,
) -> dict[int, np.ndarray]:
    """Dense and BM25 candidates of one search, fused: passage key -> (fused, cosine,
    coverage), best first."""
    n = max(k, settings.candidates)
    dense_keys, _ = index.vectors.search(query, n, allowed)
    lexical_keys, coverage_all = index.lexical.coverage(text, allowed)
    top = top_rows(coverage_all, n)
    candidates = np.asarray(list(dict.fromkeys([*dense_keys.tolist(),
                                                 *lexical_keys[top].tolist()])), dtype=np.int64)
    cosine = index.vectors.fetch(candidates) @ query.astype(np.float32)
    covered = np.zeros(len(candidates))  # BM25 keys come in ascending order
    at = np.searchsorted(lexical_keys, candidates)
    hit = at < len(lexical_keys)
    hit[hit] = lexical_keys[at[hit]] == candidates[hit]
    covered[hit] = coverage_all[at[hit]]
    fused = fuse(cosine, covered, settings.dense_weight)
    order = np.argsort(-fused, kind="stable")[:k]
    return {int(candidates[i]): np.asarray([fused[i], cosine[i], covered[i]]) for i in order}


def top_rows(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest scores, best first, without sorting them all."""
    if scores.size <= n:
        return np.argsort(-scores, kind="stable")
    top = np.argpartition(-scores, n)[:n]
    return top[np.argsort(-scores[top], kind="stable")]


def fuse(cosine: np.ndarray, coverage: np.ndarray, dense_weight: float) -> np.ndarray:
    """Convex combination of two absolute scores."""
    return dense_weight * cosine + (1.0 - dense_weight) * coverage
