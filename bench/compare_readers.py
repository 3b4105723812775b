"""The answer step as shipped against a baseline reader, in one run: `qa eval eval/squad` (SQuAD
fit and validation) and `qa eval` of the seed sets, once with each.

"shipped": `AnswerSettings()` as it is. "before": the sentence scorer's layers given by
--before-layers (the previous release's file, e.g. `git show REV:qa/models/sentence_scorer/
top_layers.safetensors > FILE`) with the confidence and threshold fitted for them (BEFORE
below); without --before-layers, the reader before the learned scorer (the retrieval
embedder's cosine, PRE_SCORER). Both read the same indexes (answer settings do not change what
is indexed).

    QA_CACHE=... PYTHONPATH=. python bench/compare_readers.py [--before-layers FILE]
        [--out eval/results]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from qa import Engine
from qa.eval.evaluate import evaluate_questions, read_questions
from qa.eval.heldout import evaluate_parts
from qa.eval.report import to_text, write_outputs
from qa.home import seeds_dir
from qa.settings import AnswerSettings, ConfidenceWeights, Settings

ROOT = Path(__file__).resolve().parent.parent
PRE_SCORER = AnswerSettings(
    sentence_scorer=False,
    confidence=ConfidenceWeights(bias=-7.14, cosine=8.57, gap=4.09, focus=1.94, asked=1.92,
                                 length=-2.16, embedder_cosine=0.0),
    threshold=0.265,
)
# the confidence and threshold shipped with the scorer layers of commit 6634501
BEFORE = AnswerSettings(
    confidence=ConfidenceWeights(bias=-6.49, cosine=3.82, gap=8.66, focus=1.69, asked=2.20,
                                 length=-3.12, embedder_cosine=3.79),
    threshold=0.305,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the shipped reader's tables here too")
    parser.add_argument("--before-layers", type=Path,
                        help="the baseline's sentence scorer layers (safetensors)")
    args = parser.parse_args()
    before = (replace(BEFORE, scorer_layers=str(args.before_layers.resolve()))
              if args.before_layers else PRE_SCORER)
    readers = {"before": Settings(answer=before), "shipped": Settings()}
    os.chdir(ROOT)  # the reports name their question sets as `qa eval` in the checkout does
    seed_index = Path(tempfile.mkdtemp(prefix="seed-index-"))
    for name, settings in readers.items():
        print(f"\n===== {name} =====")
        squad = evaluate_parts(Path("eval/squad"), settings=settings)
        print(to_text(squad))
        reports = {"eval/squad": (squad, "qa eval eval/squad")}
        for set_name in ("seed.jsonl", "seed_chats.jsonl"):
            path = Path("eval", set_name)
            engine = Engine.open(sources=[seeds_dir()], index_dir=seed_index, settings=settings)
            report = evaluate_questions(engine, read_questions(path), path)
            print(to_text(report))
            reports[f"eval/{set_name}"] = (report, f"qa eval eval/{set_name}")
        if args.out and name == "shipped":
            for report, command in reports.values():
                write_outputs(report, args.out, command)


if __name__ == "__main__":
    main()
