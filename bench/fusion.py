"""Choose the fusion of dense and BM25 scores by measurement on SciFact's train split.

Scores every passage of the corpus for every query (cosine, BM25 coverage), then ranks
documents (max over their passages) under several fusions and prints nDCG@10 for each:
dense only, BM25 only, reciprocal-rank fusion (LlamaIndex's `reciprocal_rerank`), per-query
min-max fusion (LlamaIndex's `relative_score`), and the convex combination of absolute scores
used by qa/answering/retrieve.py for a sweep of weights. Tune on train; report test with `qa eval`.

    python bench/fusion.py [--data ../shared/bench/scifact] [--split train] [--index DIR]

Reproduces: SciFact train nDCG@10 0.735 at dense_weight 0.45 (0.687 dense only, 0.663 BM25 only,
0.710 reciprocal-rank fusion, 0.725 per-query min-max), recorded in qa/settings.py at commit
69af8fc (2026-11-25) and quoted in eval/RESULTS.md's SciFact section. Takes: not recorded.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from qa import Engine


def read_queries(folder: Path, split: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with open(folder / f"qrels_{split}.tsv") as fh:
        next(fh)
        for line in fh:
            qid, did, score = line.rstrip("\n").split("\t")
            qrels[qid][did] = int(score)
    queries = {}
    for name in sorted(folder.glob("queries*.jsonl")):
        for line in name.open():
            rec = json.loads(line)
            if rec["_id"] in qrels:
                queries[rec["_id"]] = rec["text"]
    return queries, qrels


def ndcg_at_10(ranked: list[str], rels: dict[str, int]) -> float:
    """nDCG@10 with linear gain, as pytrec_eval computes it for BEIR."""
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(rels.values(), reverse=True)[:10]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def doc_ranking(scores: np.ndarray, doc_of_row: np.ndarray, n_docs: int, doc_names: list[str]):
    best = np.full(n_docs, -np.inf)
    np.maximum.at(best, doc_of_row, scores)
    top = np.argpartition(-best, 10)[:10]
    top = top[np.argsort(-best[top])]
    return [doc_names[i] for i in top]


def ranks(scores: np.ndarray) -> np.ndarray:
    """0-based rank of every entry, best first."""
    out = np.empty(len(scores))
    out[np.argsort(-scores)] = np.arange(len(scores))
    return out


def min_max(x: np.ndarray) -> np.ndarray:
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/bench/scifact")
    parser.add_argument("--split", default="train")
    parser.add_argument("--index", default=".cache/bench/scifact-index")
    args = parser.parse_args()
    data = Path(args.data)
    engine = Engine.open(sources=[data / "corpus.jsonl"], index_dir=args.index, show_progress=True)
    index = engine.index
    lexical = index.lexical  # BM25 coverage (qa/storage/lexical.py)
    keys = index.keys()  # one row per passage
    names = index.ids_of(keys)
    rows = [names[int(k)] for k in keys]
    matrix = index.vectors.fetch(keys)
    doc_names = sorted(index.documents)
    doc_pos = {d: i for i, d in enumerate(doc_names)}
    doc_of_row = np.asarray([doc_pos[index.node(r).metadata["doc_id"]] for r in rows])
    queries, qrels = read_queries(data, args.split)
    t = time.time()
    qvecs = engine.embedder.encode(list(queries.values()))
    print(f"{len(queries)} {args.split} queries, {len(rows)} passages, "
          f"{len(doc_names)} documents; queries embedded in {time.time() - t:.1f} s")

    weights = [round(w, 2) for w in np.arange(0.0, 1.01, 0.05)]
    results: dict[str, list[float]] = defaultdict(list)

    def score(name: str, passage_scores: np.ndarray, rels: dict[str, int]) -> None:
        ranked = doc_ranking(passage_scores, doc_of_row, len(doc_names), doc_names)
        results[name].append(ndcg_at_10(ranked, rels))

    for (qid, text), qvec in zip(queries.items(), qvecs):
        cos = matrix @ qvec
        covered, values = lexical.coverage(text)
        cov = np.zeros(len(keys))
        cov[np.searchsorted(keys, covered)] = values
        rels = qrels[qid]
        for w in weights:
            score(f"convex w={w:.2f}", w * cos + (1 - w) * cov, rels)
        score("reciprocal rank (k=60)", 1 / (61 + ranks(cos)) + 1 / (61 + ranks(cov)), rels)
        cand = np.union1d(np.argsort(-cos)[:100], np.argsort(-cov)[:100])
        relative = np.full(len(cos), -1.0)
        relative[cand] = 0.5 * min_max(cos[cand]) + 0.5 * min_max(cov[cand])
        score("relative score (min-max)", relative, rels)
    print(f"{'fusion':28s} nDCG@10 ({args.split})")
    for name, vals in results.items():
        print(f"{name:28s} {np.mean(vals):.4f}")
    best = max((k for k in results if k.startswith("convex")), key=lambda k: np.mean(results[k]))
    print(f"best convex: {best} {np.mean(results[best]):.4f}")


if __name__ == "__main__":
    main()
