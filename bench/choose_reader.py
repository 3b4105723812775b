"""Choices for the learned reader (qa/models/pair_reader.py), made on validation parts: how the
answer's confidence comes from it, whether its probability orders the quotes, and how many
sentences it reads. Each question of each part is read once with the reader on (every read
sentence's probability kept); the answer is then composed as `Engine.ask` would under each
choice, and each choice is judged at the threshold that answers 90% of the answerable questions.

    PYTHONPATH=. .venv/bin/python bench/choose_reader.py eval/squad2/validation \\
        eval/squad/validation [--reader-folder DIR] [--sentences 4] [--json OUT]

Rows: the shipped confidence and order (today), the reader's best probability as the
confidence with today's order, and the same with the quotes ordered by the reader. Columns:
declined (of the unanswerable) and right (an answer phrase inside the quotes, of the
answerable) at the threshold that answers 90%; AUC of the confidence (answerable over
unanswerable); key-phrase exact match against the answer phrases where the best sentence
holds one. Minutes per part on 2 cores (SQuAD 2.0 validation: 357 questions).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import string
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from qa.answering.answer import compose
from qa.answering.read import log_odds
from qa.answering.reading import Reading
from qa.engine import Engine
from qa.eval.baselines import CACHE_ROOT
from qa.eval.beir import load_beir
from qa.eval.heldout import part_questions
from qa.eval.metrics import contains_any
from qa.settings import Settings

ANSWERED = 0.90


def normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, articles or extra spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def read_part(folder: Path, settings: Settings) -> list[dict]:
    """Per question: whether it is answerable, and the answer under each choice."""
    dataset = load_beir(folder)
    engine = Engine.open(sources=[dataset.corpus], index_dir=CACHE_ROOT / dataset.corpus_key()
                         / "qa-index", settings=settings)
    questions, _ = part_questions(dataset.records)
    a = settings.answer
    kept = replace(a, threshold=0.0)
    out = []
    for q in questions:
        trace = engine.trace(q.question)
        reading, passages = trace.reading, trace.passages
        today = trace.answer
        record = {"answerable": q.answerable, "answers": q.answers, "decided": reading.decided,
                  "features": asdict(reading.features)}
        read = [c for c in reading.ranked if c.answers is not None]
        best = max(read, key=lambda c: c.answers) if read else None
        p = best.answers if best is not None else 0.0
        record["features"]["answers"] = log_odds(p if best is not None else None)
        if reading.decided is not None:
            p = float(reading.decided)
        for name, ranked, confidence in (
            ("today", reading.ranked, today.confidence),
            ("reader confidence", reading.ranked, p),
            ("reader confidence and order",
             sorted(read, key=lambda c: -c.answers) + reading.ranked[len(read):], p),
        ):
            answer = compose(q.question, trace.resolution.standalone,
                             Reading(ranked, reading.features, reading.decided), passages, kept)
            quoted = " ".join(c.quote for c in answer.citations)
            record[name] = {"confidence": confidence,
                            "right": bool(answer.answered and contains_any(quoted, q.answers))}
        phrase = best.passage.text[best.phrase[0] - best.passage.start:
                                   best.phrase[1] - best.passage.start] if best else ""
        holds = best is not None and contains_any(best.text, q.answers)
        record["phrase"] = phrase
        record["phrase_em"] = (holds and normalize(phrase) in {normalize(x) for x in q.answers})
        record["best_holds"] = holds
        out.append(record)
    return out


def auc(pos: list[float], neg: list[float]) -> float | None:
    if not pos or not neg:
        return None
    ranks = np.argsort(np.argsort(np.asarray(pos + neg))) + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def judge(records: list[dict], name: str) -> dict[str, float | None]:
    yes = [r for r in records if r["answerable"]]
    no = [r for r in records if not r["answerable"]]
    conf = sorted((r[name]["confidence"] for r in yes), reverse=True)
    threshold = conf[max(0, int(np.ceil(ANSWERED * len(conf))) - 1)] if conf else 0.0
    answered = [r for r in yes if r[name]["confidence"] >= threshold]
    return {
        "threshold": round(threshold, 4),
        "answered": round(len(answered) / len(yes), 3) if yes else None,
        "right": round(sum(r[name]["right"] for r in answered) / len(yes), 3) if yes else None,
        "declined": (round(sum(r[name]["confidence"] < threshold for r in no) / len(no), 3)
                     if no else None),
        "auc": auc([r[name]["confidence"] for r in yes], [r[name]["confidence"] for r in no]),
    }


def refit(fit: list[dict], parts: dict[str, list[dict]], names: list[str], row: str,
          quotes: str, rule_free: bool = True) -> dict:
    """A logistic confidence over `names` fitted on `fit`'s questions (those no rule decided),
    set as `row` on every part's records, quoting as row `quotes` does; its weights."""
    from sklearn.linear_model import LogisticRegression

    def matrix(records: list[dict]) -> np.ndarray:
        return np.asarray([[r["features"][n] for n in names] for r in records], dtype=float)

    train = [r for r in fit if r["decided"] is None or not rule_free]
    model = LogisticRegression(C=10.0, max_iter=2000).fit(
        matrix(train), [r["answerable"] for r in train])
    for records in [fit, *parts.values()]:
        confidence = model.predict_proba(matrix(records))[:, 1]
        for r, c in zip(records, confidence):
            r[row] = {"confidence": (float(r["decided"]) if r["decided"] is not None
                                     else float(c)), "right": r[quotes]["right"]}
    return {"bias": float(model.intercept_[0]),
            **{n: float(w) for n, w in zip(names, model.coef_[0])}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", nargs="+", type=Path)
    parser.add_argument("--reader-folder", default="")
    parser.add_argument("--sentences", type=int, default=4)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--fit", type=Path, nargs="*", default=[],
                        help="fit parts: also refit the logistic confidence on them, with and "
                        "without the reader's log-odds")
    parser.add_argument("--cache", type=Path, help="a folder keeping each part's readings, "
                        "reused by a later run with the same reader and part")
    args = parser.parse_args()
    base = Settings()
    settings = replace(base, answer=replace(base.answer, pair_reader=True, reader_order=False,
                                            reader_sentences=args.sentences,
                                            reader_folder=args.reader_folder))
    report: dict = {}
    def cached(folder: Path) -> list[dict]:
        if args.cache is None:
            return read_part(folder, settings)
        key = f"{folder.resolve()}|{args.reader_folder}|{args.sentences}"
        path = args.cache / (hashlib.sha256(key.encode()).hexdigest()[:16] + ".json")
        if not path.is_file():
            args.cache.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(read_part(folder, settings)), encoding="utf-8")
        return json.loads(path.read_text(encoding="utf-8"))

    parts = {str(folder): cached(folder) for folder in args.parts}
    names = ["today", "reader confidence", "reader confidence and order"]
    if args.fit:
        fit = [r for folder in args.fit for r in cached(folder)]
        today = [n for n in asdict(settings.answer.confidence) if n not in ("bias", "answers")]
        report["weights"] = {
            "refit, no reader": refit(fit, parts, today, "refit, no reader", "today"),
            "refit with the reader": refit(fit, parts, [*today, "answers"],
                                           "refit with the reader",
                                           "reader confidence and order"),
        }
        names += ["refit, no reader", "refit with the reader"]
        report[f"{' + '.join(map(str, args.fit))} (fit)"] = {name: judge(fit, name)
                                                              for name in names}
        print(json.dumps(report, indent=1), flush=True)
    for folder, records in parts.items():
        rows = {name: judge(records, name) for name in names}
        held = [r for r in records if r["answerable"] and r["best_holds"]]
        rows["key phrase"] = {"exact_match": round(sum(r["phrase_em"] for r in held)
                                                   / len(held), 3) if held else None,
                              "of": len(held)}
        report[folder] = rows
        print(folder, json.dumps(rows, indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
