"""Time `Engine.ask` on the seed corpus: every question of eval/seed.jsonl and every turn of
eval/seed_chats.jsonl, after one warm-up question (the model loaded).

The first pass embeds sentences it has not seen (the sentence vectors are cached by text);
the second pass is the warm path. Prints p50 / p90 / max in milliseconds for both.

    python bench/ask_latency.py [--index DIR] [--repeat 2]

Reproduces: the warm `ask` on the seed corpus. eval/RESULTS.md quotes the seed set's p50 from
`qa eval eval/seed.jsonl` (19 ms, 2026-12-06), not from this script: its own output has not
been recorded. Takes: not recorded.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from qa import Engine
from qa.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def questions() -> list[tuple[str, list[str]]]:
    out = []
    for name in ("seed.jsonl", "seed_chats.jsonl"):
        for line in (ROOT / "eval" / name).read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                out.append((row["question"], row.get("history", [])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="index of seeds/ (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=2, help="passes over the questions")
    parser.add_argument("--compare-reader", action="store_true",
                        help="also time the learned reader off and on, in turns, same process")
    args = parser.parse_args()
    index = args.index or Path(tempfile.mkdtemp(prefix="seed-index-"))
    engine = Engine.open(sources=[ROOT / "seeds"], index_dir=index)
    engines = {"as shipped": engine}
    if args.compare_reader:
        base = Settings()
        for on in (False, True):
            settings = replace(base, answer=replace(base.answer, pair_reader=on))
            engines[f"reader {'on' if on else 'off'}"] = Engine.open(
                sources=[ROOT / "seeds"], index_dir=index, settings=settings)
    for e in engines.values():
        e.ask("warm-up: what is this about?")
    items = questions()
    for n in range(1, args.repeat + 1):
        for label, subset in (("single", [q for q in items if not q[1]]),
                              ("follow-up", [q for q in items if q[1]])):
            times: dict[str, list[float]] = {name: [] for name in engines}
            for question, history in subset:
                for name, e in engines.items():  # in turns: load falls on each alike
                    start = time.perf_counter()
                    e.ask(question, history=history)
                    times[name].append((time.perf_counter() - start) * 1000)
            for name, values in times.items():
                t = np.array(values)
                print(f"pass {n}, {label} ({len(t)} questions), {name}: p50 "
                      f"{np.percentile(t, 50):.1f} ms, p90 {np.percentile(t, 90):.1f} ms, "
                      f"max {t.max():.1f} ms")


if __name__ == "__main__":
    main()
