"""The learned reader as a passage reranker: the fused top passages reordered by their best
sentence's probability of answering (qa/models/pair_reader.py), against the fused order.

For each judged question of each BEIR folder, qa's search returns the top --depth passages
(the index `qa eval` builds and caches for that corpus); the reader reads every sentence of
each (after the sentence before it) in one call per question; a passage's reader score is its
best sentence's log-odds. Orders compared, each over documents (a document ranked by its best
passage, as `qa eval` ranks them):
- fused: qa's retrieval as shipped;
- reader: by the reader's score alone (ties keep the fused order);
- mixed: the reader's log-odds plus the fused score's z-score within the question (a fixed
  equal weighting, not tuned).
Metrics: nDCG@10, hit@1 and hit@5 (a relevant document in the top k), and the reader's
pairs and milliseconds per question (onnxruntime, --threads). Unanswerable questions (no
relevant document) are skipped.

    PYTHONPATH=. .venv/bin/python bench/rerank.py eval/squad2/validation \\
        eval/squad/validation ../shared/bench/clapnq ../shared/bench/scifact \\
        [--depth 20] [--limit N] [--threads 1] [--json OUT]

Reproduces: eval/results/rerank.md. Takes: about a second a question at depth 20 on 2 shared
cores; the four sets above (1,389 questions) took 46 minutes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from qa.engine import Engine
from qa.eval.baselines import CACHE_ROOT
from qa.eval.beir import load_beir
from qa.eval.metrics import hit_at_k, ndcg_at_k
from qa.models.pair_reader import PairReader
from qa.settings import Settings

ORDERS = ("fused", "reader", "mixed")


def documents(passages, scores: np.ndarray) -> list[str]:
    """Document ids ranked by their best passage's score (stable: ties keep passage order)."""
    best: dict[str, float] = {}
    for p, s in zip(passages, scores):
        best[p.doc_id] = max(best.get(p.doc_id, -np.inf), float(s))
    return sorted(best, key=lambda d: -best[d])


def log_odds(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def rerank_part(folder: Path, depth: int, limit: int | None, reader: PairReader) -> dict:
    dataset = load_beir(folder)
    engine = Engine.open(sources=[dataset.corpus], settings=Settings(),
                         index_dir=CACHE_ROOT / dataset.corpus_key() / "qa-index")
    judged = [(q, t) for q, t in dataset.queries.items() if dataset.relevant(q)][:limit]
    per: dict[str, list[list[float]]] = {o: [] for o in ORDERS}
    pairs, millis = [], []
    for qid, text in judged:
        passages = engine.retrieve(text, k=depth)
        if not passages:
            continue
        units, owner = [], []
        for k, p in enumerate(passages):
            spans = engine.sentences(p)
            for i, (a, b) in enumerate(spans):
                before = p.text[spans[i - 1][0] - p.start: spans[i - 1][1] - p.start] if i else ""
                units.append((before, p.text[a - p.start: b - p.start]))
                owner.append(k)
        began = time.perf_counter()
        read = reader.read(text, units)
        millis.append((time.perf_counter() - began) * 1000)
        pairs.append(len(units))
        best = np.full(len(passages), -50.0)
        for k, r in zip(owner, read):
            best[k] = max(best[k], log_odds(r.probability))
        fused = np.array([p.score for p in passages])
        z = (fused - fused.mean()) / (fused.std() or 1.0)
        rank_key = -np.arange(len(passages)) * 1e-9  # ties keep the fused order
        scores = {"fused": fused, "reader": best + rank_key, "mixed": best + z + rank_key}
        gains = dataset.qrels[qid]
        relevant = dataset.relevant(qid)
        for order in ORDERS:
            ranked = documents(passages, scores[order])
            per[order].append([ndcg_at_k(ranked, gains, 10), hit_at_k(ranked, relevant, 1),
                               hit_at_k(ranked, relevant, 5)])
    out = {order: dict(zip(("ndcg@10", "hit@1", "hit@5"),
                           np.round(np.mean(rows, axis=0), 3).tolist()))
           for order, rows in per.items()}
    out["questions"] = len(pairs)
    out["pairs per question (median)"] = float(np.median(pairs))
    out["reader ms per question (median)"] = round(float(np.median(millis)), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from qa.models.pair_reader import FOLDER

    reader = PairReader(FOLDER, threads=args.threads)
    report = {}
    for folder in args.folders:
        report[str(folder)] = rerank_part(folder, args.depth, args.limit, reader)
        print(folder, json.dumps(report[str(folder)]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
