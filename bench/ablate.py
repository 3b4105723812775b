"""Fit the answer's confidence and choose its threshold, and ablate the answer step's
hand-written rules: each rule (or a tunable between two values) switched off or moved alone, the
confidence refitted and its threshold chosen again, then every set measured.

Roles (qa/eval/splits.py):
- fit (weights): ClapNQ dev (300 answerable, 300 not), the 3 SQuAD fit articles the sentence
  scorer was not trained on (eval/squad/fit), and SQuAD 2.0's fit article the scorer was not
  trained on, Islamism (eval/squad2/fit). A logistic regression over their questions no rule
  decided, each set weighing the same, gives `ConfidenceWeights`.
- validation (choices): SQuAD's validation articles (eval/squad/validation without Force, the
  test article) and SQuAD 2.0's (eval/squad2/validation). The threshold is the one that answers
  >= 95% of each validation part's answerable questions and >= 90% of ClapNQ's, and declines the
  most unanswerable ones (the mean share over the two validation parts and ClapNQ); a rule stays
  when switching it off loses on validation.
- the seed sets (eval/seed.jsonl, eval/seed_chats.jsonl) and eval/fresh.jsonl (questions of
  the seed article written after the rules, half of them near misses it does not answer):
  reported only, never fitted or chosen on.

For each variant the reader runs over every question (`Engine.trace`), its evidence is kept in
--work (reused by a later run with the same variant and the same qa sources). The table gives,
per set, right / answered / declined as `qa eval` counts them, the confidence's AUC
(answerable against unanswerable, any threshold) and the answers right were every question
answered (quotes). The first row is the confidence and threshold in `AnswerSettings`; the
"all rules" row is the refit that `AnswerSettings` takes (its weights are printed last), with
ClapNQ's own confidence cross-validated (`held_out_declines`).

    python bench/ablate.py [--only NAME,...] [--work DIR] [--seed-index DIR] [--out TABLE.md]

(PYTHONPATH=. so that `qa` is this checkout's.)

Reproduces: eval/results/ablation.md and the shipped `confidence` and `threshold` in
qa/settings.py. Takes: about 2 minutes a variant whose evidence is not cached on 2 cores.
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
    SQUAD2,
    Question,
    open_clapnq,
    open_seeds,
    open_squad,
    read_clapnq,
    read_question_set,
    squad_questions,
    with_settings,
)

from qa import Engine
from qa.answering.answer import choose, cite, confidence_of
from qa.eval.metrics import contains_any
from qa.eval.splits import VALIDATION_ARTICLES
from qa.settings import ConfidenceWeights, Settings
from qa.text import english

# what the confidence is fitted on, and how much each set weighs
FIT_SETS = {"clapnq": 1.0, "squad-fit": 1.0, "squad2-fit": 1.0}
# the fit articles bench/train_sentence_scorer.py held out as its dev: the scorer's cosine on
# the others is that of questions it was trained on
SCORER_UNTRAINED = ("Rhine", "Islamism", "United_Methodist_Church")
# the share of answerable questions the threshold must answer, on validation and on ClapNQ
MIN_ANSWERED = {"clapnq": 0.90, "squad-val": 0.95, "squad2-val": 0.95}
SETS = ("squad-fit", "squad2-fit", "clapnq", "squad-val", "squad2-val", "seed", "chats", "fresh")


def answer_settings(**changes):
    return lambda s: replace(s, answer=replace(s.answer, **changes))


def with_embedder(s: Settings) -> Settings:
    """The embedder's cosine computed (it is only when its weight is not 0)."""
    a = s.answer
    return replace(s, answer=replace(a, confidence=replace(a.confidence, embedder_cosine=1.0)))


def with_all(s: Settings) -> Settings:
    return answer_settings(window_cosine=True, definition_rule=True)(with_embedder(s))


# features the confidence leaves out (the retrieval embedder's cosine: validation, 2026-12-06)
LEFT_OUT = ("embedder_cosine",)

# name -> (what the rule is, settings without it (or with it, "with ..."), confidence features
# left out)
VARIANTS = {
    "shipped": ("as shipped: every rule, `AnswerSettings`' confidence and threshold",
                lambda s: s, LEFT_OUT),
    "all rules": ("every rule, the confidence refitted", lambda s: s, LEFT_OUT),
    "pieces": ("a piece the sentence splitter cut off read with the sentence before it",
               answer_settings(join_pieces=False), LEFT_OUT),
    "kind": ("a quantity or a time where the question asks one (`asked`, and quoted first)",
             answer_settings(kind_rule=False), LEFT_OUT),
    "kind first": ("the sentence saying the quantity or time asked quoted first",
                   answer_settings(kind_window=1), LEFT_OUT),
    "focus": ("title-lacking terms (`focus`)", lambda s: s, (*LEFT_OUT, "focus")),
    "gap": ("lead over the median sentence (`gap`)", lambda s: s, (*LEFT_OUT, "gap")),
    "heading": ("heading penalty", answer_settings(heading_penalty=0.0), LEFT_OUT),
    "overview": ("overview questions answered by the document's lead",
                 answer_settings(overview_rule=False), LEFT_OUT),
    "scorer": ("the learned sentence scorer (not a rule: the reader before it)",
               answer_settings(sentence_scorer=False), LEFT_OUT),
    "pronouns": ("pronoun resolution (chats only)",
                 lambda s: replace(s, chat=replace(s.chat, resolve_pronouns=False)), LEFT_OUT),
    # rules the validation ablation let go whose code stays, each put back alone, and together
    # (the count, role, framing-word and fragment rules were deleted after it: the rows of
    # eval/results/ablation.md that put them back ran at commit 7984bac)
    "with embedder": ("the retrieval embedder's cosine (`embedder_cosine`), put back",
                      with_embedder, ()),
    "with lead-in": ("sentence read after the one before (lead-in), put back",
                     answer_settings(window_cosine=True), LEFT_OUT),
    "with definition": ("definition questions answered by the introducing sentence, put back",
                        answer_settings(definition_rule=True), LEFT_OUT),
    "with all": ("the lead-in, definition rule and embedder's cosine put back", with_all, ()),
}
CHATS_ONLY = {"pronouns"}
FEATURE_ONLY = {"focus", "gap"}  # the evidence of all rules, a feature left out


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
    """Whether the confidence decides the question: it has sentences and no rule decided."""
    return row["some"] and row.get("decided") is None


def fit_weights(fit: dict[str, list[dict]], dropped: tuple[str, ...]) -> ConfidenceWeights:
    """A logistic regression over `fit` (set -> rows): the rows no rule decided, each set
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


def chosen_threshold(sets: dict[str, list[dict]], weights: ConfidenceWeights) -> float:
    """The threshold answering MIN_ANSWERED of each of its sets' answerable questions that
    declines the most of their unanswerable ones (the mean share); the highest of equals."""
    conf = {name: confidences(sets[name], weights) for name in MIN_ANSWERED}
    best, best_key = 0.05, -1.0
    for t in np.round(np.arange(0.05, 0.95, 0.005), 3):
        m = {name: measure(sets[name], conf[name], t) for name in MIN_ANSWERED}
        if any(m[name]["answered"] < share for name, share in MIN_ANSWERED.items()):
            continue
        key = float(np.mean([v["declined"] for v in m.values()]))
        if key >= best_key:
            best, best_key = float(t), key
    return best


def held_out_declines(rows: list[dict], answered: float = 0.90, folds: int = 5,
                      shuffles: int = 3) -> float:
    """The most unanswerable questions a set's own confidence declines while answering
    `answered` of its answerable ones, each question's confidence fitted on the other folds
    (averaged over shuffles): what the features can tell apart within one set."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    x = np.array([r["features"] for r in rows])
    y = np.array([r["answerable"] for r in rows])
    scored = np.array([decides(r) for r in rows])
    held = np.zeros(len(y))
    for shuffle in range(shuffles):
        for train, test in StratifiedKFold(folds, shuffle=True,
                                           random_state=shuffle).split(x, y):
            train = train[scored[train]]
            model = LogisticRegression(C=10.0, max_iter=1000).fit(x[train], y[train])
            held[test] += model.predict_proba(x[test])[:, 1] / shuffles
    held = np.array([h if decides(r) else float(bool(r["some"] and r["decided"]))
                     for r, h in zip(rows, held)])
    best = 0.0
    for t in np.unique(held):
        out = held < t
        if (~out & y).sum() >= answered * y.sum():
            best = max(best, float((out & ~y).sum() / max((~y).sum(), 1)))
    return best


def evidence_version() -> str:
    """The digest of qa's Python sources and settings: evidence cached in --work is named by
    it, so a change to them never reads evidence an older reader left."""
    import hashlib

    import qa

    digest = hashlib.sha256()
    for path in sorted(Path(qa.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def run(only: list[str], work: Path, seed_index: Path) -> dict[str, dict]:
    opened: dict[str, tuple[Engine, list[Question]]] = {}

    def engine_of(name: str) -> tuple[Engine, list[Question]]:
        if name not in opened:
            opened[name] = {
                "squad-fit": lambda: (open_squad("fit"),
                                      squad_questions("fit", SCORER_UNTRAINED)),
                "squad2-fit": lambda: (open_squad("fit", SQUAD2),
                                       squad_questions("fit", SCORER_UNTRAINED, SQUAD2)),
                "squad-val": lambda: (open_squad("validation"),
                                      squad_questions("validation", VALIDATION_ARTICLES)),
                "squad2-val": lambda: (open_squad("validation", SQUAD2),
                                       squad_questions("validation", VALIDATION_ARTICLES, SQUAD2)),
                "clapnq": lambda: (open_clapnq(CLAPNQ_INDEX), read_clapnq()),
                "seed": lambda: (open_seeds(seed_index),
                                 read_question_set(ROOT / "eval" / "seed.jsonl")),
                "chats": lambda: (open_seeds(seed_index),
                                  read_question_set(ROOT / "eval" / "seed_chats.jsonl")),
                "fresh": lambda: (open_seeds(seed_index),
                                  read_question_set(ROOT / "eval" / "fresh.jsonl")),
            }[name]()
        return opened[name]

    version = evidence_version()
    results = {}
    for variant in only:
        dropped = VARIANTS[variant][2]
        sets = {}
        for name in SETS:
            source = variant if name == "chats" or variant not in CHATS_ONLY else "all rules"
            if source in FEATURE_ONLY or source == "shipped":  # the evidence of all rules
                source = "all rules"
            cache = work / f"{source}.{name}.{version}.json"
            if not cache.exists():
                engine, questions = engine_of(name)
                rows = evidence_rows(engine, questions, VARIANTS[source][1](Settings()))
                cache.write_text(json.dumps(rows))
            sets[name] = json.loads(cache.read_text())
        if variant == "shipped":
            weights, threshold = Settings().answer.confidence, Settings().answer.threshold
        else:
            weights = fit_weights(sets, dropped)
            threshold = chosen_threshold(sets, weights)
        results[variant] = {"threshold": threshold, "weights": weights, "sets": {
            name: measure(rows, confidences(rows, weights), threshold)
            for name, rows in sets.items()}}
        if variant == "all rules":
            results[variant]["clapnq_cv"] = held_out_declines(sets["clapnq"])
            print(f"ClapNQ alone, 5-fold cross-validated: declines "
                  f"{results[variant]['clapnq_cv']:.3f} at 90% answered", flush=True)
        print(variant, f"{threshold:.3f}", {n: {k: round(v, 3) for k, v in m.items()}
                                            for n, m in results[variant]["sets"].items()},
              flush=True)
    return results


def table(results: dict[str, dict]) -> str:
    head = ("| without | rule | SQuAD validation: right / answered / declined, AUC, quotes | "
            "SQuAD 2.0 validation: the same | SQuAD fit (3 articles): the same | SQuAD 2.0 fit "
            "(Islamism): the same | ClapNQ (fit): answered / declined | seed: right, declined | "
            "chats: right | fresh: right, declined | threshold |\n"
            "|---|---|---|---|---|---|---|---|---|---|---:|")
    lines = [head]
    for variant, r in results.items():
        m = r["sets"]

        def rad(s: dict) -> str:
            return (f"{s['right']:.3f} / {s['answered']:.3f} / {s['declined']:.3f}, "
                    f"{s['auc']:.3f}, {s['quotes']:.3f}")

        seed, chats, fresh = m["seed"], m["chats"], m["fresh"]
        lines.append(
            f"| {'-' if variant in ('all rules', 'shipped') else variant} | "
            f"{VARIANTS[variant][0]} | "
            f"{rad(m['squad-val'])} | {rad(m['squad2-val'])} | {rad(m['squad-fit'])} | "
            f"{rad(m['squad2-fit'])} | {m['clapnq']['answered']:.3f} / "
            f"{m['clapnq']['declined']:.3f} | {seed['n_right']}/{seed['n']}, "
            f"{seed['n_declined']}/{seed['n_un']} | {chats['n_right'] + chats['n_declined']}/"
            f"{chats['n'] + chats['n_un']} | {fresh['n_right']}/{fresh['n']}, "
            f"{fresh['n_declined']}/{fresh['n_un']} | {r['threshold']:.3f} |")
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
