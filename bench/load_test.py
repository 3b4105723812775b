"""Load test of `qa serve` (not a timed test): N parallel gradio_client clients x M questions.

    .venv/bin/python bench/load_test.py --serve            # starts its own `qa serve` on seeds/
    .venv/bin/python bench/load_test.py --url http://127.0.0.1:7860   # a server already running

First every distinct question is asked once, one at a time: those answers are the reference.
Then the clients ask together; every answer must equal the reference, and every request must
succeed. Prints errors, mismatches, and p50/p95 latency of both phases. Loopback only.

Reproduces: README.md's "many clients against `qa serve`" check (every answer equal to the
reference, every request answered); no latency figure of it is recorded. bench/cold_start.py
imports `free_port` from here. Takes: not recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

EXTRA = [  # odd questions and follow-ups, beside the seed question set
    ("?!?... ;-)", []),
    ("¿Qué exigió Rusia a la OTAN?", []),
    ("Why " + "really " * 800 + "did Russia mass troops?", []),
    ("What did he say?", ["What did the Kremlin spokesman say about tensions?"]),
    ("How many?", ["How many troops has Russia deployed to the region?"]),
]


def questions() -> list[tuple[str, list[str]]]:
    lines = (ROOT / "eval" / "seed.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return [(r["question"], r.get("history") or []) for r in records] + EXTRA


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, workdir: Path) -> subprocess.Popen:
    """`qa serve` on seeds/ with a fresh index under workdir, on 127.0.0.1."""
    cmd = [sys.executable, "-m", "qa.faces.cli", "serve", "--host", "127.0.0.1",
           "--port", str(port),
           "--index", str(workdir / "index"), "--data", str(workdir / "data"),
           "--source", str(ROOT / "seeds")]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(ROOT)}
    log = (workdir / "serve.log").open("w")
    return subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env)


def connect(url: str, server: subprocess.Popen | None, timeout: float = 600):
    from gradio_client import Client

    deadline = time.monotonic() + timeout
    while True:
        try:
            return Client(url, verbose=False)
        except Exception:
            if server is not None and server.poll() is not None:
                raise SystemExit(f"qa serve exited with {server.returncode}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def ask(client, question: str, history: list[str]) -> tuple[str, float]:
    start = time.perf_counter()
    result = client.predict(question, history, api_name="/ask")
    return json.dumps(result, sort_keys=True), time.perf_counter() - start


def run(url: str, clients: int, per_client: int, server: subprocess.Popen | None) -> dict:
    pool = questions()
    first = connect(url, server)
    reference, sequential = {}, []
    for question, history in pool:  # the reference: one at a time
        answer, seconds = ask(first, question, history)
        reference[(question, tuple(history))] = answer
        sequential.append(seconds)

    latencies: list[float] = []
    errors: list[str] = []
    mismatches: list[str] = []
    lock = threading.Lock()

    def client_loop(n: int) -> None:
        client = connect(url, server)
        for i in range(per_client):
            question, history = pool[(n * 7 + i) % len(pool)]
            try:
                answer, seconds = ask(client, question, history)
            except Exception as exc:
                with lock:
                    errors.append(f"client {n}: {exc.__class__.__name__}: {exc}")
                continue
            with lock:
                latencies.append(seconds)
                if answer != reference[(question, tuple(history))]:
                    mismatches.append(question[:80])

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {
        "distinct_questions": len(pool),
        "sequential": {"requests": len(sequential), "p50_s": percentile(sequential, 0.5),
                       "p95_s": percentile(sequential, 0.95)},
        "parallel": {"clients": clients, "requests": clients * per_client,
                     "ok": len(latencies), "errors": len(errors), "mismatches": len(mismatches),
                     "p50_s": percentile(latencies, 0.5) if latencies else None,
                     "p95_s": percentile(latencies, 0.95) if latencies else None,
                     "mean_s": statistics.fmean(latencies) if latencies else None,
                     "wall_s": wall, "requests_per_s": len(latencies) / wall},
        "first_errors": errors[:5],
        "first_mismatches": mismatches[:5],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running `qa serve` (loopback only)")
    parser.add_argument("--serve", action="store_true", help="start `qa serve` on seeds/ here")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--questions", type=int, default=100, help="per client")
    args = parser.parse_args()
    if bool(args.url) == args.serve:
        parser.error("give --url or --serve")
    server = None
    with tempfile.TemporaryDirectory(prefix="qa-load-") as tmp:
        if args.serve:
            port = free_port()
            server = start_server(port, Path(tmp))
            url = f"http://127.0.0.1:{port}/"
        else:
            url = args.url
            if urlparse(url).hostname not in LOOPBACK:
                parser.error("only a server on this machine (127.0.0.1) may be load-tested")
        try:
            result = run(url, args.clients, args.questions, server)
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=60)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    ok = result["parallel"]["errors"] == 0 and result["parallel"]["mismatches"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
