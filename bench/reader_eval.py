"""The learned reader's confidence (`qa.settings.with_reader()`) beside the shipped answer step,
as `qa eval` counts them, in one process: the seed sets, eval/fresh.jsonl and the SQuAD parts
named.

    PYTHONPATH=. .venv/bin/python bench/reader_eval.py eval/squad2/fit eval/squad2/validation \\
        eval/squad/fit eval/squad/validation [--json OUT]

Reproduces the table "As `qa eval` counts them" of eval/results/reader.md. Takes about 16
minutes on 2 cores (the SQuAD parts' indexes cached under .cache/eval).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from qa import Engine
from qa.eval.evaluate import evaluate_questions, read_questions
from qa.eval.heldout import evaluate_part
from qa.settings import Settings, with_reader

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", nargs="*", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    base = Settings()
    configs = {"shipped": base, "with the reader": replace(base, answer=with_reader(base.answer))}
    index = Path(tempfile.mkdtemp(prefix="seed-index-"))
    out = {}
    for name, settings in configs.items():
        for path in (ROOT / "eval" / "seed.jsonl", ROOT / "eval" / "seed_chats.jsonl",
                     ROOT / "eval" / "fresh.jsonl"):
            engine = Engine.open(sources=[ROOT / "seeds"], index_dir=index, settings=settings)
            report = evaluate_questions(engine, read_questions(path), path)
            out[f"{path.name} | {name}"] = {"row": report.rows["qa"], "notes": report.notes[:1]}
            print(path.name, name, report.notes[0], flush=True)
        for part in args.parts:
            start = time.time()
            row, note, _ = evaluate_part(part, False, settings)
            out[f"{part} | {name}"] = {"row": row, "notes": [note]}
            print(part, name, {k: round(v, 3) for k, v in row.items() if v is not None},
                  f"{time.time() - start:.0f} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
