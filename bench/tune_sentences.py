"""Choose the sentence-score weights (AnswerSettings.w_*) by measurement.

Every sentence of the scored passages gets all its evidence (cosine included) once; then, for
a grid of weights, the sentences are ranked again and quoted as the answer step quotes them
(`qa.answer.choose` and `cite`, never declining), and the quotes are checked against the answers
(seed set: an answer phrase in them; ClapNQ: a quote from the gold passage mostly made of
answer words). Prints the share of answers right on both sets for the current settings and the
best grid points, ranked by their mean. Every sentence has its cosine here, while the answer
step embeds only the best by the cheap signals, so a grid point's numbers are not its answers':
check a point with `Engine.ask` before adopting it.
`--window-discounts` instead compares values of AnswerSettings.window_discount (how much a
sentence read after the one before it gives up) by the answers' quotes (never declined) and
their length in words; it changes the cosines and the quotes, so every value answers every
question again.

`--squad` adds the answerable questions of SQuAD's fit part (eval/squad/fit; never its
validation part; `--squad-articles` only some of its articles) and `--grid` names the grid
("quote_margin=0.05,0.1;neighbour_margin=0.15").

    python bench/tune_sentences.py [--seed-set eval/seed.jsonl] [--seed-index DIR]
                                   [--window-discounts 0,0.05,0.08] [--squad] [--grid G]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from dataclasses import replace
from pathlib import Path

from answer_data import (
    ROOT,
    Evidence,
    Question,
    gather,
    open_clapnq,
    open_seeds,
    read_clapnq,
    read_question_set,
)

from qa import Engine
from qa.answer import choose, cite
from qa.read import sentence_score
from qa.schema import Answer
from qa.settings import AnswerSettings

GRID = {
    "w_lexical": (0.0, 0.1, 0.2, 0.3, 0.4),
    "w_context": (0.0, 0.1, 0.2),
    "w_passage": (0.0, 0.1, 0.2, 0.3),
    "heading_penalty": (0.0, 0.1, 0.2),
}


def answers_right(evidence: list[Evidence], settings: AnswerSettings) -> float:
    """Share of questions whose quotes, with the sentences ranked by `settings`, are right."""
    hits = 0
    for ev in evidence:
        if not ev.candidates:
            continue
        for c in ev.candidates:
            c.score = sentence_score(c, settings)
        ranked = sorted(ev.candidates, key=lambda c: -c.score)
        answer = Answer(ev.question.question, ev.question.question, answered=True, text="",
                        citations=cite(choose(ranked, settings)))
        hits += ev.question.answer_right(answer)
    return hits / len(evidence)


def use_answer_settings(engine: Engine, settings: AnswerSettings) -> None:
    """Make `engine` read and answer with `settings`: its reader scores with them, and the
    answer (of the question and of an earlier turn answered again) is composed with them."""
    engine.settings = replace(engine.settings, answer=settings)
    engine.snapshot().reader.settings = settings


def window_sweep(engines: dict[str, Engine], questions: dict[str, list[Question]],
                 discounts: list[float]) -> None:
    """The answers themselves (never declined), since a sentence read after the one before it
    can also bring that one into the quote."""
    base = AnswerSettings()
    for discount in discounts:
        scores, words = {}, {}
        for name, engine in engines.items():
            use_answer_settings(engine, replace(base, window_discount=discount, threshold=0.0))
            answers = [engine.ask(q.question, history=q.history) for q in questions[name]]
            scores[name] = sum(q.answer_right(a) for q, a in zip(questions[name], answers))
            scores[name] /= len(answers)
            words[name] = sum(len(" ".join(c.quote for c in a.citations).split())
                              for a in answers) / len(answers)
        print(f"window_discount {discount:.3f}: answers right " + ", ".join(
            f"{n} {v:.3f} ({words[n]:.0f} words)" for n, v in scores.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-set", default=ROOT / "eval" / "seed.jsonl", type=Path)
    parser.add_argument("--seed-index", type=Path, help="index of seeds/ (default: a temp dir)")
    parser.add_argument("--window-discounts", help="comma-separated values to compare")
    parser.add_argument("--squad", action="store_true", help="add SQuAD's fit part")
    parser.add_argument("--squad-articles", help="comma-separated: only these SQuAD fit "
                        "articles' questions (with the sentence scorer: those it was not "
                        "trained on, calibrate_abstention.SCORER_UNTRAINED)")
    parser.add_argument("--grid", help='"name=v1,v2;name=v1,...": the grid (default: GRID)')
    args = parser.parse_args()
    grid = GRID if not args.grid else {
        name: tuple(float(v) for v in values.split(","))
        for name, values in (part.split("=") for part in args.grid.split(";"))}
    seed_index = args.seed_index or Path(tempfile.mkdtemp(prefix="seed-index-"))

    seed = [q for q in read_question_set(args.seed_set) if q.answerable]
    clap = [q for q in read_clapnq() if q.answerable]
    if args.window_discounts:
        window_sweep({"seed": open_seeds(seed_index), "clapnq": open_clapnq()},
                     {"seed": seed, "clapnq": clap},
                     [float(v) for v in args.window_discounts.split(",")])
        return
    engines = {"seed": open_seeds(seed_index), "clapnq": open_clapnq()}
    sets = {
        "seed": gather(engines["seed"], seed, embed_all=True),
        "clapnq": gather(engines["clapnq"], clap, embed_all=True),
    }
    if args.squad:
        from ablate import open_squad, squad_questions

        articles = args.squad_articles.split(",") if args.squad_articles else None
        sets["squad-fit"] = gather(open_squad("fit"),
                                   [q for q in squad_questions("fit", articles) if q.answerable],
                                   embed_all=True)
    base = AnswerSettings()

    def right(settings: AnswerSettings) -> dict[str, float]:
        return {name: answers_right(ev, settings) for name, ev in sets.items()}

    current = right(base)
    print("current settings: " + ", ".join(f"{n} {v:.3f}" for n, v in current.items()))
    rows = []
    for values in itertools.product(*grid.values()):
        scores = right(replace(base, **dict(zip(grid, values))))
        rows.append((sum(scores.values()) / len(scores), scores, dict(zip(grid, values))))
    rows.sort(key=lambda r: -r[0])
    print(f"w_cosine fixed at {base.w_cosine}; best of {len(rows)} grid points (answers right):")
    for mean, scores, values in rows[:15]:
        print(f"  mean {mean:.3f}  " + "  ".join(f"{n} {v:.3f}" for n, v in scores.items())
              + "  " + " ".join(f"{k}={v}" for k, v in values.items()))


if __name__ == "__main__":
    main()
