"""Speed of the engine, each number beside a baseline measured in the same run.

- indexing: passages/s of a fresh build, and as a fraction of raw
  `SentenceTransformer.encode` over the very same passage texts;
- warm `retrieve`: p50/p95, beside LlamaIndex's default in-memory vector store fused with
  its BM25 retriever by `QueryFusionRetriever` over the same passages and vectors;
- query embedding with 1 and 2 torch threads, with the other core idle and busy;
- cold `qa ask` and `qa --help` from a new process.

    python bench/benchmark.py                       # seed corpus
    python bench/benchmark.py --corpus ../shared/bench/scifact/corpus.jsonl \
        --queries ../shared/bench/scifact/queries_test.jsonl

Reproduces: README.md's "Speed" line points here, but none of its figures is recorded in
README.md or eval/RESULTS.md today. Takes: not recorded.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SEED_QUESTIONS = [
    "What did Russia demand?",
    "How many troops has Russia deployed near Ukraine?",
    "Who is the NATO Secretary-General?",
    "Why did the State Department reduce embassy staff?",
    "How many US troops might be sent?",
    "What did the Kremlin call the reports?",
    "Where did Biden meet his military officials?",
    "What did the UK Foreign Office say?",
]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def busy() -> None:
    while True:
        pass


def bench_indexing(corpus: list[Path], limit: int | None, workdir: Path) -> dict:
    from qa import Engine
    from qa.ingest.chunk import embed_text

    source = corpus
    if limit:  # a prefix of a JSONL corpus, to keep the run short
        small = workdir / "corpus.jsonl"
        with open(corpus[0]) as src, open(small, "w") as dst:
            for _, line in zip(range(limit), src):
                dst.write(line)
        source = [small]
    engine = Engine(workdir / "index-build")
    engine.embedder.encode(["load the model outside the timed part, as for the raw encode"])
    t = time.perf_counter()
    report = engine.sync(source)
    build = time.perf_counter() - t
    index = engine.index
    n = len(index)
    texts = [
        embed_text(index.node(p).metadata["embed_title"], index.node(p).text)
        for p in index.ids_of(index.keys()).values()
    ]
    t = time.perf_counter()
    engine.embedder.encode(texts)
    raw = time.perf_counter() - t
    return {
        "documents": len(report.added),
        "passages": n,
        "build_s": round(build, 2),
        "build_passages_per_s": round(n / build, 1),
        "raw_encode_passages_per_s": round(n / raw, 1),
        "fraction_of_raw": round(raw / build, 3),
    }


def bench_retrieve(index_dir: Path, sources: list[Path], questions: list[str]) -> dict:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.core.schema import TextNode
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.retrievers.bm25 import BM25Retriever

    from qa import Engine
    from qa.models.embed import model_path

    engine = Engine.open(sources=sources, index_dir=index_dir, show_progress=True)
    for q in questions[:5]:
        engine.retrieve(q)
    ours = [t for q in questions for t in timed(lambda q=q: engine.retrieve(q, k=5), 1)]

    # LlamaIndex's default: SimpleVectorStore + BM25Retriever fused by QueryFusionRetriever,
    # over the same passages and the same vectors (no re-embedding).
    index = engine.index
    keys = index.keys()
    names = index.ids_of(keys)
    ids = [names[int(k)] for k in keys]
    vectors = index.vectors.fetch(keys)
    nodes = []
    for pid, vec in zip(ids, vectors):
        node = index.node(pid)
        nodes.append(TextNode(id_=pid, text=node.text, embedding=vec.tolist()))
    embed = HuggingFaceEmbedding(model_name=str(model_path()), device="cpu")
    vindex = VectorStoreIndex(nodes, embed_model=embed)
    bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=5)
    fusion = QueryFusionRetriever(
        [vindex.as_retriever(similarity_top_k=5), bm25],
        similarity_top_k=5,
        num_queries=1,
        mode="reciprocal_rerank",
        use_async=False,
        llm=MockLLM(),  # only used to write extra queries, which num_queries=1 turns off
    )
    for q in questions[:5]:
        fusion.retrieve(q)
    theirs = [t for q in questions for t in timed(lambda q=q: fusion.retrieve(q), 1)]
    return {
        "questions": len(questions),
        "passages": len(index),
        "qa_retrieve_p50_ms": round(pct(ours, 50), 2),
        "qa_retrieve_p95_ms": round(pct(ours, 95), 2),
        "llamaindex_fusion_p50_ms": round(pct(theirs, 50), 2),
        "llamaindex_fusion_p95_ms": round(pct(theirs, 95), 2),
        "speedup_p50": round(pct(theirs, 50) / pct(ours, 50), 1),
    }


def bench_threads() -> dict:
    import torch

    from qa.models.embed import make_embedder

    embedder = make_embedder()
    out = {}
    for load in ("idle", "busy"):
        hog = mp.Process(target=busy, daemon=True) if load == "busy" else None
        if hog:
            hog.start()
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for _ in range(3):
                embedder.model.encode("warm up")
            runs = timed(lambda: embedder.model.encode("What did Russia demand?"), 30)
            out[f"query_embed_{threads}_threads_{load}_p50_ms"] = round(pct(runs, 50), 1)
        if hog:
            hog.terminate()
    return out


def bench_cold(index_dir: Path, sources: list[Path], question: str) -> dict:
    qa = shutil.which("qa") or str(Path(sys.executable).parent / "qa")
    source_args = [a for s in sources for a in ("--source", str(s))]
    ask = [qa, "ask", question, "--index", str(index_dir), *source_args]
    help_runs, ask_runs = [], []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([qa, "--help"], check=True, capture_output=True)
        help_runs.append(time.perf_counter() - t)
        t = time.perf_counter()
        done = subprocess.run(ask, capture_output=True, text=True)
        ask_runs.append(time.perf_counter() - t)
        if done.returncode != 0:
            raise SystemExit(f"qa ask failed: {done.stderr.strip()}")
    return {
        "qa_help_s": round(statistics.median(help_runs), 3),
        "cold_qa_ask_s": round(statistics.median(ask_runs), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="qa speed benchmark")
    parser.add_argument("--corpus", nargs="+", default=[str(ROOT / "seeds")])
    parser.add_argument("--queries", help="BEIR queries.jsonl (default: seed questions)")
    parser.add_argument("--index", help="reuse this index for the retrieval part")
    parser.add_argument("--limit", type=int, help="index only the first N JSONL lines "
                        "in the indexing part")
    parser.add_argument("--max-queries", type=int, default=200)
    args = parser.parse_args()

    corpus = [Path(c).resolve() for c in args.corpus]
    if args.queries:
        questions = [json.loads(line)["text"] for line in open(args.queries)]
    else:
        questions = SEED_QUESTIONS * 4
    questions = questions[: args.max_queries]
    results: dict = {"corpus": [str(c) for c in corpus]}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results["indexing"] = bench_indexing(corpus, args.limit, work)
        index_dir = Path(args.index) if args.index else work / "index"
        results["retrieve"] = bench_retrieve(index_dir, corpus, questions)
        results["threads"] = bench_threads()
        results["cold"] = bench_cold(index_dir, corpus, questions[0])
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
