"""The numbers `qa eval` reports, as small pure functions over ranked ids and outcomes.

Hit rate, MRR and recall are LlamaIndex's own metrics (`llama_index.core.evaluation`), cut at
k by `AtK` so that `RetrieverEvaluator` can report e.g. recall@10 and recall@100 side by side.
nDCG is computed here because LlamaIndex's `NDCG` takes binary relevance only and does not cut
the ideal ranking at k, while BEIR's qrels may be graded and its nDCG@k (pytrec_eval) cuts both
rankings at k.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from llama_index.core.evaluation.retrieval.metrics import MRR, HitRate, Recall
from llama_index.core.evaluation.retrieval.metrics_base import (
    BaseRetrievalMetric,
    RetrievalMetricResult,
)


class AtK(BaseRetrievalMetric):
    """A LlamaIndex retrieval metric computed on the first k retrieved ids (e.g. mrr@10)."""

    metric: BaseRetrievalMetric
    k: int

    @property
    def metric_name(self) -> str:  # the key of the result in `RetrieverEvaluator` output
        return f"{self.metric.metric_name}@{self.k}"

    def compute(
        self,
        query: str | None = None,
        expected_ids: list[str] | None = None,
        retrieved_ids: list[str] | None = None,
        expected_texts: list[str] | None = None,
        retrieved_texts: list[str] | None = None,
        **kwargs: Any,
    ) -> RetrievalMetricResult:
        top = list(retrieved_ids or [])[: self.k]
        if not top or not expected_ids:  # LlamaIndex's metrics refuse empty lists; it is a 0
            return RetrievalMetricResult(score=0.0)
        return self.metric.compute(query, list(expected_ids), top)


def hit_at_k(ranked: Sequence[str], relevant: Sequence[str], k: int) -> float:
    """1 when any relevant id is among the first k, else 0."""
    return AtK(metric=HitRate(), k=k).compute(None, list(relevant), list(ranked)).score


def mrr_at_k(ranked: Sequence[str], relevant: Sequence[str], k: int) -> float:
    """1 / rank of the first relevant id within the first k, else 0."""
    return AtK(metric=MRR(), k=k).compute(None, list(relevant), list(ranked)).score


def recall_at_k(ranked: Sequence[str], relevant: Sequence[str], k: int) -> float:
    """The share of the relevant ids found among the first k."""
    return AtK(metric=Recall(), k=k).compute(None, list(relevant), list(ranked)).score


def ndcg_at_k(ranked: Sequence[str], gains: Mapping[str, float], k: int) -> float:
    """nDCG@k with linear gains (Jarvelin & Kekalainen 2002), as pytrec_eval computes it
    for BEIR: DCG = sum gain(d_i) / log2(i + 1) over the first k, divided by the DCG of the
    k best gains."""
    dcg = sum(gains.get(d, 0.0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((g for g in gains.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (linear interpolation, as numpy), 0 for no values."""
    return float(np.percentile(values, q)) if len(values) else 0.0


def abstention(
    declined: Sequence[bool], answerable: Sequence[bool]
) -> tuple[float | None, float | None]:
    """Precision and recall of declining: of the declined questions, the share that the
    documents do not answer; of those questions, the share declined. None where the ratio
    has nothing to count (no declines; no unanswerable questions)."""
    right = sum(d and not a for d, a in zip(declined, answerable))
    n_declined = sum(declined)
    n_unanswerable = sum(not a for a in answerable)
    precision = right / n_declined if n_declined else None
    recall = right / n_unanswerable if n_unanswerable else None
    return precision, recall


def contains_any(text: str, phrases: Sequence[str]) -> bool:
    """Whether any phrase occurs in the text, ignoring case and runs of white space."""
    haystack = " ".join(text.split()).casefold()
    return any(" ".join(p.split()).casefold() in haystack for p in phrases if p.strip())


def mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0
