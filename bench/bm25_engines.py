"""BM25 engines on the same passages and queries: bm25s (as the product builds it) vs SQLite FTS5.

Part a, quality: nDCG@10 on SciFact's test queries (BEIR layout, --data, default
/work/shared/bench/scifact: corpus.jsonl, queries_test.jsonl, qrels_test.tsv) of
  (i)   bm25s as the product builds it: LlamaIndex `BM25Retriever.from_defaults(nodes=...)` over
        TextNodes holding the product's passages (qa.ingest.load reads corpus.jsonl,
        qa.ingest.chunk cuts each abstract into passages with the default ChunkSettings and the
        packaged model's tokenizer; the text is the passage text without the title, as
        qa/storage/index.py's `refresh_lexical` gives BM25);
  (ii)  SQLite FTS5 `bm25()` over the same passages pre-tokenised exactly as the product
        (qa.storage.lexical.tokenize: lower case, `(?u)\\b\\w\\w+\\b`, bm25s's STOPWORDS_EN removed,
        PyStemmer english), joined by spaces, in a table with the unicode61 tokenizer
        (`remove_diacritics 0 tokenchars '_'`, so that it splits nothing the product keeps
        whole); the query is the same tokens, each quoted, OR-ed;
  (iii) FTS5 with `tokenize='porter unicode61'` on the raw passage text; the query is its
        lower-cased `\\w+` words, quoted and OR-ed (iv: the same less bm25s's stopwords).
Each engine returns 100 passages; documents are ranked by their best passage (as
qa/eval/beir.py does) and nDCG@10 uses the qrels' graded relevance with linear gain.
The same four are also run with one passage per document holding title + "\\n" + abstract.

Part b, scale: passages made by repeating the distinct SciFact passages and SQuAD paragraphs
(--squad, /work/shared/train/squad-dev-half/train-half.json) with distinct ids up to each
--sizes (default 100k and 1M). Per size, each engine in a child process watched for RSS
(--max-rss-gb, default 10) and time (--max-minutes, default 15):
  bm25s: full build (`bm25s.BM25().index` on the pre-tokenised corpus, as BM25Retriever does;
  the product rebuilds it on every write today), tokenising time (measured on the distinct
  passages, scaled to N), single-query `retrieve(k=100)` p50/p95 over the SciFact test
  queries, RSS growth, size of `save`;
  FTS5 (ii's table, WAL journal mode): bulk insert in one transaction, insert one passage +
  commit and delete one + commit (median of 20, with synchronous FULL and NORMAL), query
  p50/p95 (`SELECT rowid FROM t WHERE t MATCH ? ORDER BY rank LIMIT 100`), 'optimize' time
  and query p50/p95 after it, RSS growth, size on disk. Files go to --tmp (/tmp/bm25-bench).

    .venv/bin/python bench/bm25_engines.py --json /tmp/bm25-bench/bm25.json
    .venv/bin/python bench/bm25_engines.py --sizes 100000 --skip-quality

Reproduces: the comparison behind qa/storage/postings.py (BM25 kept as term counts in qa's SQLite,
not FTS5); none of its figures is recorded in eval/RESULTS.md or README.md today. Takes: not
recorded (each engine and size is stopped at --max-minutes).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import re
import sqlite3
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qa.storage.lexical import tokenize

DEPTH = 100
WORD = re.compile(r"\w+")
PRETOKENISED = "unicode61 remove_diacritics 0 tokenchars '_'"
PORTER = "porter unicode61"


def rss_mb(pid: int | str = "self") -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def stopwords() -> list[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return list(STOPWORDS_EN)


# ---- data ----------------------------------------------------------------------------------
def read_split(folder: Path, split: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    from qa.eval.beir import qrels_path, read_qrels

    qrels = {q: {d: int(g) for d, g in rels.items()}
             for q, rels in read_qrels(qrels_path(folder, split)).items()}
    queries: dict[str, str] = {}
    for name in sorted(folder.glob("queries*.jsonl")):
        for line in name.open(encoding="utf-8"):
            rec = json.loads(line)
            if rec["_id"] in qrels:
                queries[rec["_id"]] = rec["text"]
    return queries, dict(qrels)


def product_passages(corpus: Path) -> list[tuple[str, str, str]]:
    """(passage id, document id, passage text) as the product indexes SciFact."""
    from qa.ingest.chunk import chunk_document
    from qa.ingest.load import load_file
    from qa.models.embed import SentenceTransformerEmbedder, model_folder
    from qa.settings import ChunkSettings, EmbedSettings

    settings = EmbedSettings()
    count = SentenceTransformerEmbedder(settings, model_folder(settings.model_name)).count_tokens
    loaded = load_file(corpus, corpus.parent)
    out = []
    for doc in loaded.documents:
        for node in chunk_document(doc, ChunkSettings(), count):
            out.append((node.id_, node.metadata["doc_id"], node.text))
    return out


def titled_documents(corpus: Path) -> list[tuple[str, str, str]]:
    out = []
    for line in corpus.open(encoding="utf-8"):
        rec = json.loads(line)
        title = (rec.get("title") or "").strip()
        text = f"{title}\n{rec['text']}" if title else rec["text"]
        out.append((str(rec["_id"]), str(rec["_id"]), text))
    return out


def squad_paragraphs(path: Path) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [p["context"] for article in data["data"] for p in article["paragraphs"]]


# ---- metric --------------------------------------------------------------------------------
def ndcg_at_10(ranked: Sequence[str], rels: dict[str, int]) -> float:
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(rels.values(), reverse=True)[:10]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def documents_by_best(hits: Sequence[tuple[int, float]], doc_of: Sequence[str]) -> list[str]:
    """Passage hits (row, score; higher is better) -> document ids by their best passage."""
    best: dict[str, float] = {}
    for row, score in hits:
        doc = doc_of[row]
        if doc not in best or score > best[doc]:
            best[doc] = score
    return sorted(best, key=lambda d: -best[d])


# ---- engines -------------------------------------------------------------------------------
def fts_query(tokens: Sequence[str]) -> str:
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in tokens)


def open_fts(path: str, tokenizer: str, synchronous: str = "FULL") -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    if path != ":memory:":
        con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"PRAGMA synchronous={synchronous}")
    con.execute(f'CREATE VIRTUAL TABLE IF NOT EXISTS t USING fts5(body, tokenize="{tokenizer}")')
    return con


def fts_search(con: sqlite3.Connection, query: str, k: int = DEPTH) -> list[tuple[int, float]]:
    if not query:
        return []
    rows = con.execute("SELECT rowid, rank FROM t WHERE t MATCH ? ORDER BY rank LIMIT ?",
                       (query, k)).fetchall()
    return [(rowid - 1, -rank) for rowid, rank in rows]  # rowid = row + 1; rank: lower better


def quality(passages: list[tuple[str, str, str]], queries: dict[str, str],
            qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    from llama_index.core.schema import TextNode
    from llama_index.retrievers.bm25 import BM25Retriever

    stop = stopwords()
    doc_of = [doc for _, doc, _ in passages]
    texts = [text for _, _, text in passages]
    row_of = {pid: i for i, (pid, _, _) in enumerate(passages)}
    runs: dict[str, Callable[[str], list[tuple[int, float]]]] = {}

    nodes = [TextNode(id_=pid, text=text) for pid, _, text in passages]
    with np.errstate(divide="ignore", invalid="ignore"):
        retriever = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=DEPTH)
    runs["(i) bm25s BM25Retriever"] = lambda q: [
        (row_of[h.node.node_id], float(h.score)) for h in retriever.retrieve(q)]

    pre = open_fts(":memory:", PRETOKENISED)
    pre.execute("BEGIN")
    pre.executemany("INSERT INTO t(rowid, body) VALUES (?, ?)",
                    ((i + 1, " ".join(toks)) for i, toks in enumerate(tokenize(texts, stop))))
    pre.execute("COMMIT")
    runs["(ii) FTS5 pre-tokenised, unicode61"] = lambda q: fts_search(
        pre, fts_query(tokenize([q], stop)[0]))

    porter = open_fts(":memory:", PORTER)
    porter.execute("BEGIN")
    porter.executemany("INSERT INTO t(rowid, body) VALUES (?, ?)",
                       ((i + 1, text) for i, text in enumerate(texts)))
    porter.execute("COMMIT")
    stop_set = set(stop)
    runs["(iii) FTS5 porter unicode61, raw text"] = lambda q: fts_search(
        porter, fts_query(WORD.findall(q.lower())))
    runs["(iv) = (iii), query less stopwords"] = lambda q: fts_search(
        porter, fts_query([w for w in WORD.findall(q.lower()) if w not in stop_set]))

    out = {}
    for name, run in runs.items():
        scores = [ndcg_at_10(documents_by_best(run(text), doc_of), qrels[qid])
                  for qid, text in queries.items()]
        out[name] = float(np.mean(scores))
        print(f"  {name}: nDCG@10 {out[name]:.4f}", flush=True)
    return out


# ---- scale ---------------------------------------------------------------------------------
def scale_bm25s(n: int, distinct: list[list[str]], queries: list[list[str]], tmp: Path,
                tokenise_s_per_passage: float) -> dict[str, Any]:
    import bm25s
    from bm25s.tokenization import Tokenized

    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(t, len(vocab)) for t in toks] for toks in distinct]
    corpus = [ids[i % len(ids)] for i in range(n)]  # the copies share their token lists
    before = rss_mb()
    t = time.perf_counter()
    bm25 = bm25s.BM25()
    with np.errstate(divide="ignore", invalid="ignore"):
        bm25.index(Tokenized(ids=corpus, vocab=vocab), show_progress=False)
    build_s = time.perf_counter() - t
    grown = rss_mb() - before
    del corpus
    times = []
    for q in queries:
        q = [w for w in q if w in vocab]
        if not q:
            continue
        t = time.perf_counter()
        bm25.retrieve([q], k=100, show_progress=False, n_threads=1)
        times.append((time.perf_counter() - t) * 1000)
    where = tmp / f"bm25s-{n}"
    bm25.save(str(where))
    size = sum(f.stat().st_size for f in where.iterdir())
    return {"engine": "bm25s", "n": n, "build_s": build_s,
            "tokenise_s_est": tokenise_s_per_passage * n,
            "rebuild_s_est": build_s + tokenise_s_per_passage * n,
            "query_p50_ms": float(np.percentile(times, 50)),
            "query_p95_ms": float(np.percentile(times, 95)), "queries": len(times),
            "rss_mb": grown, "disk_mb": size / 2**20}


def _median_ms(fn: Callable[[], None], reps: int = 20) -> tuple[float, float]:
    """Median and maximum ms of `reps` calls."""
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), max(times)


def _fts_latency(con: sqlite3.Connection, queries: list[str]) -> dict[str, float]:
    times = []
    for q in queries:
        t = time.perf_counter()
        con.execute("SELECT rowid FROM t WHERE t MATCH ? ORDER BY rank LIMIT 100",
                    (q,)).fetchall()
        times.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}


def scale_fts(n: int, distinct: list[list[str]], queries: list[list[str]], tmp: Path,
              optimize: bool) -> dict[str, Any]:
    bodies = [" ".join(toks) for toks in distinct]
    path = tmp / f"fts-{n}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    before = rss_mb()
    con = open_fts(str(path), PRETOKENISED)
    t = time.perf_counter()
    con.execute("BEGIN")
    con.executemany("INSERT INTO t(rowid, body) VALUES (?, ?)",
                    ((i + 1, bodies[i % len(bodies)]) for i in range(n)))
    con.execute("COMMIT")
    insert_s = time.perf_counter() - t
    t = time.perf_counter()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    checkpoint_s = time.perf_counter() - t
    out: dict[str, Any] = {"engine": "fts5", "n": n, "bulk_insert_s": insert_s,
                           "checkpoint_s": checkpoint_s}
    qs = [fts_query(q) for q in queries if q]
    lat = _fts_latency(con, qs)
    out.update({"query_p50_ms": lat["p50_ms"], "query_p95_ms": lat["p95_ms"]})
    next_row = [n + 1]

    def insert_one() -> None:
        con.execute("BEGIN")
        con.execute("INSERT INTO t(rowid, body) VALUES (?, ?)",
                    (next_row[0], bodies[next_row[0] % len(bodies)]))
        con.execute("COMMIT")
        next_row[0] += 1

    victims = iter(range(1, n, max(1, n // 100)))

    def delete_one() -> None:
        con.execute("BEGIN")
        con.execute("DELETE FROM t WHERE rowid = ?", (next(victims),))
        con.execute("COMMIT")

    for sync in ("FULL", "NORMAL"):
        con.execute(f"PRAGMA synchronous={sync}")
        out[f"insert1_commit_ms_{sync}"], out[f"insert1_max_ms_{sync}"] = _median_ms(insert_one)
        out[f"delete1_commit_ms_{sync}"], out[f"delete1_max_ms_{sync}"] = _median_ms(delete_one)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    out["disk_mb"] = sum(Path(f"{path}{s}").stat().st_size for s in ("", "-wal")
                         if Path(f"{path}{s}").exists()) / 2**20
    out["rss_mb"] = rss_mb() - before
    if optimize:
        t = time.perf_counter()
        con.execute("INSERT INTO t(t) VALUES('optimize')")
        out["optimize_s"] = time.perf_counter() - t
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        lat = _fts_latency(con, qs)
        out.update({"opt_query_p50_ms": lat["p50_ms"], "opt_query_p95_ms": lat["p95_ms"]})
        out["opt_disk_mb"] = path.stat().st_size / 2**20
    con.close()
    return out


def _child(queue: mp.Queue, fn: Callable[..., dict], args: tuple) -> None:
    try:
        queue.put(fn(*args))
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        queue.put({"error": repr(exc)})


def watched(fn: Callable[..., dict], args: tuple, max_rss_mb: float, max_s: float
            ) -> dict[str, Any]:
    """fn(*args) in a forked child; killed past max_rss_mb of RSS or max_s seconds."""
    queue: mp.Queue = mp.get_context("fork").Queue()
    proc = mp.get_context("fork").Process(target=_child, args=(queue, fn, args))
    start = time.time()
    proc.start()
    peak = 0.0
    result: dict[str, Any] | None = None
    while result is None:
        try:
            result = queue.get(timeout=0.5)
        except Exception:  # noqa: BLE001 - queue.Empty
            peak = max(peak, rss_mb(proc.pid) if proc.is_alive() else 0.0)
            if not proc.is_alive():
                result = {"error": f"child exited with {proc.exitcode}"}
            elif peak > max_rss_mb or time.time() - start > max_s:
                proc.kill()
                reason = "RSS" if peak > max_rss_mb else "time"
                result = {"stopped": f"{reason} limit: RSS peak {peak:.0f} MB after "
                                     f"{time.time() - start:.0f} s"}
    proc.join()
    result["child_peak_rss_mb"] = peak
    result["wall_s"] = time.time() - start
    return result


def _pair(r: dict, what: str) -> str:
    return " / ".join(f"{r[f'{what}_commit_ms_{s}']:.2f} ({r[f'{what}_max_ms_{s}']:.1f})"
                      for s in ("FULL", "NORMAL"))


# ---- main ----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="/work/shared/bench/scifact")
    parser.add_argument("--split", default="test")
    parser.add_argument("--squad", default="/work/shared/train/squad-dev-half/train-half.json")
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--no-optimize", action="store_true")
    parser.add_argument("--max-rss-gb", type=float, default=10.0)
    parser.add_argument("--max-minutes", type=float, default=15.0)
    parser.add_argument("--tmp", default="/tmp/bm25-bench")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    tmp = Path(args.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    data = Path(args.data)
    started = time.time()
    queries, qrels = read_split(data, args.split)
    t = time.time()
    passages = product_passages(data / "corpus.jsonl")
    print(f"{len(queries)} {args.split} queries; {len(passages):,} product passages of "
          f"{len({d for _, d, _ in passages}):,} documents (chunked in {time.time() - t:.1f} s)",
          flush=True)
    results: dict[str, Any] = {}
    if not args.skip_quality:
        print("== quality, product passages (text only)", flush=True)
        results["quality_passages"] = quality(passages, queries, qrels)
        print("== quality, one passage per document: title + abstract", flush=True)
        results["quality_titled_docs"] = quality(titled_documents(data / "corpus.jsonl"),
                                                 queries, qrels)

    scale: list[dict] = []
    if args.sizes:
        texts = [text for _, _, text in passages]
        if args.squad and Path(args.squad).is_file():
            texts += sorted(set(squad_paragraphs(Path(args.squad))))
        stop = stopwords()
        t = time.perf_counter()
        distinct = tokenize(texts, stop)
        per_passage = (time.perf_counter() - t) / len(texts)
        q_tokens = tokenize(list(queries.values()), stop)
        mean_len = np.mean([len(x) for x in distinct])
        print(f"== scale: {len(texts):,} distinct passages, {mean_len:.0f} tokens on average; "
              f"tokenising {per_passage * 1e6:.0f} us/passage", flush=True)
        results["scale_distinct"] = len(texts)
        results["tokenise_us_per_passage"] = per_passage * 1e6
        limit_mb, limit_s = args.max_rss_gb * 1024, args.max_minutes * 60
        for n in args.sizes:
            for name, fn, fargs in (
                ("bm25s", scale_bm25s, (n, distinct, q_tokens, tmp, per_passage)),
                ("fts5", scale_fts, (n, distinct, q_tokens, tmp, not args.no_optimize)),
            ):
                print(f"  {name} {n:,} ...", flush=True)
                res = watched(fn, fargs, limit_mb, limit_s)
                res.setdefault("engine", name)
                res.setdefault("n", n)
                print(f"  {json.dumps(res)}", flush=True)
                scale.append(res)
        results["scale"] = scale

    if "quality_passages" in results:
        print("\n## Quality: SciFact test nDCG@10\n")
        print("| engine | product passages (text) | title + abstract per document |")
        print("|---|---:|---:|")
        for name, value in results["quality_passages"].items():
            print(f"| {name} | {value:.4f} | {results['quality_titled_docs'][name]:.4f} |")
    if scale:
        print("\n## Scale: bm25s\n")
        print("| N | build s | tokenise s (est.) | query p50 ms | p95 ms | RSS growth MB | "
              "child peak RSS MB | disk MB | note |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in (r for r in scale if r["engine"] == "bm25s"):
            if "build_s" in r:
                print(f"| {r['n']:,} | {r['build_s']:.1f} | {r['tokenise_s_est']:.1f} | "
                      f"{r['query_p50_ms']:.2f} | {r['query_p95_ms']:.2f} | {r['rss_mb']:.0f} | "
                      f"{r['child_peak_rss_mb']:.0f} | {r['disk_mb']:.0f} | |")
            else:
                print(f"| {r['n']:,} | | | | | | {r['child_peak_rss_mb']:.0f} | | "
                      f"{r.get('stopped') or r.get('error')} |")
        print("\n## Scale: FTS5 (pre-tokenised, WAL)\n")
        print("| N | bulk insert s | insert 1 + commit ms, median (max of 20), FULL / NORMAL | "
              "delete 1 + commit ms, same | query p50 ms | p95 ms | optimize s | p50 / p95 after "
              "optimize | RSS growth MB | disk MB | note |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in (r for r in scale if r["engine"] == "fts5"):
            if "bulk_insert_s" in r:
                opt = (f"{r['optimize_s']:.1f} | {r['opt_query_p50_ms']:.2f} / "
                       f"{r['opt_query_p95_ms']:.2f}") if "optimize_s" in r else "- | -"
                print(f"| {r['n']:,} | {r['bulk_insert_s']:.1f} | "
                      f"{_pair(r, 'insert1')} | {_pair(r, 'delete1')} | "
                      f"{r['query_p50_ms']:.2f} | {r['query_p95_ms']:.2f} | {opt} | "
                      f"{r['rss_mb']:.0f} | {r['disk_mb']:.0f} | |")
            else:
                print(f"| {r['n']:,} | | | | | | | | | | {r.get('stopped') or r.get('error')} |")
    results["total_s"] = time.time() - started
    print(f"\ntotal {results['total_s']:.0f} s")
    if args.json:
        results["pid"] = os.getpid()
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
