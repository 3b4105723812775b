"""Exact vs approximate FAISS search for big index segments, one query at a time.

Measures, for 384-dim unit vectors (all-MiniLM-L6-v2) searched one query at a time on one
thread (`faiss.omp_set_num_threads(1)`, as the product searches):

* exact `IndexFlatIP` p50 ms per query at 10k, 30k, 100k, 300k and 1M vectors, to find where
  exact search passes ~20 ms;
* at 100k and 1M: `IndexFlatIP`, `IndexIVFFlat` (inner product, nlist ~ 4*sqrt(N), trained on
  at most 100k vectors) at several nprobe, and `IndexHNSWFlat` (M=32) at several efConstruction
  and efSearch. For each: build time (train + add, on `--build-threads` threads), p50/p95 query
  ms, recall@10 against exact search (share of the exact top-10 ids found in the approximate
  top 10, averaged over queries), RSS growth, `faiss.write_index` file size, `faiss.read_index`
  time with and without `faiss.IO_FLAG_MMAP` (and whether mmap works for that type), time to
  add 10 vectors, time to remove 10 ids (`remove_ids` with `IDSelectorBatch`), and whether the
  index can be written and read back after the add and the removal.

Data: the real passage embeddings cached by bench/scale.py in /tmp/scale-cache/vectors
(shard-*.npy float32 rows, their keys in the .keys.json beside each; duplicate keys dropped,
~13.5k distinct passages). To reach 100k and 1M rows each distinct vector is repeated, every
copy with its own Gaussian noise, then re-normalised; the noise is chosen so that a copy's
cosine with its original is about 0.95 (the measured mean is printed). Queries: 300 of the
distinct vectors perturbed the same way (no real question vectors are cached; see
--real-queries). Seeded with
numpy `default_rng(0)`. Note: every query then has ~N/13.5k near-duplicates of its source
passage at about the same cosine, a harder neighbourhood for recall@10 than real data.
Index files go to --tmp (default /tmp/ann-bench); read times are with the file in page cache.

    .venv/bin/python bench/ann.py                                # 100k and 1M, ~30-45 min
    .venv/bin/python bench/ann.py --sizes 100000 --json /tmp/ann-bench/ann.json
    .venv/bin/python bench/ann.py --embed-queries /tmp/ann-bench/scifact-test-queries.npy
    .venv/bin/python bench/ann.py --real-queries /tmp/ann-bench/scifact-test-queries.npy

With --real-queries (SciFact's 300 test claims embedded by the product's embedder; the cached
corpus is SciFact abstracts and SQuAD paragraphs) latency and recall@10 are also measured for
those real query vectors against the same synthetic corpus.

Reproduces: the exact, IVF and HNSW figures eval/RESULTS.md's "Speed and scale" section quotes from
qa/storage/vectors/faiss_store.py (exact 63-87 ms per query at 1M, IVF with 4,096 lists 1.1 ms at 32
probes with recall@10 0.987; with --real-queries), recorded with commit 02248a6 (2026-12-02). Takes:
~30-45 min for 100k and 1M (the estimate above).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

DIM = 384
TARGET_COS = 0.95
N_QUERIES = 300
K = 10
EXACT_SIZES = [10_000, 30_000, 100_000, 300_000, 1_000_000]
NPROBES = [8, 16, 32, 64, 128]
EF_SEARCH = [16, 32, 64, 128]
HNSW_M = 32
TRAIN_MAX = 100_000
HNSW_BUDGET_S = 20 * 60  # build on 300k and extrapolate beyond this
TRAIN_SECONDS: dict[int, float] = {}  # id(IVF index) -> its training time


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def load_distinct(folder: Path) -> np.ndarray:
    """The cached passage vectors, one row per distinct key."""
    rows: list[np.ndarray] = []
    seen: set[str] = set()
    for keys_file in sorted(folder.glob("shard-*.keys.json")):
        keys = json.loads(keys_file.read_text(encoding="utf-8"))
        array = np.load(keys_file.with_name(keys_file.name.replace(".keys.json", ".npy")))
        keep = []
        for i, key in enumerate(keys):
            if key not in seen:
                seen.add(key)
                keep.append(i)
        rows.append(array[keep])
    out = np.ascontiguousarray(np.concatenate(rows), dtype=np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def noise_sigma(target_cos: float = TARGET_COS, dim: int = DIM) -> float:
    """Per-coordinate sigma so that cos(v, (v + n)/|v + n|) ~ 1/sqrt(1 + dim*sigma^2)."""
    return math.sqrt((1 / target_cos**2 - 1) / dim)


def perturb(base: np.ndarray, rows: np.ndarray, sigma: float, rng: np.random.Generator
            ) -> np.ndarray:
    out = base[rows] + rng.standard_normal((len(rows), base.shape[1]), dtype=np.float32) * sigma
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def make_corpus(base: np.ndarray, n: int, sigma: float, rng: np.random.Generator
                ) -> np.ndarray:
    """n rows: distinct vector i % len(base), each copy with its own noise."""
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        idx = np.arange(start, min(n, start + step)) % len(base)
        out[start : start + len(idx)] = perturb(base, idx, sigma, rng)
    return out


def time_queries(index: faiss.Index, queries: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """p50/p95 ms of single-query searches, and the ids found."""
    found = np.empty((len(queries), K), dtype=np.int64)
    times = []
    index.search(queries[:1], K)  # warm
    for i in range(len(queries)):
        t = time.perf_counter()
        _, ids = index.search(queries[i : i + 1], K)
        times.append((time.perf_counter() - t) * 1000)
        found[i] = ids[0]
    return {"p50_ms": float(np.percentile(times, 50)),
            "p95_ms": float(np.percentile(times, 95))}, found


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))


def file_checks(index: faiss.Index, path: Path, queries: np.ndarray) -> dict[str, Any]:
    """Write, then read normally and with mmap; whether mmap works and gives the same hits."""
    out: dict[str, Any] = {}
    t = time.perf_counter()
    faiss.write_index(index, str(path))
    out["write_s"] = time.perf_counter() - t
    out["file_mb"] = path.stat().st_size / 2**20
    _, want = index.search(queries[:20], K)
    before = rss_mb()
    t = time.perf_counter()
    again = faiss.read_index(str(path))
    out["read_s"] = time.perf_counter() - t
    out["read_rss_mb"] = rss_mb() - before
    del again
    gc.collect()
    for name, flag in (("mmap", faiss.IO_FLAG_MMAP), ("mmap_ifc", faiss.IO_FLAG_MMAP_IFC)):
        before = rss_mb()
        try:
            t = time.perf_counter()
            mapped = faiss.read_index(str(path), flag)
            out[f"{name}_read_s"] = time.perf_counter() - t
            out[f"{name}_rss_mb"] = rss_mb() - before
            _, got = mapped.search(queries[:20], K)
            out[f"{name}_same_hits"] = bool((got == want).all())
            out[f"{name}_type"] = type(mapped).__name__
            try:
                inv = faiss.extract_index_ivf(mapped).invlists
                out[f"{name}_invlists"] = type(faiss.downcast_InvertedLists(inv)).__name__
            except Exception:  # noqa: BLE001 - not an IVF index
                pass
            del mapped
        except Exception as exc:  # noqa: BLE001 - record what failed
            out[f"{name}_error"] = str(exc).strip().splitlines()[-1][:200]
        gc.collect()
    return out


def update_checks(index: faiss.Index, extra: np.ndarray, path: Path, queries: np.ndarray
                  ) -> dict[str, Any]:
    """Add 10 vectors, remove 10 ids, then write and read back."""
    out: dict[str, Any] = {}
    n0 = index.ntotal
    t = time.perf_counter()
    index.add(extra)
    out["add10_ms"] = (time.perf_counter() - t) * 1000
    remove = np.arange(0, n0, max(1, n0 // 10), dtype=np.int64)[:10]
    try:
        t = time.perf_counter()
        removed = index.remove_ids(faiss.IDSelectorBatch(remove))
        out["remove10_ms"] = (time.perf_counter() - t) * 1000
        out["removed"] = int(removed)
    except Exception as exc:  # noqa: BLE001 - HNSW does not support it
        out["remove10_error"] = str(exc).strip().splitlines()[-1][:200]
        removed = 0
    try:
        faiss.write_index(index, str(path))
        back = faiss.read_index(str(path))
        _, a = index.search(queries[:20], K)
        _, b = back.search(queries[:20], K)
        out["rewrite_ok"] = bool(back.ntotal == n0 + len(extra) - removed and (a == b).all())
        out["ntotal_after"] = int(back.ntotal)
        del back
    except Exception as exc:  # noqa: BLE001
        out["rewrite_error"] = str(exc).strip().splitlines()[-1][:200]
    path.unlink(missing_ok=True)
    return out


def measure(name: str, build: Callable[[], faiss.Index], setups: list[tuple[str, Callable]],
            data_queries: np.ndarray, truth: np.ndarray | None, extra: np.ndarray, tmp: Path,
            build_threads: int, real: np.ndarray | None = None,
            real_truth: np.ndarray | None = None) -> tuple[list[dict], faiss.Index]:
    faiss.omp_set_num_threads(build_threads)
    before = rss_mb()
    t = time.perf_counter()
    index = build()
    build_s = time.perf_counter() - t
    grown = rss_mb() - before
    faiss.omp_set_num_threads(1)
    rows = []
    for label, setup in setups:
        setup(index)
        lat, found = time_queries(index, data_queries)
        row = {"index": name, "params": label, "build_s": build_s, "rss_mb": grown, **lat}
        row["recall@10"] = recall_at_k(found, truth) if truth is not None else 1.0
        row["found"] = found
        if real is not None:
            rlat, rfound = time_queries(index, real)
            row["real_p50_ms"], row["real_p95_ms"] = rlat["p50_ms"], rlat["p95_ms"]
            row["real_recall@10"] = (recall_at_k(rfound, real_truth)
                                     if real_truth is not None else 1.0)
            row["real_found"] = rfound
            print(f"  {name} {label} real queries: p50 {rlat['p50_ms']:.2f} ms recall@10 "
                  f"{row['real_recall@10']:.3f}", flush=True)
        rows.append(row)
        print(f"  {name} {label}: p50 {lat['p50_ms']:.2f} ms p95 {lat['p95_ms']:.2f} ms "
              f"recall@10 {row['recall@10']:.3f}", flush=True)
    path = tmp / f"{name}.faiss"
    files = file_checks(index, path, data_queries)
    print(f"  {name} files: {json.dumps(files)}", flush=True)
    upd = update_checks(index, extra, path, data_queries)
    if upd:
        print(f"  {name} updates: {json.dumps(upd)}", flush=True)
    path.unlink(missing_ok=True)
    for row in rows:
        row.update({"files": files, "updates": upd})
    return rows, index


def run_size(n: int, corpus: np.ndarray, queries: np.ndarray, extra: np.ndarray, args,
             real: np.ndarray | None = None) -> list[dict]:
    data = corpus[:n]
    tmp = Path(args.tmp)
    print(f"== {n:,} vectors", flush=True)
    rows, flat = measure(f"flat-{n}", lambda: _flat(data), [("exact", lambda i: None)],
                         queries, None, extra, tmp, args.build_threads, real)
    truth = rows[0].pop("found")
    real_truth = rows[0].pop("real_found", None)
    del flat
    gc.collect()
    # IVF
    nlist = args.nlist_100k if n <= 100_000 else args.nlist_1m
    ivf_rows, ivf = measure(
        f"ivf{nlist}-{n}", lambda: _ivf(data, nlist, args.seed),
        [(f"nlist={nlist} nprobe={p}", _nprobe(p)) for p in NPROBES],
        queries, truth, extra, tmp, args.build_threads, real, real_truth)
    train_s = TRAIN_SECONDS.pop(id(ivf), None)
    for row in ivf_rows:
        row["train_s"] = train_s
    rows += ivf_rows
    del ivf
    gc.collect()
    # HNSW
    efcs = args.hnsw_efc if n <= 100_000 else args.hnsw_efc_1m
    for efc in efcs:
        build_n = n
        if n > 300_000 and args.hnsw_estimate_s.get(efc, 0) * (n / 100_000) * 1.2 > HNSW_BUDGET_S:
            build_n = 300_000
            print(f"  HNSW efC={efc} at {n:,} estimated beyond {HNSW_BUDGET_S / 60:.0f} min: "
                  f"building on {build_n:,}", flush=True)
        sub = corpus[:build_n]
        sub_truth, sub_real_truth = truth, real_truth
        if build_n != n:
            exact = _flat(sub)
            sub_truth = exact.search(queries, K)[1]
            sub_real_truth = exact.search(real, K)[1] if real is not None else None
            del exact
        h_rows, h = measure(
            f"hnsw-M{HNSW_M}-efc{efc}-{build_n}", lambda s=sub, e=efc: _hnsw(s, e),
            [(f"M={HNSW_M} efC={efc} efSearch={ef}", _ef(ef)) for ef in EF_SEARCH],
            queries, sub_truth, extra, tmp, args.build_threads, real, sub_real_truth)
        if n == 100_000:
            args.hnsw_estimate_s[efc] = h_rows[0]["build_s"]
        for row in h_rows:
            row["built_on"] = build_n
            if build_n != n:
                row["build_s_extrapolated"] = row["build_s"] * n / build_n * 1.1
        rows += h_rows
        del h
        gc.collect()
    for row in rows:
        row.pop("found", None)
        row.pop("real_found", None)
        row["n"] = n
    return rows


def _flat(data: np.ndarray) -> faiss.Index:
    index = faiss.IndexFlatIP(DIM)
    index.add(data)
    return index


def _ivf(data: np.ndarray, nlist: int, seed: int) -> faiss.Index:
    quantizer = faiss.IndexFlatIP(DIM)
    index = faiss.IndexIVFFlat(quantizer, DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    sample = data if len(data) <= TRAIN_MAX else data[np.sort(
        rng.choice(len(data), TRAIN_MAX, replace=False))]
    t = time.perf_counter()
    index.train(sample)
    train_s = time.perf_counter() - t
    index.add(data)
    TRAIN_SECONDS[id(index)] = train_s
    return index


def _hnsw(data: np.ndarray, efc: int) -> faiss.Index:
    index = faiss.IndexHNSWFlat(DIM, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = efc
    index.add(data)
    return index


def _nprobe(p: int) -> Callable[[faiss.Index], None]:
    def setup(index: faiss.Index) -> None:
        index.nprobe = p
    return setup


def _ef(ef: int) -> Callable[[faiss.Index], None]:
    def setup(index: faiss.Index) -> None:
        index.hnsw.efSearch = ef
    return setup


def exact_sweep(corpus: np.ndarray, queries: np.ndarray, sizes: list[int]) -> list[dict]:
    faiss.omp_set_num_threads(1)
    out = []
    for n in sizes:
        if n > len(corpus):
            continue
        index = _flat(corpus[:n])
        lat, _ = time_queries(index, queries)
        out.append({"n": n, **lat})
        print(f"  exact {n:>9,}: p50 {lat['p50_ms']:.2f} ms p95 {lat['p95_ms']:.2f} ms",
              flush=True)
        del index
        gc.collect()
    return out


def embed_queries(out: Path, folder: Path = Path("/work/shared/bench/scifact")) -> None:
    """SciFact's test claims as the product embeds a question (qa.models.embed), saved as .npy."""
    from qa.models.embed import SentenceTransformerEmbedder, model_folder
    from qa.settings import EmbedSettings

    texts = [json.loads(line)["text"] for line in
             (folder / "queries_test.jsonl").open(encoding="utf-8")]
    settings = EmbedSettings()
    embedder = SentenceTransformerEmbedder(settings, model_folder(settings.model_name))
    vectors = embedder.encode_queries(texts)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, vectors)
    print(f"{len(vectors)} query vectors -> {out}")


def fmt_row(r: dict) -> str:
    f, u = r["files"], r["updates"]
    def mapped(flag: str) -> str:
        if f"{flag}_read_s" not in f:
            return "error"
        same = "" if f.get(f"{flag}_same_hits") else ", DIFFERENT HITS"
        return f"{f[f'{flag}_read_s']:.3f} s, +{f[f'{flag}_rss_mb']:.0f} MB{same}"
    rem = (f"{u['remove10_ms']:.1f}" if "remove10_ms" in u else
           ("unsupported" if "remove10_error" in u else "-"))
    rewrite = "ok" if u.get("rewrite_ok") else ("-" if not u else "FAIL")
    build = f"{r['build_s']:.1f}"
    if r.get("train_s") is not None:
        build += f" (train {r['train_s']:.1f})"
    if r.get("built_on", r["n"]) != r["n"]:
        build += f" on {r['built_on']:,}; ~{r['build_s_extrapolated']:.0f} at {r['n']:,}"
    return (f"| {r['n']:,} | {r['index'].split('-')[0]} | {r['params']} | {build} | "
            f"{r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['recall@10']:.3f} | "
            f"{r['rss_mb']:.0f} | {f['file_mb']:.0f} | {f['read_s']:.3f} | {mapped('mmap')} | "
            f"{mapped('mmap_ifc')} | "
            f"{u.get('add10_ms', float('nan')):.2f} | {rem} | {rewrite} |"
            + (f" {r['real_p50_ms']:.2f} | {r['real_recall@10']:.3f} |" if "real_p50_ms" in r
               else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vectors", default="/tmp/scale-cache/vectors")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--exact-sizes", type=int, nargs="*", default=EXACT_SIZES)
    parser.add_argument("--nlist-100k", type=int, default=1024)
    parser.add_argument("--nlist-1m", type=int, default=4096)
    parser.add_argument("--hnsw-efc", type=int, nargs="+", default=[40, 80])
    parser.add_argument("--hnsw-efc-1m", type=int, nargs="+", default=[40, 80])
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", default="/tmp/ann-bench")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--real-queries", help=".npy of real query vectors (see --embed-queries)")
    parser.add_argument("--embed-queries", metavar="NPY", help="embed SciFact's test queries "
                        "with the product's embedder into this .npy, then exit")
    args = parser.parse_args()
    if args.embed_queries:
        embed_queries(Path(args.embed_queries))
        return
    args.hnsw_estimate_s = {}
    Path(args.tmp).mkdir(parents=True, exist_ok=True)
    started = time.time()

    rng = np.random.default_rng(args.seed)
    base = load_distinct(Path(args.vectors))
    sigma = noise_sigma()
    biggest = max(args.sizes + args.exact_sizes)
    corpus = make_corpus(base, biggest, sigma, rng)
    copy_cos = float(np.mean(np.sum(corpus[: len(base)] * base[: min(len(base), biggest)],
                                    axis=1)))
    q_src = rng.choice(len(base), N_QUERIES, replace=False)
    queries = perturb(base, q_src, sigma, rng)
    q_cos = float(np.mean(np.sum(queries * base[q_src], axis=1)))
    extra = perturb(base, rng.choice(len(base), 10, replace=False), sigma, rng)
    print(f"{len(base):,} distinct vectors; noise sigma {sigma:.5f}; mean cos copy/original "
          f"{copy_cos:.4f}, query/original {q_cos:.4f}; corpus {biggest:,} rows "
          f"({corpus.nbytes / 2**30:.2f} GiB); RSS {rss_mb():.0f} MB", flush=True)

    print("== exact search p50 by size (1 thread)", flush=True)
    sweep = exact_sweep(corpus, queries, sorted(args.exact_sizes))
    rows: list[dict] = []
    real = None
    if args.real_queries:
        real = np.ascontiguousarray(np.load(args.real_queries), dtype=np.float32)
        print(f"{len(real)} real query vectors from {args.real_queries}", flush=True)
    for n in sorted(args.sizes):
        rows += run_size(n, corpus, queries, extra, args, real)

    print("\n## Exact IndexFlatIP, one query, one thread\n")
    print("| vectors | p50 ms | p95 ms |\n|---:|---:|---:|")
    for s in sweep:
        print(f"| {s['n']:,} | {s['p50_ms']:.2f} | {s['p95_ms']:.2f} |")
    print("\n## Index types (search: one query, one thread; build: "
          f"{args.build_threads} threads)\n")
    print("| N | index | params | build s | p50 ms | p95 ms | recall@10 | RSS MB | file MB | "
          "read s | IO_FLAG_MMAP read, RSS | IO_FLAG_MMAP_IFC read, RSS | add 10 ms | "
          "remove 10 ms | rewrite |"
          + (" real-query p50 ms | real-query recall@10 |" if real is not None else ""))
    real_cols = real is not None
    print("|---:|---|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---|"
          + ("---:|---:|" if real_cols else ""))
    for r in rows:
        print(fmt_row(r))
    print("\nmmap details per index:")
    for r in rows:
        if r["params"].endswith(("exact", "nprobe=8", "efSearch=16")):
            f = r["files"]
            print(f"  {r['index']}: " + ", ".join(
                f"{k}={v}" for k, v in f.items() if k.startswith("mmap")))
            u = r["updates"]
            if "remove10_error" in u or "rewrite_error" in u:
                print(f"    update errors: {u}")

    big = max(args.sizes)
    ok = [r for r in rows if r["n"] == big and r["index"].split("-")[0] != "flat"
          and min(r["recall@10"], r.get("real_recall@10", 1.0)) >= 0.95]
    best = min(ok, key=lambda r: r["p50_ms"]) if ok else None
    cross = next((s["n"] for s in sweep if s["p50_ms"] > 20), None)
    print(f"\nexact p50 first passes 20 ms at: {cross if cross else 'none of the sizes'}")
    if best:
        print(f"fastest with recall@10 >= 0.95 (both query sets) at {big:,}: "
              f"{best['index']} {best['params']} "
              f"p50 {best['p50_ms']:.2f} ms recall {best['recall@10']:.3f}")
    print(f"total {time.time() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "distinct": len(base), "sigma": sigma, "copy_cos": copy_cos, "query_cos": q_cos,
            "build_threads": args.build_threads, "exact_sweep": sweep, "rows": rows,
            "recommended": best and {k: best[k] for k in ("n", "index", "params", "p50_ms",
                                                           "recall@10")},
            "exact_over_20ms_at": cross, "total_s": time.time() - started,
            "pid": os.getpid()}, indent=1, default=str))


if __name__ == "__main__":
    main()
