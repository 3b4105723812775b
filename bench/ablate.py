"""Ablate the answer step's hand-written rules: each rule switched off alone, the confidence
refitted and its threshold chosen again on fit data only, then every set measured.

The confidence is refitted as bench/calibrate_abstention.py fits it (a logistic regression
over the questions no rule decided of ClapNQ dev, the seed sets and the 3 SQuAD fit articles the
sentence scorer was not trained on), with one fixed weighting (below); SQuAD's fit part
(eval/squad/fit) is fit data for choosing which rules stay; SQuAD's validation part
(eval/squad/validation) is only reported. For each variant the reader runs over every question
(`Engine.trace`), its evidence is kept in --work (reused by a later run with the same variant
and the same qa sources), a logistic regression fits the confidence and `calibrated_threshold`
picks the threshold by calibrate_abstention.py's rule; the table then gives, per set, answers
right / answered / declined as `qa eval` counts them, and the confidence's AUC (answerable
against unanswerable, any threshold) and the answers right were every question answered
(quotes) on both SQuAD parts. The first row is the shipped confidence and threshold
(`AnswerSettings`) over the reader with every rule.

    python bench/ablate.py [--only NAME,...] [--work DIR] [--seed-index DIR] [--out TABLE.md]

(PYTHONPATH=. so that `qa` is this checkout's.)

Reproduces: eval/results/ablation.md ("With the sentence scorer", the rules as committed), the
table eval/RESULTS.md's "Ablation" section quotes. Takes: that run took 16 minutes
(2026-12-02 16:23-16:39 UTC, 2 cores shared with the test suite); each variant's evidence is
kept in --work, so a run whose evidence is cached takes less (how much was cached then is not
recorded).

The refit is not calibrate_abstention.py's search: one fixed weighting, FIT_SETS (ClapNQ 1,
the seed sets 1, the 3 SQuAD fit articles 2), where calibrate_abstention.py tries four
weightings and keeps the one that declines the most (for the shipped threshold 0.305 it chose
ClapNQ 2). The threshold rule is the same as its (`calibrated_threshold`). So the "all rules"
row, this weighting's refit of the reader as shipped, is the baseline the other rows compare
with; the "shipped" row is `AnswerSettings` as it is.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
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
from calibrate_abstention import MIN_ANSWERED, SCORER_UNTRAINED

from qa import Engine
from qa.answering.answer import choose, cite, confidence_of
from qa.eval.metrics import contains_any
from qa.settings import ConfidenceWeights, Settings
from qa.text import english

# what the confidence is fitted on, as shipped, and how much each set weighs
FIT_SETS = {"clapnq": 1.0, "seed": 1.0, "squad-fit": 2.0}
# what makes the evidence: cached evidence is named by these files' digest, so a change to
# them never reads evidence an older reader left in --work
EVIDENCE_SOURCES = ("answer.py", "english.py", "read.py", "reading.py", "retrieve.py",
                    "scorer.py", "settings.py")


def answer_settings(**changes):
    return lambda s: replace(s, answer=replace(s.answer, **changes))


# name -> (what the rule is, settings without it, confidence features without it)
VARIANTS = {
    "shipped": ("as shipped: every rule, `AnswerSettings`' confidence and threshold",
                lambda s: s, ()),
    "all rules": ("every rule, the confidence refitted", lambda s: s, ()),
    "count": ("how-many counted words (`asked`)", answer_settings(count_rule=False), ()),
    "role": ("who-is-the-R-of-X role (`asked`)", answer_settings(role_rule=False), ()),
    "asked": ("count and role rules (`asked`)",
              answer_settings(count_rule=False, role_rule=False), ()),
    "embedder": ("the retrieval embedder's cosine (`embedder_cosine`)", lambda s: s,
                 ("embedder_cosine",)),
    "focus": ("title-lacking terms (`focus`)", lambda s: s, ("focus",)),
    "gap": ("lead over the median sentence (`gap`)", lambda s: s, ("gap",)),
    "fragments": ("fragment/continuation joined to the sentence before",
                  answer_settings(join_fragments=False), ()),
    "heading": ("heading penalty", answer_settings(heading_penalty=0.0), ()),
    "lead-in": ("sentence read after the one before (lead-in)",
                answer_settings(window_cosine=False), ()),
    "framing": ("framing words not counted as terms", answer_settings(framing_words=False), ()),
    "definition": ("definition questions answered by the introducing sentence",
                   answer_settings(definition_rule=False), ()),
    "overview": ("overview questions answered by the document's lead",
                 answer_settings(overview_rule=False), ()),
    "scorer": ("the learned sentence scorer (not a rule: the reader before it)",
               answer_settings(sentence_scorer=False), ()),
    "pronouns": ("pronoun resolution (chats only)",
                 lambda s: replace(s, chat=replace(s.chat, resolve_pronouns=False)), ()),
}
CHATS_ONLY = {"pronouns"}


def evidence_rows(engine: Engine, questions: list[Question], settings: Settings) -> list[dict]:
    """Per question: its features, whether the answer's quotes are right were it answered."""
    with_settings(engine, settings)
    rows = []
    for q in questions:
        trace = engine.trace(q.question, q.history)
        ranked = trace.reading.ranked
        citations = cite(choose(ranked, settings.answer)) if ranked else []
        if q.gold is None:
            right = bool(citations) and contains_any(" ".join(c.quote for c in citations),
                                                     q.answers)
        else:
            right = any(q.right(c.quote, c.passage.doc_id) for c in citations)
        rows.append({"id": q.id, "answerable": q.answerable, "right": q.answerable and right,
                     "some": bool(ranked), "decided": trace.reading.decided,
                     "features": [float(getattr(trace.reading.features, n)) for n in FEATURES],
                     "best": best_evidence(trace) if ranked else {}})
    return rows


def best_evidence(trace) -> dict:
    """More of the best sentence's evidence, to try as features (the fit sets only)."""
    ranked = trace.reading.ranked
    best = ranked[0]
    key = [w.lower() for w in trace.resolution.facts.key_words]
    held = english.lower_words(best.reading)
    return {"lexical": best.lexical, "context": best.context,
            "passage": best.passage.score, "top_passage": trace.passages[0].score,
            "second": best.score - (ranked[1].score if len(ranked) > 1 else 0.0),
            "names": sum(w in held for w in key) / len(key) if key else 1.0,
            "own": best.own_cosine, "score": best.score}


def decides(row: dict) -> bool:
    """Whether the confidence decides the question (as calibrate_abstention.decides)."""
    return row["some"] and row.get("decided") is None


def fit_weights(fit: dict[str, list[dict]], dropped: tuple[str, ...]) -> ConfidenceWeights:
    """calibrate_abstention.fit over `fit` (set -> rows): the rows no rule decided, each set
    weighing its FIT_SETS entry; a feature dropped or that never varies keeps weight 0."""
    from sklearn.linear_model import LogisticRegression

    rows = {name: [r for r in fit[name] if decides(r)] for name in FIT_SETS}
    every = [r for name in FIT_SETS for r in rows[name]]
    x = np.array([r["features"] for r in every])
    y = np.array([r["answerable"] for r in every])
    keep = [i for i, n in enumerate(FEATURES) if n not in dropped and x[:, i].std() > 0]
    weights = np.concatenate([np.full(len(rows[name]), FIT_SETS[name] / len(rows[name]))
                              for name in FIT_SETS if rows[name]])
    weights *= len(weights) / weights.sum()
    model = LogisticRegression(C=10.0, max_iter=1000).fit(x[:, keep], y, sample_weight=weights)
    out = dict.fromkeys(FEATURES, 0.0)
    out.update({FEATURES[i]: float(w) for i, w in zip(keep, model.coef_[0])})
    return ConfidenceWeights(float(model.intercept_[0]), **out)


def confidences(rows: list[dict], weights: ConfidenceWeights) -> np.ndarray:
    from qa.answering.reading import Features

    return np.array([
        float(r["decided"]) if r.get("decided") is not None
        else confidence_of(Features(**dict(zip(FEATURES, r["features"]))), weights)
        if r["some"] else 0.0 for r in rows])


def measure(rows: list[dict], conf: np.ndarray, threshold: float) -> dict[str, float]:
    answerable = np.array([r["answerable"] for r in rows])
    right = np.array([r["right"] for r in rows])
    answered = conf >= threshold
    n_ans, n_un = max(answerable.sum(), 1), max((~answerable).sum(), 1)
    return {"right": float((answered & right).sum() / n_ans),
            "answered": float((answered & answerable).sum() / n_ans),
            "declined": float((~answered & ~answerable).sum() / n_un),
            "n_right": int((answered & right).sum()), "n": int(answerable.sum()),
            "n_declined": int((~answered & ~answerable).sum()), "n_un": int((~answerable).sum()),
            "auc": auc(conf, answerable),
            "quotes": float(right.sum() / n_ans)}  # right were every question answered


def auc(conf: np.ndarray, answerable: np.ndarray) -> float:
    """The chance that an answerable question's confidence is above an unanswerable one's."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(answerable, conf)) if 0 < answerable.sum() < len(conf) else 0.0


def calibrated_threshold(fit: dict[str, list[dict]], weights: ConfidenceWeights) -> float:
    """calibrate_abstention.py's rule: answer >= 90% of ClapNQ's answerable questions and >=
    95% of the seed sets' and of SQuAD fit's, and within that decline the most unanswerable
    questions (the mean share over ClapNQ and SQuAD fit)."""
    conf = {name: confidences(rows, weights) for name, rows in fit.items()}
    best, best_key = 0.05, -1.0
    for t in np.round(np.arange(0.05, 0.95, 0.005), 3):
        m = {name: measure(rows, conf[name], t) for name, rows in fit.items()}
        if any(m[name]["answered"] < MIN_ANSWERED[name] for name in fit):
            continue
        key = (m["clapnq"]["declined"] + m["squad-fit"]["declined"]) / 2
        if key >= best_key:
            best, best_key = float(t), key
    return best


def evidence_version() -> str:
    """The digest of EVIDENCE_SOURCES (qa's own files)."""
    import hashlib

    import qa

    digest = hashlib.sha256()
    for name in EVIDENCE_SOURCES:
        digest.update((Path(qa.__file__).parent / name).read_bytes())
    return digest.hexdigest()[:12]


def run(only: list[str], work: Path, seed_index: Path) -> dict[str, dict]:
    opened: dict[str, tuple[Engine, list[Question]]] = {}

    def engine_of(name: str) -> tuple[Engine, list[Question]]:
        if name not in opened:
            opened[name] = {
                "squad-fit": lambda: (open_squad("fit"), squad_questions("fit")),
                "squad-val": lambda: (open_squad("validation"), squad_questions("validation")),
                "clapnq": lambda: (open_clapnq(CLAPNQ_INDEX), read_clapnq()),
                "seed": lambda: (open_seeds(seed_index),
                                 read_question_set(ROOT / "eval" / "seed.jsonl")),
                "chats": lambda: (open_seeds(seed_index),
                                  read_question_set(ROOT / "eval" / "seed_chats.jsonl")),
            }[name]()
        return opened[name]

    untrained = {q.id for q in squad_questions("fit", SCORER_UNTRAINED)}
    version = evidence_version()
    results = {}
    for variant in only:
        dropped = VARIANTS[variant][2]
        sets = {}
        for name in ("squad-fit", "squad-val", "clapnq", "seed", "chats"):
            source = variant if name == "chats" or variant not in CHATS_ONLY else "all rules"
            if VARIANTS[source][2] or source == "shipped":  # the evidence of all rules
                source = "all rules"
            cache = work / f"{source}.{name}.{version}.json"
            if not cache.exists():
                engine, questions = engine_of(name)
                rows = evidence_rows(engine, questions, VARIANTS[source][1](Settings()))
                cache.write_text(json.dumps(rows))
            sets[name] = json.loads(cache.read_text())
        fit = {"clapnq": sets["clapnq"], "seed": sets["seed"] + sets["chats"],
               "squad-fit": [r for r in sets["squad-fit"] if r["id"] in untrained]}
        if variant == "shipped":
            weights, threshold = Settings().answer.confidence, Settings().answer.threshold
        else:
            weights = fit_weights(fit, dropped)
            threshold = calibrated_threshold(fit, weights)
        results[variant] = {"threshold": threshold, "weights": weights, "sets": {
            name: measure(rows, confidences(rows, weights), threshold)
            for name, rows in sets.items()}}
        print(variant, f"{threshold:.3f}", {n: {k: round(v, 3) for k, v in m.items()}
                                            for n, m in results[variant]["sets"].items()},
              flush=True)
    return results


def table(results: dict[str, dict]) -> str:
    head = ("| without | rule | SQuAD validation (held out): right / answered / declined, AUC, "
            "quotes | SQuAD fit: right / answered / declined, AUC, quotes | ClapNQ: answered / "
            "declined | seed: right, declined | chats: right | threshold |\n"
            "|---|---|---|---|---|---|---|---:|")
    lines = [head]
    for variant, r in results.items():
        m = r["sets"]

        def rad(s: dict) -> str:
            return (f"{s['right']:.3f} / {s['answered']:.3f} / {s['declined']:.3f}, "
                    f"{s['auc']:.3f}, {s['quotes']:.3f}")

        seed, chats = m["seed"], m["chats"]
        lines.append(
            f"| {'-' if variant in ('all rules', 'shipped') else variant} | "
            f"{VARIANTS[variant][0]} | "
            f"{rad(m['squad-val'])} | {rad(m['squad-fit'])} | {m['clapnq']['answered']:.3f} / "
            f"{m['clapnq']['declined']:.3f} | {seed['n_right']}/{seed['n']}, "
            f"{seed['n_declined']}/{seed['n_un']} | {chats['n_right'] + chats['n_declined']}/"
            f"{chats['n'] + chats['n_un']} | {r['threshold']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(VARIANTS))
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "bench" / "ablate")
    parser.add_argument("--seed-index", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    seed_index = args.seed_index or Path(tempfile.mkdtemp(prefix="seed-index-"))
    results = run(args.only.split(","), args.work, seed_index)
    text = table(results)
    print(text)
    for variant, r in results.items():
        print(variant, f"threshold={r['threshold']:.3f}", r["weights"])
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
