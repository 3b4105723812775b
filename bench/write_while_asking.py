"""How long a small upload takes, and how long questions wait while one is indexed.

    .venv/bin/python bench/write_while_asking.py                     # the seed index
    .venv/bin/python bench/write_while_asking.py --index IX --index IX2   # built by `qa index`

Each index is copied to a temporary folder first; the copy is what changes. For each one:
  - `engine.add([one small file])`: the median of --adds adds, each of a new small file (each
    add writes one SQLite transaction and one small segment);
  - question latency, median and 95th percentile, with no write and while an add runs in a
    thread (questions started while the write was in progress).

Reproduces: a small add's time and question latency during it; none of its figures is recorded
in eval/RESULTS.md or README.md today (the one once quoted in qa/engine.py left with commit
02248a6). Takes: not recorded.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from qa import Engine

ROOT = Path(__file__).resolve().parent.parent

NOTE = "Note {i}: the ferry to island {i} leaves at {hour} o'clock from the northern pier."


def questions(n: int = 10) -> list[str]:
    lines = (ROOT / "eval" / "seed.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return [r["question"] for r in records if not r.get("history")][:n]


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def measure(index_dir: Path, work: Path, adds: int, rounds: int) -> dict:
    engine = Engine.open(sources=None, index_dir=index_dir)
    asked = questions()
    for q in asked:  # warm: model, sentence cache
        engine.ask(q)
    idle = [timed(engine.ask, q) for _ in range(rounds) for q in asked]

    def note(name: str, i: int) -> Path:
        path = work / f"{name}-{i}.txt"
        path.write_text(NOTE.format(i=i, hour=6 + i % 12), encoding="utf-8")
        return path

    add_alone = [timed(engine.add, [note("alone", i)]) for i in range(adds)]
    # (the notes written during the asks count from `adds` on: every note's text differs)
    during: list[float] = []
    for i in range(adds):
        writer = threading.Thread(target=engine.add, args=([note("during", adds + i)],))
        writer.start()
        while writer.is_alive() and not engine.writing:
            time.sleep(0.001)
        j = 0
        while engine.writing:
            start = time.perf_counter()
            engine.ask(asked[j % len(asked)])
            during.append(time.perf_counter() - start)
            j += 1
        writer.join()
    return {
        "passages": len(engine.index),
        "documents": len(engine.index.documents),
        "add one small file s (median)": statistics.median(add_alone),
        "ask, no write: median s": statistics.median(idle),
        "ask, no write: p95 s": p95(idle),
        "ask during an add: median s": statistics.median(during) if during else float("nan"),
        "ask during an add: p95 s": p95(during) if during else float("nan"),
        "asks during adds": len(during),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", action="append", type=Path, help="an index built by qa index")
    parser.add_argument("--adds", type=int, default=5, help="small adds timed per index")
    parser.add_argument("--rounds", type=int, default=3, help="times each question is asked idle")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qa-write-bench-") as tmp:
        tmp = Path(tmp)
        if not args.index:
            seed = tmp / "seed-index"
            Engine.open(sources=[ROOT / "seeds"], index_dir=seed)
            args.index = [seed]
        results = {}
        for n, index in enumerate(args.index):
            work = tmp / f"run-{n}"
            shutil.copytree(index, work / "index")
            results[str(index)] = measure(work / "index", work, args.adds, args.rounds)
    for index, numbers in results.items():
        print(f"\n{index}")
        for name, value in numbers.items():
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            print(f"  {name:32} {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
