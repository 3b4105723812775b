"""Question -> ranked passages: dense (FAISS) and BM25 fused into one calibrated score.

LlamaIndex's `QueryFusionRetriever` fuses by rank (RRF) or by per-query min-max scaling, so its
scores do not mean the same from one question to the next; abstention needs scores that do.
Here both signals are absolute:

    cosine    the question's cosine with the passage (unit vectors, inner product)
    coverage  BM25 score / the largest BM25 score any passage could reach for this question
              (the sum of the question terms' IDFs in Lucene's BM25, whose term factor < 1),
              i.e. how much of the question's weighted vocabulary the passage holds, in [0, 1)

    fused = w * cosine + (1 - w) * coverage

The weight w was chosen on SciFact's train split (see bench/fusion.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle

from qa.embed import Embedder
from qa.index import PassageIndex
from qa.settings import RetrieveSettings


@dataclass(frozen=True)
class Hit:
    passage_id: str
    score: float  # fused
    cosine: float
    coverage: float


def bm25_idf(doc_freq: np.ndarray, n_docs: int) -> np.ndarray:
    """Lucene's BM25 IDF, log(1 + (N - df + 0.5) / (df + 0.5)) (as bm25s's default method)."""
    return np.log(1.0 + (n_docs - doc_freq + 0.5) / (doc_freq + 0.5))


def top_rows(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest scores, best first, without sorting them all."""
    if scores.size <= n:
        return np.argsort(-scores, kind="stable")
    top = np.argpartition(-scores, n)[:n]
    return top[np.argsort(-scores[top], kind="stable")]


def fuse(cosine: np.ndarray, coverage: np.ndarray, dense_weight: float) -> np.ndarray:
    """Convex combination of two absolute scores."""
    return dense_weight * cosine + (1.0 - dense_weight) * coverage


class LexicalScorer:
    """BM25 scores of every passage for a question, and their coverage normalization."""

    def __init__(self, index: PassageIndex) -> None:
        self.index = index
        retriever = index.bm25
        self.bm25 = retriever.bm25 if retriever is not None else None
        if self.bm25 is not None:
            indptr = np.asarray(self.bm25.scores["indptr"])
            self.doc_freq = np.diff(indptr).astype(np.float64)
            self.n_docs = int(self.bm25.scores["num_docs"])
            self.stemmer = retriever.stemmer
            self.token_pattern = retriever.token_pattern

    def token_ids(self, question: str) -> list[int]:
        import bm25s

        tokens = bm25s.tokenize(
            question,
            stemmer=self.stemmer,
            token_pattern=self.token_pattern,
            return_ids=False,
            show_progress=False,
        )[0]
        return self.bm25.get_tokens_ids(list(tokens)) if tokens else []

    def scores(self, question: str) -> np.ndarray:
        """Coverage in [0, 1) of every BM25 row (aligned with `index.bm25_ids`)."""
        if self.bm25 is None:
            return np.zeros(0)
        ids = self.token_ids(question)
        if not ids:
            return np.zeros(len(self.index.bm25_ids))
        raw = self.bm25.get_scores_from_ids(ids)
        ceiling = float(bm25_idf(self.doc_freq[ids], self.n_docs).sum())
        return raw / ceiling if ceiling > 0 else np.zeros_like(raw)


class HybridRetriever(BaseRetriever):
    """A LlamaIndex retriever over a `PassageIndex`; plugs into any LlamaIndex query engine."""

    def __init__(
        self,
        index: PassageIndex,
        embedder: Embedder,
        settings: RetrieveSettings,
        k: int = 5,
    ) -> None:
        super().__init__()
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self.k = k
        self.lexical = LexicalScorer(index)
        self._row = {pid: i for i, pid in enumerate(index.bm25_ids)}

    def search(self, question: str, k: int | None = None) -> list[Hit]:
        k = k or self.k
        if self.index.passage_count() == 0:
            return []
        query = self.embedder.encode_query(question)
        n = max(k, self.settings.candidates)
        dense_ids, _ = self.index.vectors.search(query, n)
        coverage_all = self.lexical.scores(question)
        lexical_rows = [int(r) for r in top_rows(coverage_all, n) if coverage_all[r] > 0]
        candidates = list(dict.fromkeys(dense_ids + [self.index.bm25_ids[r] for r in lexical_rows]))
        cosine = self.index.vectors.cosines(query, candidates)
        coverage = np.asarray([coverage_all[self._row[c]] for c in candidates])
        fused = fuse(cosine, coverage, self.settings.dense_weight)
        order = np.argsort(-fused, kind="stable")[:k]
        return [
            Hit(candidates[i], float(fused[i]), float(cosine[i]), float(coverage[i]))
            for i in order
        ]

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [
            NodeWithScore(node=self.index.node(hit.passage_id), score=hit.score)
            for hit in self.search(query_bundle.query_str)
        ]
