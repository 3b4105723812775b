"""Calibrate when an answer declines: fit the confidence and choose its threshold.

For every question of ClapNQ (300 answerable, 300 not; passages indexed once into
.cache/bench/clapnq-index), of the seed sets (eval/seed.jsonl, eval/seed_chats.jsonl) and of
SQuAD's fit articles (eval/squad/fit, 600 answerable and 600 on-topic unanswerable; indexed
where `qa eval eval/squad` indexes them), the reader's confidence features are taken from
`Engine.trace` (qa.answering.reading.Features: the best sentence's cosine, by the sentence scorer
and by the retrieval embedder, its lead over the median sentence, its share of the
question's terms that its passage's title lacks, whether it names
what a "how many" question counts or whose role a "who is the R of X" question asks for, the
question's length, and its lowest word match token by token). A logistic regression over every
question of the three sets that no rule decided gives the confidence (`ConfidenceWeights`),
each set weighing the same, or one of the other weightings in SET_WEIGHTS; a sweep of
thresholds prints, on each set, the precision and recall of declining and the share of
answerable questions answered (and answered with a right best sentence). For each weighting
the threshold that answers >= 90% of ClapNQ's answerable questions and >= 95% of the seed
sets' and of SQuAD fit's (MIN_ANSWERED) and declines the most unanswerable ones (the mean
share over ClapNQ and SQuAD fit) is found; the weighting and threshold that decline the most
are chosen. SQuAD's validation articles are held out: never read here. Last, a
confidence fitted on ClapNQ alone and one on SQuAD fit alone, each cross-validated, show how
many of its unanswerable questions the features can decline at 90% answered.

    python bench/calibrate_abstention.py [--seed-index DIR] [--clapnq-index DIR] [--no-squad]
        [--squad-articles Rhine,Islamism,United_Methodist_Church]

(--no-squad: ClapNQ and the seed sets alone. --squad-articles: only those SQuAD fit articles'
questions; the shipped confidence was fitted with the three the sentence scorer was not
trained on, as above.)

Run it again after changing retrieval or the sentence score; copy the printed values into
AnswerSettings (qa/settings.py): `confidence=ConfidenceWeights(...)` and `threshold`.

Reproduces: the shipped confidence and threshold 0.305 (qa/settings.py), and eval/RESULTS.md's
calibration sweep and ClapNQ cross-validated figure (67.7% declined at 90% answered), from the
run of 2026-12-02 16:14 UTC (code committed in 6c1a2ca) with --squad-articles
Rhine,Islamism,United_Methodist_Church. Takes: not recorded.
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

from qa.answering.answer import confidence_of
from qa.settings import AnswerSettings, ConfidenceWeights

# Answerable questions that must be answered: ClapNQ's target is 90%; the seed sets' is every
# one, which no threshold that declines much else reaches, so nearly every one.
MIN_ANSWERED = {"clapnq": 0.90, "seed": 0.95, "squad-fit": 0.95}
# How much each set weighs in the fit, tried in turn (a set not named weighs 1)
SET_WEIGHTS: tuple[dict[str, float], ...] = (
    {}, {"clapnq": 2.0}, {"squad-fit": 2.0}, {"seed": 0.5})


def declined(r: dict[str, dict[str, float]]) -> float:
    """The mean share of unanswerable questions declined, over the sets but the seed sets
    (whose 13 are few; the seed sets' every question on its own is in the table)."""
    names = [n for n in r if n != "seed"] or list(r)
    return float(np.mean([r[n]["decline_recall"] for n in names]))


# the SQuAD fit articles bench/train_sentence_scorer.py holds out as dev (the last 3 listed)
SCORER_UNTRAINED = ("Rhine", "Islamism", "United_Methodist_Church")


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


def decides(ev: Evidence) -> bool:
    """Whether the confidence decides the question: it has sentences and no rule decided."""
    return bool(ev.candidates) and ev.decided is None


def ruled(evidence: list[Evidence], confidence) -> np.ndarray:
    """`confidence` where it decides; 1 or 0 where a rule decided, 0 with nothing to quote."""
    return np.array([c if decides(ev) else float(bool(ev.candidates and ev.decided))
                     for ev, c in zip(evidence, confidence)])


def confidences(evidence: list[Evidence], weights: ConfidenceWeights) -> np.ndarray:
    """The answer's confidence, as the answer step computes it."""
    return ruled(evidence, [confidence_of(ev.features, weights) for ev in evidence])


def fit(sets: dict[str, list[Evidence]], set_weights: dict[str, float] | None = None
        ) -> ConfidenceWeights:
    """A logistic regression over the questions no rule decided; each set weighs its
    `set_weights` entry (default: its size) shared among its questions."""
    from sklearn.linear_model import LogisticRegression

    rows = {name: [ev for ev in evidence if decides(ev)] for name, evidence in sets.items()}
    every = [ev for evidence in rows.values() for ev in evidence]
    x = np.array([ev.feature_row() for ev in every])
    y = [ev.question.answerable for ev in every]
    # a feature that never varies (the word match, off) keeps weight 0: with one, it is on
    varies = x.std(axis=0) > 0
    weights = np.concatenate([
        np.full(len(evidence), (set_weights or {}).get(name, len(evidence)) / len(evidence))
        for name, evidence in rows.items() if evidence])
    weights *= len(weights) / weights.sum()  # a mean of 1: C means the same whatever they are
    model = LogisticRegression(C=10.0, max_iter=1000).fit(x[:, varies], y, sample_weight=weights)
    coef = iter(model.coef_[0])
    return ConfidenceWeights(float(model.intercept_[0]), **{
        name: float(next(coef)) if v else 0.0 for name, v in zip(FEATURES, varies)})


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
    scored = np.array([decides(ev) for ev in evidence])
    held_out = np.zeros(len(y))
    for shuffle in range(shuffles):
        split = StratifiedKFold(folds, shuffle=True, random_state=shuffle).split(x, y)
        for train, test in split:
            train = train[scored[train]]  # as `fit`: the rows the confidence decides
            model = LogisticRegression(C=10.0, max_iter=1000).fit(x[train], y[train])
            held_out[test] += model.predict_proba(x[test])[:, 1] / shuffles
    held_out = ruled(evidence, held_out)
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
    parser.add_argument("--squad-articles", help="comma-separated: only these SQuAD fit "
                        "articles' questions (those the sentence scorer was not trained on: "
                        + ",".join(SCORER_UNTRAINED) + ")")
    args = parser.parse_args()
    seed_index = args.seed_index or Path(tempfile.mkdtemp(prefix="seed-index-"))

    seed_questions = [*read_question_set(ROOT / "eval" / "seed.jsonl"),
                      *read_question_set(ROOT / "eval" / "seed_chats.jsonl")]
    sets = {
        "clapnq": gather(open_clapnq(args.clapnq_index), read_clapnq()),
        "seed": gather(open_seeds(seed_index), seed_questions),
    }
    if not args.no_squad:
        articles = args.squad_articles.split(",") if args.squad_articles else None
        sets["squad-fit"] = gather(open_squad("fit"), squad_questions("fit", articles))
    thresholds = np.round(np.arange(0.05, 0.95, 0.005), 3)
    current = AnswerSettings()
    report("current settings", sets, current.confidence, np.array([current.threshold]))

    best = None
    for set_weights in SET_WEIGHTS:
        weights = fit(sets, {name: set_weights.get(name, 1.0) for name in sets})
        rows = report(f"fitted, the sets weighing {set_weights}", sets, weights, thresholds)
        ok = [(t, r) for t, r in rows
              if all(v["answered"] >= MIN_ANSWERED[name] for name, v in r.items())]
        if not ok:
            print("no threshold answers enough of every set")
            continue
        t, r = max(ok, key=lambda row: (declined(row[1]), row[0]))
        print(f"best threshold {t:.3f}: declines {declined(r):.3f} of the unanswerable")
        if best is None or declined(r) > declined(best[2]):
            best = (set_weights, weights, r, t)
    if best is None:
        return
    set_weights, weights, r, t = best
    print(f"\nchosen: the sets weighing {set_weights}, threshold {t:.3f}: " + "; ".join(
        f"{name} decline precision {v['decline_precision']:.3f}, recall "
        f"{v['decline_recall']:.3f}, answered {v['answered']:.3f}" for name, v in r.items()))
    print(f"AnswerSettings: confidence={shown(weights, 2)}, threshold={t:.3f}")
    for name in ("clapnq", "squad-fit")[: 1 if args.no_squad else 2]:
        print(f"{name} alone, 5-fold cross-validated: declines "
              f"{held_out_declines(sets[name]):.3f} of the unanswerable at 90% answered")


if __name__ == "__main__":
    main()
