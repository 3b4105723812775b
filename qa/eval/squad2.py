"""SQuAD 2.0 (v2.0 JSON) -> evaluation parts for deciding answerability: fit, validation and
test, split by article as `qa/eval/splits.py` says, each one corpus with SQuAD 2.0's own
answerable and crowd-written unanswerable questions.

- Corpus: every paragraph of the part's articles; nothing is held out. An unanswerable question
  (`is_impossible`) was written against one paragraph to look answerable from it, and that
  paragraph is in the corpus: the near miss is the point.
- Questions: all of them, no cap. Answerable ones carry their distinct answer phrases; the
  unanswerable ones none, and their `plausible_answers` (the phrase a careless reader would
  quote) beside them.
- Test: touched once, at the end of a piece of work. Its entry in `parts.json` says
  `"touch": "once"`, so `qa eval <folder>` runs fit and validation only and
  `qa eval <folder>/test` runs the test part when named.

Each part is a BEIR folder as `qa/eval/squad.py` writes them (`corpus.jsonl`: one record a
paragraph, `_id` "<article>-p<n>"; `queries.jsonl`: `_id`, `text`, `answers`, `answerable`,
`article`, `gold` = the paragraph the question was written against, and `plausible_answers`
for the unanswerable; `qrels.tsv`: answerable question -> gold paragraph), with `parts.json`
beside them (qa/eval/heldout.py reads it).

    python -m qa.eval.squad2 ../shared/train/squad2-dev-even/train-half.json eval/squad2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qa.eval.splits import FIT, TEST, VALIDATION, article_role
from qa.eval.squad import (
    LICENSE,
    BadSquad,
    Part,
    answer_phrases,
    paragraphs_of,
    read_squad,
    write_folders,
)

ROLES = {FIT: "fit", VALIDATION: "validation (held out)", TEST: "test (touch once)"}
TOUCH_ONCE = {TEST}  # parts `qa eval <folder>` skips; they run only when named


def read_squad2(path: str | Path) -> list[dict]:
    """The articles of a SQuAD v2.0 file: v1.1's layout, each question with `is_impossible`."""
    data = read_squad(path)
    try:
        for article in data:
            for p in article["paragraphs"]:
                for q in p["qas"]:
                    bool(q["is_impossible"]), list(q.get("plausible_answers", []))
    except (KeyError, TypeError) as exc:
        raise BadSquad(f"{path}: not a SQuAD v2.0 file ({exc.__class__.__name__})") from None
    return data


def query_record(qa: dict, article: str, gold: str) -> dict:
    """One line of `queries.jsonl`: SQuAD 2.0's question, answerable or not."""
    impossible = bool(qa["is_impossible"])
    record = {
        "_id": str(qa["id"]),
        "text": str(qa["question"]).strip(),
        "answers": [] if impossible else answer_phrases(qa),
        "answerable": not impossible,
        "article": article,
        "gold": gold,
    }
    if impossible:
        record["plausible_answers"] = answer_phrases(
            {"answers": qa.get("plausible_answers") or []}
        )
    return record


def build_part(name: str, articles: list[dict]) -> Part:
    """Every paragraph of the articles as the corpus, every question of theirs asked of it."""
    part = Part(name, [str(a["title"]) for a in articles])
    paragraphs = [p for a in articles for p in paragraphs_of(a)]
    part.corpus = [
        {"_id": p.id, "title": p.article.replace("_", " "), "text": p.context}
        for p in paragraphs
    ]
    no_answer = 0
    for p in paragraphs:
        for qa in p.qas:
            record = query_record(qa, p.article, p.id)
            if record["answerable"] and not record["answers"]:
                no_answer += 1  # an answerable question without an answer phrase: not judgeable
                continue
            part.queries.append(record)
    part.queries.sort(key=lambda r: (r["article"], r["gold"], not r["answerable"]))
    unanswerable = [r for r in part.queries if not r["answerable"]]
    part.stats = {
        "folder": name,
        "role": ROLES[name],
        **({"touch": "once"} if name in TOUCH_ONCE else {}),
        "articles": part.articles,
        "paragraphs": len(paragraphs),
        "answerable": len(part.queries) - len(unanswerable),
        "unanswerable": len(unanswerable),
        "unanswerable_with_plausible_answers": sum(
            bool(r["plausible_answers"]) for r in unanswerable
        ),
        "left_out_answerable_without_answer": no_answer,
    }
    return part


def build_parts(data: list[dict]) -> list[Part]:
    """FIT, VALIDATION and TEST parts by `article_role`; a part with no article is left out."""
    roles = {str(a["title"]): article_role(str(a["title"])) for a in data}
    parts = []
    for name in (FIT, VALIDATION, TEST):
        articles = [a for a in data if roles[str(a["title"])] == name]
        if articles:
            parts.append(build_part(name, articles))
    return parts


def write_parts(parts: list[Part], out: Path, source: str) -> None:
    """Each part's BEIR folder, and `parts.json` naming the parts, their roles and counts."""
    write_folders(parts, out)
    manifest = {
        "source": source,
        "license": LICENSE,
        "split": "by article, as qa/eval/splits.py says (article_role)",
        "corpus": "every paragraph of the part's articles; none held out",
        "questions": "all of them, no cap: SQuAD 2.0's answerable and is_impossible ones",
        "touch_once": "a part with \"touch\": \"once\" runs only when named: "
        "qa eval <folder>/<part>",
        "parts": [p.stats for p in parts],
    }
    (out / "parts.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qa.eval.squad2", description=__doc__.split("\n")[0]
    )
    parser.add_argument("source", help="a SQuAD v2.0 JSON file")
    parser.add_argument("out", help="folder for parts.json, fit/, validation/ and test/")
    args = parser.parse_args(argv)
    try:
        parts = build_parts(read_squad2(args.source))
    except (BadSquad, KeyError) as exc:
        print(f"qa.eval.squad2: {exc}", file=sys.stderr)
        return 1
    write_parts(parts, Path(args.out), Path(args.source).name)
    for p in parts:
        s = p.stats
        print(f"{p.name}: {len(p.articles)} articles, {s['paragraphs']} paragraphs, "
              f"{s['answerable']} answerable + {s['unanswerable']} unanswerable questions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
