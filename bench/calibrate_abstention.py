"""Calibrate when an answer declines: fit the confidence and choose its threshold.

For every question of ClapNQ (300 answerable, 300 not; passages indexed once into
.cache/bench/clapnq-index), of the seed sets (eval/seed.jsonl, eval/seed_chats.jsonl) and of
SQuAD's fit articles (eval/squad/fit, 600 answerable and 600 on-topic unanswerable; indexed
where `qa eval eval/squad` indexes them), the reader's confidence features are taken from
`Engine.trace` (qa.read.Features: the best sentence's cosine, its lead over the median
sentence, its share of the question's terms that its passage's title lacks, whether it names
what a "how many" question counts or whose role a "who is the R of X" question asks for, the
question's length, and its lowest word match token by token). A logistic regression over every
question of the three sets (each question weighs the same) gives the confidence
(`ConfidenceWeights`); a sweep of thresholds prints, on each set, the precision and recall of
declining and the share of answerable questions answered (and answered with a right best
sentence). The chosen threshold answers >= 90% of ClapNQ's answerable questions and >= 95% of
the seed sets' and of SQuAD fit's (MIN_ANSWERED), declines none of the seed sets' answers that
are right (their target is every answerable question answered) and, within that, declines the
most unanswerable ones. SQuAD's validation articles are held out: never read here. Last, a
confidence fitted on ClapNQ alone and one on SQuAD fit alone, each cross-validated, show how
many of its unanswerable questions the features can decline at 90% answered.

    python bench/calibrate_abstention.py [--seed-index DIR] [--clapnq-index DIR] [--no-squad]

(--no-squad: ClapNQ and the seed sets alone, as the shipped confidence was fitted.)

Run it again after changing retrieval or the sentence score; copy the printed values into
AnswerSettings (qa/settings.py): `confidence=ConfidenceWeights(...)` and `threshold`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from answer_data import (
    CLAPNQ_INDEX,
    FEATURES,
    ROOT,
    Evidence,
    gather,
    open_clapnq,
    open_seeds,
    open_squad,
    read_clapnq,
    read_question_set,
    squad_questions,
)

from qa.answer import confidence_of
from qa.settings import AnswerSettings, ConfidenceWeights

# Answerable questions that must be answered: ClapNQ's target is 90%; the seed sets' is every
# one, which no threshold that declines much else reaches, so nearly every one.
MIN_ANSWERED = {"clapnq": 0.90, "seed": 0.95, "squad-fit": 0.95}


def rates(evidence: list[Evidence], confidence: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision and recall of declining, and the share of answerable questions answered
    (and answered with a right best sentence)."""
    answerable = np.array([ev.question.answerable for ev in evidence])
    declined = confidence < threshold
    right = np.array([
        bool(ev.candidates) and ev.question.right(ev.candidates[0].text,
                                                  ev.candidates[0].passage.doc_id)
        for ev in evidence
    ])
    n_declined = max(int(declined.sum()), 1)
    return {
        "decline_precision": float((declined & ~answerable).sum() / n_declined),
        "decline_recall": float((declined & ~answerable).sum() / max((~answerable).sum(), 1)),
        "answered": float((~declined & answerable).sum() / max(answerable.sum(), 1)),
        "answered_right": float((~declined & answerable & right).sum() / max(answerable.sum(), 1)),
    }


def confidences(evidence: list[Evidence], weights: ConfidenceWeights) -> np.ndarray:
    return np.array([confidence_of(ev.features, weights) for ev in evidence])


def fit(sets: dict[str, list[Evidence]]) -> ConfidenceWeights:
    from sklearn.linear_model import LogisticRegression

    every = [ev for evidence in sets.values() for ev in evidence]
    x = [ev.feature_row() for ev in every]
    y = [ev.question.answerable for ev in every]
    model = LogisticRegression(C=10.0, max_iter=1000).fit(x, y)
    return ConfidenceWeights(float(model.intercept_[0]),
                             **{name: float(w) for name, w in zip(FEATURES, model.coef_[0])})


def shown(weights: ConfidenceWeights, digits: int) -> str:
    """`ConfidenceWeights(bias=..., cosine=..., ...)`, rounded, as it is written in settings."""
    values = ", ".join(f"{name}={getattr(weights, name):.{digits}f}"
                       for name in ("bias", *weights.features()))
    return f"ConfidenceWeights({values})"


def held_out_declines(evidence: list[Evidence], answered: float = 0.90, folds: int = 5,
                      shuffles: int = 3) -> float:
    """The most unanswerable questions one set's own confidence declines while answering
    `answered` of its answerable ones, each question's confidence fitted on the other folds
    (averaged over shuffles): what the features can tell apart, free of the other set."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    x = np.array([ev.feature_row() for ev in evidence])
    y = np.array([ev.question.answerable for ev in evidence])
    held_out = np.zeros(len(y))
    for shuffle in range(shuffles):
        split = StratifiedKFold(folds, shuffle=True, random_state=shuffle).split(x, y)
        for train, test in split:
            model = LogisticRegression(C=10.0, max_iter=1000).fit(x[train], y[train])
            held_out[test] += model.predict_proba(x[test])[:, 1] / shuffles
    best = 0.0
    for t in np.unique(held_out):
        declined = held_out < t
        if (~declined & y).sum() >= answered * y.sum():
            best = max(best, float((declined & ~y).sum() / max((~y).sum(), 1)))
    return best


def report(name: str, sets: dict[str, list[Evidence]], weights: ConfidenceWeights,
           thresholds: np.ndarray) -> list[tuple[float, dict[str, dict[str, float]]]]:
    print(f"\n{name}: {shown(weights, 3)}")
    print("threshold | " + " | ".join(f"{s}: decline P / R, answered (right)" for s in sets))
    rows = []
    conf = {s: confidences(ev, weights) for s, ev in sets.items()}
    for t in thresholds:
        r = {s: rates(ev, conf[s], t) for s, ev in sets.items()}
        rows.append((float(t), r))
        if len(thresholds) > 1 and abs(t * 40 - round(t * 40)) > 1e-6:
            continue  # the sweep is fine; the table shows every 0.025
        print(f"  {t:.3f}   | " + " | ".join(
            f"{v['decline_precision']:.3f} / {v['decline_recall']:.3f}, {v['answered']:.3f} "
            f"({v['answered_right']:.3f})" for v in r.values()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-index", type=Path, help="index of seeds/ (default: a temp dir)")
    parser.add_argument("--clapnq-index", type=Path, default=CLAPNQ_INDEX)
    parser.add_argument("--no-squad", action="store_true", help="leave SQuAD fit out")
    args = parser.parse_args()
    seed_index = args.seed_index or Path(tempfile.mkdtemp(prefix="seed-index-"))

    seed_questions = [*read_question_set(ROOT / "eval" / "seed.jsonl"),
                      *read_question_set(ROOT / "eval" / "seed_chats.jsonl")]
    sets = {
        "clapnq": gather(open_clapnq(args.clapnq_index), read_clapnq()),
        "seed": gather(open_seeds(seed_index), seed_questions),
    }
    if not args.no_squad:
        sets["squad-fit"] = gather(open_squad("fit"), squad_questions("fit"))
    thresholds = np.round(np.arange(0.05, 0.95, 0.005), 3)
    current = AnswerSettings()
    report("current settings", sets, current.confidence, np.array([current.threshold]))

    weights = fit(sets)
    rows = report("fitted", sets, weights, thresholds)
    right_seed = max(r["seed"]["answered_right"] for _, r in rows)
    ok = [(t, r) for t, r in rows
          if all(v["answered"] >= MIN_ANSWERED[name] for name, v in r.items())
          and r["seed"]["answered_right"] >= right_seed]
    if not ok:
        print("\nno threshold answers enough of every set")
        return
    t, r = max(ok, key=lambda row: (sum(v["decline_recall"] for v in row[1].values()), row[0]))
    print(f"\nchosen threshold {t:.3f}: " + "; ".join(
        f"{name} decline precision {v['decline_precision']:.3f}, recall "
        f"{v['decline_recall']:.3f}, answered {v['answered']:.3f}" for name, v in r.items()))
    print(f"AnswerSettings: confidence={shown(weights, 2)}, threshold={t:.3f}")
    for name in ("clapnq", "squad-fit")[: 1 if args.no_squad else 2]:
        print(f"{name} alone, 5-fold cross-validated: declines "
              f"{held_out_declines(sets[name]):.3f} of the unanswerable at 90% answered")


if __name__ == "__main__":
    main()
