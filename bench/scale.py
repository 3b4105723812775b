"""How the index scales: build, open, add one, remove one, question latency, memory, disk.

    QA_CACHE=... .venv/bin/python bench/scale.py                          # 10k and 100k passages
    QA_CACHE=... .venv/bin/python bench/scale.py --sizes 10000 --json /tmp/scale.json
    QA_CACHE=... .venv/bin/python bench/scale.py --sizes 1000000 --force  # 1M: only when asked

Measured on 2 cores, 2026-12-02, each size one run, `--rounds 3` (1M at 07:19-07:53 UTC,
the others at 08:02-08:09, with one other job on the machine, load 1-4):

    passages   build s  open s  add s  remove s  retrieve p50/p95 ms  peak RSS MB  disk MB
    14 (seed)      0.1    0.02   0.03      0.03           0.4 / 1.4          333      0.1
    12,000        12.8    0.05   0.04      0.03           2.1 / 2.5          396     51.5
    100,000      106.7    0.08   0.04      0.04           9.9 / 11.1         778    425.3
    1,000,000  1,289.3    0.23   0.33      0.26          27.0 / 56.3       4,342  5,737.2

(recall@10 of the vector store against exact search: 1.000 at every size; at 1M the one
segment is IVF, 32 of 4,096 lists probed.) Questions scoped to the first corpus files holding
1% of the passages (`scoped`; at 1M, on 2026-12-06, 16:44-17:09 UTC, load 4-5 with the test
suite running beside it, `--rounds 1`: 13,145 passages in 3 files): retrieve p50/p95 27.4 /
67.8 ms against 20.2 / 47.3 ms unscoped in the same run, the scope's keys resolved in 95 ms the
first time (a snapshot keeps them), no passage outside the scope, recall@10 of the scoped
vector search against exact scores over the scope 1.000 (eval/results/scale_1m_scoped.json).
At 1M the peak (`build_peak_sampled`) is the IVF
index being built at the build's commit: 1.5 GB of it is the vectors themselves; RSS after the
build is 785 MB. The same day, before the pending vectors were freed once written, the vectors
file was written through plain writes instead of a memory map, the postings merged a block at
a time and the freed heap handed back (`PassageIndex.close`), and before BM25 scored in
float32, a run under heavier load (4-8) measured at 1M: build 2,978.5 s, open 0.32 s, add
0.56 s, remove 0.54 s, retrieve p50/p95 57.3 / 108.1 ms, peak RSS 6,914 MB.

Before the SQLite and segment store (bench/scale.py at f1bbc6a, a quieter machine): 10k open
0.73 s, add-one 4.0 s; 100k open 7.4 s, add-one 37 s, remove-one 43 s, peak RSS 3.8 GB, disk
572 MB.

The baseline for the index's storage: every number comes from the real code paths
(`Engine.open`, `Engine.add`, `Engine.remove`, `Engine.retrieve`, `Engine.ask`) on a real index
folder, each size in a process of its own.

Corpus: real text, SciFact's abstracts and the paragraphs of shared/train/squad-dev-half,
interleaved, written as JSONL files of 2,000 documents each into a temporary folder; past the
distinct texts (about 14k passages) the same documents come again with an id suffix (`~r1`,
`~r2`, ...) until the passage count is reached (the last document may pass it by a few).
Passages are what the chunker makes (qa/ingest/chunk.py), counted once per distinct document.

Vectors: each distinct passage is embedded once with the real model (the packaged MiniLM
through `make_embedder`) in a preparation step of its own process, cached under --cache
(default /tmp/scale-cache) by the hash of the text the embedder sees; the measured process
plugs in `CachedEmbedder`, which follows the `Embedder` protocol (the real tokenizer counts
tokens) and looks those vectors up. A repeated document gets the very same vectors as its first
copy. The time spent in `encode` (the look-ups) is taken out of build and add times. Questions
in the timed `retrieve` loop use query vectors computed once by the real query path (the ONNX
export) and cached too, so the loop measures the store, not the encoder; `ask` runs the real
reader, whose sentence vectors go through the real ONNX query path (`ask` columns only).

For each size:
  build       `Engine.open(sources=[corpus])` into an empty index folder, minus time in encode
              (LlamaIndex, NLTK's Punkt and bm25s are imported and loaded before it is timed)
  open        `Engine.open(sources=[corpus])` of the built index in a fresh process (nothing
              changed, so nothing is written): median of --rounds processes, import excluded
  add, remove `Engine.add([one small .txt])`, then `Engine.remove` of its doc_id: median of
              --rounds (each round a new file); where the time goes is in the JSON (`phases`,
              inclusive seconds of the functions named, which nest)
  retrieve    p50/p95 of `Engine.retrieve` (k=5) over --queries SciFact test queries
  peak RSS    the measuring process's high-water mark (VmHWM) through build, writes and
              questions, before the recall check and `ask`
  disk        the index folder after the writes (one generation)
  recall@10   `FaissStore.search(q, 10)` against a brute-force numpy top 10 over every stored
              vector, per query; an id counts when its exact score reaches the 10th best
              exact score (repeated documents tie exactly, and either copy is as right)

Reproduces: the table above (README.md points to it) and eval/RESULTS.md's scoped 1M figures.
Takes: 1M with --rounds 3 took 34 min (07:19-07:53 UTC), 1M scoped with --rounds 1 25 min
(16:44-17:09 UTC), 10k and 100k 7 min (08:02-08:09 UTC), plus embedding the distinct passages
once into --cache if it is empty.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SCIFACT = SHARED / "bench" / "scifact"
SQUAD = SHARED / "train" / "squad-dev-half" / "train-half.json"
DOCS_PER_FILE = 2000
NOTE = ("Ferry timetable {i}\n\nThe ferry to island {i} leaves at {hour} o'clock from the "
        "northern pier, weather permitting. Tickets are sold on board, and bicycles travel "
        "free of charge on the morning crossing.\n")
RECALL_K = 10
SEED = 0  # `--sizes seed`: the seed article's index


# ---- small helpers ---------------------------------------------------------------------
def key(kind: str, text: str) -> str:
    """The cache key of a text the embedder sees: "p" passages, "q" questions."""
    return hashlib.sha1(f"{kind}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()


def status_kb(field: str) -> int:
    """A field of /proc/self/status in kB (VmRSS, VmHWM); ru_maxrss where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def mb(kb: int) -> float:
    return round(kb / 1024, 1)


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


PEAK: dict = {"mb": 0.0, "phases": []}  # the highest RSS sampled, and the phases under way


def watchdog(limit_gb: float, phases: Phases | None = None) -> None:
    """End this process when its RSS passes the limit (the machine is shared); note in PEAK
    the phases under way at the highest RSS sampled (every 0.2 s)."""
    limit = limit_gb * 1024 * 1024

    def watch() -> None:
        while True:
            rss = status_kb("VmRSS")
            if rss > limit:
                print(f"scale: RSS {mb(rss):.0f} MB passed --rss-limit-gb {limit_gb}; stopping",
                      file=sys.stderr, flush=True)
                os._exit(3)
            if mb(rss) > PEAK["mb"]:
                PEAK.update(mb=mb(rss), phases=list(phases.stack) if phases else [])
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()


def clean(question: str) -> str:
    from qa.engine import clean_question
    from qa.settings import Settings

    return clean_question(question, Settings().chat.max_question_chars)


def read_queries(n: int) -> list[str]:
    lines = (SCIFACT / "queries_test.jsonl").read_text(encoding="utf-8").splitlines()
    return [clean(json.loads(line)["text"]) for line in lines if line.strip()][:n]


# ---- the vector cache ------------------------------------------------------------------
class VectorCache:
    """Vectors by key, in .npy shards (rows) with their keys beside them (.keys.json)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        keys: list[str] = []
        arrays = []
        for keys_file in sorted(folder.glob("shard-*.keys.json")):
            array = np.load(keys_file.with_name(keys_file.name.replace(".keys.json", ".npy")))
            names = json.loads(keys_file.read_text(encoding="utf-8"))
            if len(names) == len(array):
                keys += names
                arrays.append(array)
        self.matrix = (np.concatenate(arrays).astype(np.float32) if arrays
                       else np.zeros((0, 0), dtype=np.float32))
        self.row = {k: i for i, k in enumerate(keys)}

    def __contains__(self, k: str) -> bool:
        return k in self.row

    def get(self, k: str) -> np.ndarray:
        return self.matrix[self.row[k]]

    def write(self, keys: list[str], vectors: np.ndarray) -> None:
        name = f"shard-{time.time_ns()}"
        np.save(self.folder / f"{name}.npy", np.asarray(vectors, dtype=np.float32))
        (self.folder / f"{name}.keys.json").write_text(json.dumps(keys), encoding="utf-8")


class CachedEmbedder:
    """The `Embedder` protocol over cached vectors: `count_tokens` is the real tokenizer's,
    `encode` and `encode_queries` look vectors up by text. A passage missing from the cache gets
    a random unit vector seeded by its text (counted in `misses`); a question missing from it
    goes through the real query path (`fallback`, counted in `query_misses`)."""

    def __init__(self, real, cache: VectorCache) -> None:
        self.real = real
        self.cache = cache
        self.name = real.name
        self.dimension = real.dimension
        self.seconds = 0.0  # in encode, since the last take()
        self.misses = 0
        self.query_misses = 0

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.real.count_tokens(texts)

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        start = time.perf_counter()
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            k = key("p", text)
            if k in self.cache:
                out[i] = self.cache.get(k)
            else:
                self.misses += 1
                seed = int(k[:8], 16)
                v = np.random.default_rng(seed).standard_normal(self.dimension)
                out[i] = v / np.linalg.norm(v)
        self.seconds += time.perf_counter() - start
        return out

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        missing = []
        for i, text in enumerate(texts):
            k = key("q", text)
            if k in self.cache:
                out[i] = self.cache.get(k)
            else:
                missing.append(i)
        if missing:
            self.query_misses += len(missing)
            out[missing] = self.real.encode_queries([texts[i] for i in missing])
        return out

    def take(self) -> float:
        seconds, self.seconds = self.seconds, 0.0
        return seconds


# ---- where the time goes ---------------------------------------------------------------
class Phases:
    """Inclusive seconds per named function, by wrapping them in this process only."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.stack: list[str] = []  # the phases under way, outermost first

    def timed(self, name: str, fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            self.seconds.setdefault(name, 0.0)  # listed in the order entered
            self.stack.append(name.strip())
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                self.stack.pop()

        wrapper.__wrapped__ = fn
        return wrapper

    def wrap(self, owner, attr: str, label: str) -> None:
        raw = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
        if isinstance(raw, classmethod):
            new = classmethod(self.timed(label, raw.__func__))
        elif isinstance(raw, staticmethod):
            new = staticmethod(self.timed(label, raw.__func__))
        elif isinstance(raw, cached_property):
            new = cached_property(self.timed(label, raw.func))
            new.__set_name__(owner, attr)
        else:
            new = self.timed(label, raw)
        setattr(owner, attr, new)

    def install(self) -> None:
        import qa.engine
        import qa.ingest.chunk
        import qa.storage.index
        import qa.storage.postings
        import qa.storage.segments
        import qa.storage.sync
        import qa.storage.vectors.faiss_store
        from qa.engine import Engine
        from qa.storage.db import Database
        from qa.storage.index import PassageIndex
        from qa.storage.store import IndexStore
        from qa.storage.vectors.faiss_store import FaissStore

        for owner, attr, label in [
            (qa.engine, "discover", "discover files"),
            (qa.engine, "needs_work", "needs_work (stat)"),
            (Engine, "_open", "open index (read or write)"),
            (qa.storage.segments, "verify", "  verify segments"),
            (qa.storage.index, "load_store", "  FaissStore.load"),
            (qa.engine, "apply_changes", "apply_changes"),
            (qa.storage.sync, "_changed_files", "  changed files (stat, hash)"),
            (qa.storage.sync, "load_file", "  load files"),
            (PassageIndex, "add_documents", "  add_documents"),
            (qa.ingest.chunk, "chunk_document", "    chunk_document"),
            (PassageIndex, "_term_ids", "    BM25 terms"),
            (PassageIndex, "remove_documents", "  remove_documents"),
            (Engine, "_commit", "commit"),
            (PassageIndex, "check", "  check"),
            (qa.storage.index, "merge", "  BM25 segment (merge)"),
            (FaissStore, "save", "  FaissStore.save"),
            (qa.storage.vectors.faiss_store, "_ivf", "    IVF build"),
            (qa.storage.segments, "fsync_tree", "  fsync segment"),
            (qa.storage.segments, "sums", "  segment checksums"),
            (Database, "commit", "  SQLite commit"),
            (IndexStore, "write_files", "  write files.json"),
            (Engine, "_read_current", "  open the committed index"),
        ]:
            self.wrap(owner, attr, label)

    def take(self) -> dict[str, float]:
        out, self.seconds = self.seconds, {}
        return out


# ---- preparation: distinct documents, their passages and vectors -------------------------
def distinct_documents() -> list[dict]:
    """SciFact's abstracts and SQuAD's paragraphs, interleaved in proportion."""
    sources = []
    lines = (SCIFACT / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    scifact = []
    for line in lines:
        if line.strip():
            r = json.loads(line)
            scifact.append({"_id": f"scifact-{r['_id']}", "title": r.get("title") or "",
                            "text": r["text"]})
    squad = []
    for a, article in enumerate(json.loads(SQUAD.read_text(encoding="utf-8"))["data"]):
        title = article["title"].replace("_", " ")
        for p, paragraph in enumerate(article["paragraphs"]):
            squad.append({"_id": f"squad-{a}-{p}", "title": title, "text": paragraph["context"]})
    for docs in (scifact, squad):
        sources += [((i + 0.5) / len(docs), d) for i, d in enumerate(docs) if d["text"].strip()]
    return [d for _, d in sorted(sources, key=lambda pair: pair[0])]


def notes(rounds: int) -> list[str]:
    return [NOTE.format(i=i, hour=6 + i) for i in range(rounds)]


def passages_of(files: list[Path], root: Path, real) -> list[list[str]]:
    """For each document of the files, the texts its passages give the embedder, through the
    real loader and chunker (as `PassageIndex.add_documents` makes them)."""
    from qa.ingest.chunk import chunk_document, embed_text
    from qa.ingest.load import load_file
    from qa.settings import Settings

    settings = Settings()
    out = []
    for file in files:
        loaded = load_file(file, root, settings.load)
        if loaded.errors:
            raise SystemExit(f"scale: {loaded.errors[0]}")
        for doc in loaded.documents:
            nodes = chunk_document(doc, settings.chunk, real.count_tokens)
            out.append([embed_text(n.metadata["embed_title"], n.text) for n in nodes])
    return out


def prep(cache_dir: Path, largest: int, rounds: int, n_queries: int) -> None:
    """Chunk the distinct documents once (kept in the cache), then embed with the real model
    what the largest size needs and the cache lacks."""
    from qa.models.embed import make_embedder
    from qa.settings import Settings
    from qa.storage.home import cache_dir as qa_cache

    settings = Settings()
    real = make_embedder(settings.embed, qa_cache())
    cache_dir.mkdir(parents=True, exist_ok=True)
    plan = cache_dir / f"documents-{key('plan', settings.index_fingerprint())[:12]}.json"
    if plan.exists():
        docs = json.loads(plan.read_text(encoding="utf-8"))
    else:
        start = time.perf_counter()
        docs = distinct_documents()
        with tempfile.TemporaryDirectory(prefix="scale-prep-") as tmp:
            file = Path(tmp) / "distinct.jsonl"
            file.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
            embeds = passages_of([file], Path(tmp), real)
        for doc, texts in zip(docs, embeds, strict=True):
            doc["embed"] = texts
        plan.write_text(json.dumps(docs), encoding="utf-8")
        total = sum(len(d["embed"]) for d in docs)
        print(f"scale: {len(docs)} distinct documents, {total} passages, chunked in "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    vectors = VectorCache(cache_dir / "vectors")
    texts, seen, count = [], set(), 0
    for doc in docs:
        if count >= largest:
            break
        count += len(doc["embed"])
        for text in doc["embed"]:
            k = key("p", text)
            if k not in vectors and k not in seen:
                seen.add(k)
                texts.append(text)
    with tempfile.TemporaryDirectory(prefix="scale-notes-") as tmp:
        files = []
        for i, text in enumerate(notes(rounds)):
            files.append(Path(tmp) / f"note-{i}.txt")
            files[-1].write_text(text, encoding="utf-8")
        texts += [t for doc in passages_of(files, Path(tmp), real) for t in doc
                  if key("p", t) not in vectors]
    if texts:
        print(f"scale: embedding {len(texts)} passages with the real model (once; cached in "
              f"{cache_dir})", file=sys.stderr, flush=True)
        start, done, step = time.perf_counter(), 0, 512
        for i in range(0, len(texts), step):
            batch = texts[i:i + step]
            vectors.write([key("p", t) for t in batch], real.encode(batch))
            done += len(batch)
            rate = done / (time.perf_counter() - start)
            print(f"scale: {done}/{len(texts)} passages embedded, {rate:.0f}/s",
                  file=sys.stderr, flush=True)
    questions = [q for q in read_queries(n_queries) if key("q", q) not in vectors]
    if questions:
        ensure = getattr(real, "ensure_query_model", None)
        if ensure:
            ensure()
        vectors.write([key("q", q) for q in questions], real.encode_queries(questions))


def write_corpus(docs: list[dict], target: int, folder: Path) -> tuple[int, int]:
    """JSONL files of `DOCS_PER_FILE` documents holding at least `target` passages, the
    distinct documents first, then again with an id suffix; (documents, passages)."""
    folder.mkdir(parents=True)
    passages, written, lines, rnd = 0, 0, [], 0

    def flush() -> None:
        if lines:
            name = folder / f"part-{(written - 1) // DOCS_PER_FILE:04d}.jsonl"
            name.write_text("".join(lines), encoding="utf-8")
            lines.clear()

    while passages < target:
        for doc in docs:
            if passages >= target:
                break
            doc_id = doc["_id"] if rnd == 0 else f"{doc['_id']}~r{rnd}"
            lines.append(json.dumps({"_id": doc_id, "title": doc["title"],
                                     "text": doc["text"]}) + "\n")
            passages += len(doc["embed"])
            written += 1
            if written % DOCS_PER_FILE == 0:
                flush()
        rnd += 1
    flush()
    return written, passages


# ---- the measured process of one size --------------------------------------------------
def worker(corpus: Path, index_dir: Path, work: Path, cache_dir: Path, rounds: int,
           n_queries: int, n_ask: int, phases: Phases) -> dict:
    import qa.engine
    from qa.errors import QAError
    from qa.models.embed import make_embedder
    from qa.settings import Settings
    from qa.storage.home import cache_dir as qa_cache

    real = make_embedder(Settings().embed, qa_cache())
    embedder = CachedEmbedder(real, VectorCache(cache_dir / "vectors"))
    qa.engine.make_embedder = lambda *args, **kwargs: embedder  # what Engine.__init__ calls
    phases.install()
    questions = read_queries(n_queries)
    start = time.perf_counter()
    warm_imports()
    imports = time.perf_counter() - start
    base_rss = status_kb("VmRSS")

    start = time.perf_counter()
    engine = qa.engine.Engine.open(sources=[corpus], index_dir=index_dir)
    build_total = time.perf_counter() - start
    build_encode = embedder.take()
    out: dict = {
        "passages": len(engine.index), "documents": len(engine.index.documents),
        "build_s": build_total - build_encode, "build_total_s": build_total,
        "build_encode_s": build_encode, "build_phases": phases.take(),
        "rss_after_build_mb": mb(status_kb("VmRSS")), "hwm_after_build_mb": mb(status_kb("VmHWM")),
        "rss_before_build_mb": mb(base_rss), "imports_before_build_s": imports,
        "build_peak_sampled": dict(PEAK),
    }
    print(f"scale: built {out['passages']} passages in {build_total:.1f} s", file=sys.stderr,
          flush=True)

    adds, removes, add_phases, remove_phases = [], [], [], []
    notes_dir = work / "notes"
    notes_dir.mkdir(exist_ok=True)
    for i, text in enumerate(notes(rounds)):
        note = notes_dir / f"note-{i}.txt"
        note.write_text(text, encoding="utf-8")
        phases.take()
        embedder.take()
        start = time.perf_counter()
        report = engine.add([note])
        adds.append(time.perf_counter() - start - embedder.take())
        add_phases.append(phases.take())
        if len(report.added) != 1 or report.errors:
            raise SystemExit(f"scale: adding {note} gave {report.to_dict()}")
        start = time.perf_counter()
        removed = engine.remove(report.added)
        removes.append(time.perf_counter() - start)
        remove_phases.append(phases.take())
        if removed != report.added:
            raise SystemExit(f"scale: removing {report.added} removed {removed}")
        print(f"scale: add {adds[-1]:.2f} s, remove {removes[-1]:.2f} s", file=sys.stderr,
              flush=True)
    out.update(add_s=statistics.median(adds), remove_s=statistics.median(removes),
               add_runs_s=adds, remove_runs_s=removes,
               add_phases=mean_phases(add_phases), remove_phases=mean_phases(remove_phases))

    for q in questions[:3]:  # warm: BM25 arrays, the stemmer, the passages read
        engine.retrieve(q)
    latencies = []
    for q in questions:
        start = time.perf_counter()
        engine.retrieve(q)
        latencies.append(time.perf_counter() - start)
    out.update(retrieve_p50_ms=pct(latencies, 50) * 1000, retrieve_p95_ms=pct(latencies, 95) * 1000,
               queries=len(questions), query_vector_misses=embedder.query_misses,
               passage_vector_misses=embedder.misses)
    out["peak_rss_mb"] = mb(status_kb("VmHWM"))  # the store's: before recall and ask
    out.update(scoped(engine, corpus, questions))

    out.update(recall(engine.index, embedder, questions))
    try:
        engine.ask(questions[0])  # warm: the ONNX query model, the reader's word lists
        asks = []
        for q in questions[:n_ask]:
            start = time.perf_counter()
            engine.ask(q)
            asks.append(time.perf_counter() - start)
        out.update(ask_p50_ms=pct(asks, 50) * 1000, ask_p95_ms=pct(asks, 95) * 1000,
                   asks=len(asks))
    except QAError as exc:  # e.g. no ONNX export of the query model in QA_CACHE
        out["ask_error"] = str(exc)
    out["peak_rss_with_recall_and_ask_mb"] = mb(status_kb("VmHWM"))
    return out


def scoped(engine, corpus: Path, questions: list[str], share: float = 0.01) -> dict:
    """Questions scoped to the first corpus files that hold `share` of the passages
    (`where=Where(patterns=...)`): p50/p95 of `retrieve` with the scope's keys kept by the
    snapshot, the time to resolve a scope afresh, whether every passage returned is in scope,
    and recall@10 of the scoped vector search against exact scores over the scope."""
    from qa.answering.scope import Where, passage_keys

    index = engine.index
    names, keys = [], np.zeros(0, np.int64)
    for path in sorted(corpus.glob("*.jsonl")):
        names.append(path.name)
        keys = np.union1d(keys, passage_keys(index, Where(patterns=(path.name,))))
        if len(keys) >= share * len(index):
            break
    where = Where(patterns=tuple(names))
    start = time.perf_counter()
    allowed = passage_keys(index, where)
    resolve = time.perf_counter() - start
    engine.retrieve(questions[0], where=where)  # the snapshot keeps the scope's keys
    latencies, outside, hits, wanted = [], 0, 0, 0
    in_scope = set(allowed.tolist())
    for q in questions:
        start = time.perf_counter()
        found = engine.retrieve(q, where=where)
        latencies.append(time.perf_counter() - start)
        outside += sum(index.db.key_of(p.id) not in in_scope for p in found)
        vector = engine.embedder.encode_queries([q])[0]
        got, _ = index.vectors.search(vector, RECALL_K, allowed)
        exact = index.vectors.fetch(allowed) @ vector
        bar = np.sort(exact)[-RECALL_K:][0]
        scores = dict(zip(allowed.tolist(), exact.tolist()))
        hits += sum(scores[int(k)] >= bar - 1e-6 for k in got)
        wanted += min(RECALL_K, len(allowed))
    return {"scoped_passages": int(len(allowed)), "scoped_files": len(names),
            "scoped_resolve_s": resolve, "scoped_p50_ms": pct(latencies, 50) * 1000,
            "scoped_p95_ms": pct(latencies, 95) * 1000, "scoped_outside": int(outside),
            "scoped_recall_at_10": hits / wanted if wanted else None}


def warm_imports() -> None:
    """What a first build imports and loads once (LlamaIndex, NLTK's Punkt, bm25s), so that
    the build time is the index's, the same for any size (`imports_before_build_s`)."""
    import bm25s  # noqa: F401
    import llama_index.core.schema  # noqa: F401

    from qa.ingest.chunk import _punkt, split_sentences
    from qa.storage.lexical import _stemmer

    _punkt()
    _stemmer()
    split_sentences("One sentence. Another one.")


def mean_phases(runs: list[dict[str, float]]) -> dict[str, float]:
    names = list(dict.fromkeys(n for run in runs for n in run))
    return {n: sum(run.get(n, 0.0) for run in runs) / len(runs) for n in names}


def recall(index, embedder: CachedEmbedder, questions: list[str]) -> dict:
    """The vector store's top 10 against numpy's exact top 10 over every stored vector."""
    vectors = index.vectors
    keys = np.asarray([k for (k,) in index.db.rows("SELECT key FROM passages ORDER BY key")])
    row = {int(k): i for i, k in enumerate(keys)}
    matrix = np.concatenate([vectors.fetch(keys[i:i + 100_000])
                             for i in range(0, len(keys), 100_000)])
    hits, strict, searches = [], [], []
    for q in questions:
        query = embedder.encode_queries([q])[0]
        start = time.perf_counter()
        got, _ = vectors.search(query, RECALL_K)
        searches.append(time.perf_counter() - start)
        exact = matrix @ query
        top = np.argpartition(-exact, RECALL_K)[:RECALL_K]
        kth = float(exact[top].min())
        hits.append(sum(float(exact[row[int(k)]]) >= kth - 1e-5 for k in got) / RECALL_K)
        strict.append(len({int(k) for k in got} & {int(keys[i]) for i in top}) / RECALL_K)
    return {"recall_at_10": float(np.mean(hits)), "recall_at_10_same_ids": float(np.mean(strict)),
            "dense_search_p50_ms": pct(searches, 50) * 1000,
            "dense_search_p95_ms": pct(searches, 95) * 1000}


def open_once(corpus: Path, index_dir: Path) -> dict:
    """One fresh process's open of the built index, with the real embedder."""
    start = time.perf_counter()
    from qa.engine import Engine

    imported = time.perf_counter()
    engine = Engine.open(sources=[corpus], index_dir=index_dir)
    opened = time.perf_counter()
    report = engine.last_report
    return {"import_s": imported - start, "open_s": opened - imported,
            "changed": report.changed, "passages": len(engine.index),
            "rss_mb": mb(status_kb("VmRSS")), "hwm_mb": mb(status_kb("VmHWM"))}


# ---- the driver ------------------------------------------------------------------------
def child(args: list[str], timeout: float | None = None) -> dict:
    """Run this script in a new process; its last stdout line is its JSON result."""
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args],
                          stdout=subprocess.PIPE, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"scale: {' '.join(args[:2])} failed (exit {done.returncode})")
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def measure(size: int, docs: list[dict], opts) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"scale-{size}-", dir=opts.workdir))
    try:
        corpus, index_dir = work / "corpus", work / "index"
        if size == SEED:  # the seed article, as qa ships it: the baseline of add-one
            shutil.copytree(ROOT / "seeds", corpus)
            n_docs, planned = 1, None
        else:
            n_docs, planned = write_corpus(docs, size, corpus)
        print(f"scale: {size}: {n_docs} documents, {planned} passages in "
              f"{len(list(corpus.iterdir()))} files", file=sys.stderr, flush=True)
        common = ["--cache", str(opts.cache), "--rounds", str(opts.rounds),
                  "--queries", str(opts.queries), "--asks", str(opts.asks),
                  "--rss-limit-gb", str(opts.rss_limit_gb)]
        result = child(["--stage", "worker", "--corpus", str(corpus), "--index", str(index_dir),
                        "--work", str(work), *common])
        result["size"] = size
        planned = result["passages"] if planned is None else planned
        if (result["passages"], result["documents"]) != (planned, n_docs):
            raise SystemExit(f"scale: {n_docs} documents of {planned} passages were written, "
                             f"{result['documents']} of {result['passages']} indexed")
        opens = [child(["--stage", "open", "--corpus", str(corpus), "--index", str(index_dir),
                        *common]) for _ in range(opts.rounds)]
        if any(o["changed"] or o["passages"] != result["passages"] for o in opens):
            raise SystemExit(f"scale: opening the built index changed it: {opens}")
        result.update(open_s=statistics.median(o["open_s"] for o in opens), open_runs=opens,
                      open_rss_mb=statistics.median(o["rss_mb"] for o in opens))
        result["disk_mb"] = round(du(index_dir) / 2**20, 1)
        generation = index_dir / (index_dir / "CURRENT").read_text().strip()
        result["disk_parts_mb"] = {p.name: round(du(p) / 2**20 if p.is_dir()
                                                 else p.stat().st_size / 2**20, 1)
                                   for p in sorted(generation.iterdir())}
        return result
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)


COLUMNS = [
    ("passages", "passages", "{:,}"), ("build_s", "build s", "{:.1f}"),
    ("open_s", "open s", "{:.2f}"), ("add_s", "add-one s", "{:.2f}"),
    ("remove_s", "remove-one s", "{:.2f}"), ("retrieve_p50_ms", "retrieve p50 ms", "{:.1f}"),
    ("retrieve_p95_ms", "p95 ms", "{:.1f}"), ("peak_rss_mb", "peak RSS MB", "{:,.0f}"),
    ("disk_mb", "disk MB", "{:,.1f}"), ("recall_at_10", "recall@10", "{:.3f}"),
]


def table(results: list[dict]) -> str:
    rows = [[label for _, label, _ in COLUMNS]]
    rows += [[fmt.format(r[k]) if r.get(k) is not None else "-" for k, _, fmt in COLUMNS]
             for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        lines.append("")
        lines.append(f"{r['passages']:,} passages ({r['documents']:,} documents): "
                     f"build {r['build_total_s']:.1f} s with {r['build_encode_s']:.1f} s in "
                     f"encode (cached vectors); dense search p50 {r['dense_search_p50_ms']:.2f} "
                     f"ms; ask p50 {r.get('ask_p50_ms', float('nan')):.0f} ms; open RSS "
                     f"{r['open_rss_mb']:,.0f} MB")
        if r.get("scoped_passages"):
            lines.append(f"  scoped to {r['scoped_passages']:,} passages ({r['scoped_files']} "
                         f"files): retrieve p50/p95 {r['scoped_p50_ms']:.1f} / "
                         f"{r['scoped_p95_ms']:.1f} ms, scope resolved in "
                         f"{r['scoped_resolve_s'] * 1000:.0f} ms, {r['scoped_outside']} "
                         f"passages outside it, recall@10 {r['scoped_recall_at_10']:.3f}")
        lines.append("  add-one, mean s per phase (inclusive; indented phases are inside the "
                     "one above):")
        lines += [f"    {name:<44} {s:8.2f}" for name, s in r["add_phases"].items() if s >= 0.01]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000",
                        help="passage counts, comma-separated (default 10000,100000); `seed`: "
                             "the seed article's index (14 passages)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--queries", type=int, default=100, help="SciFact test queries timed")
    parser.add_argument("--asks", type=int, default=20, help="of them, also asked (`ask`)")
    parser.add_argument("--rounds", type=int, default=3, help="adds, removes and opens")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/scale-cache"),
                        help="the cached vectors and chunked documents (kept between runs)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the corpus and index "
                        "are written (default: the temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep each size's corpus and index")
    parser.add_argument("--budget-min", type=float, default=20.0,
                        help="skip a size whose run is estimated (linearly from the size "
                        "before) to take longer than this")
    parser.add_argument("--force", action="store_true", help="run every size, and 1M")
    parser.add_argument("--rss-limit-gb", type=float, default=12.0,
                        help="end a measured process whose RSS passes this")
    parser.add_argument("--stage", default="main", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--largest", type=int, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)

    if opts.stage == "prep":
        prep(opts.cache, opts.largest, opts.rounds, opts.queries)
        return
    if opts.stage == "worker":
        phases = Phases()
        watchdog(opts.rss_limit_gb, phases)
        result = worker(opts.corpus, opts.index, opts.work, opts.cache, opts.rounds,
                        opts.queries, opts.asks, phases)
        print(json.dumps(result))
        return
    if opts.stage == "open":
        watchdog(opts.rss_limit_gb)
        print(json.dumps(open_once(opts.corpus, opts.index)))
        return

    sizes = sorted(SEED if s.strip() == "seed" else int(s.replace("_", ""))
                   for s in opts.sizes.split(",") if s.strip())
    if max(sizes) >= 1_000_000 and not opts.force:
        raise SystemExit("scale: 1M passages takes tens of GB and hours here; add --force")
    if not os.environ.get("QA_CACHE"):
        print("scale: QA_CACHE is not set; the query model's export is read from the default "
              "cache", file=sys.stderr)
    child(["--stage", "prep", "--cache", str(opts.cache), "--largest", str(max(sizes)),
           "--rounds", str(opts.rounds), "--queries", str(opts.queries)])
    from qa.settings import Settings

    plan = opts.cache / f"documents-{key('plan', Settings().index_fingerprint())[:12]}.json"
    docs = json.loads(plan.read_text(encoding="utf-8"))
    results: list[dict] = []
    previous: tuple[int, float] | None = None
    for size in sizes:
        if previous and not opts.force:
            estimate = previous[1] * size / previous[0] / 60
            if estimate > opts.budget_min:
                print(f"scale: skipping {size}: estimated {estimate:.0f} min from "
                      f"{previous[0]} (over --budget-min {opts.budget_min:.0f}; --force runs it)",
                      file=sys.stderr)
                continue
        start = time.perf_counter()
        results.append(measure(size, docs, opts))
        previous = (results[-1]["passages"], time.perf_counter() - start)
        results[-1]["wall_s"] = previous[1]
    print(table(results))
    if opts.json:
        meta = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform()},
                "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "settings": json.loads(Settings().index_fingerprint()),
                "vectors": "cached real-model vectors; a repeated document has its first "
                           "copy's vectors; retrieve's query vectors cached from the ONNX "
                           "query path; ask's sentence vectors through the ONNX query path"}
        opts.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1),
                             encoding="utf-8")


if __name__ == "__main__":
    main()
