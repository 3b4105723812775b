"""SQuAD (v1.1 JSON) -> held-out evaluation parts: a fit part and a validation part, split by
article, each one corpus with answerable and on-topic unanswerable questions.

- Split: the articles sorted by the SHA-256 of their title; every third from the first
  (positions 0, 3, 6, ...) is validation, the others fit. Never by question.
- Unanswerable questions: in each article, every third paragraph (positions 2, 5, 8, ...) is
  held out of the corpus. A question on a kept paragraph is answerable; a question on a held-out
  one is unanswerable (only the other paragraphs of its article, same topic, remain), unless one
  of its answer phrases is in the part's corpus all the same (then it may be answerable from
  there, and it is left out).
- Caps: per part, the first N answerable and the first N unanswerable questions by the SHA-256
  of their SQuAD id (600 each by default).

Each part is a BEIR folder (`corpus.jsonl`: one record a paragraph, `_id` "<article>-p<n>",
title the article's; `queries.jsonl`: `_id`, `text`, `answers`, `answerable`, `article`, `gold`
= the paragraph id the question was written on; `qrels.tsv`: answerable query -> gold paragraph),
and `parts.json` beside them names the parts and their roles (qa/eval/heldout.py reads it).

    python -m qa.eval.squad ../shared/train/squad-dev-half/train-half.json eval/squad
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from qa.errors import QAError

FIT, VALIDATION = "fit", "validation"
ROLES = {FIT: "fit", VALIDATION: "validation (held out)"}
CAP = 600  # questions of each kind per part: both parts are answered in a few minutes
LICENSE = "CC BY-SA 4.0 (https://rajpurkar.github.io/SQuAD-explorer/)"


class BadSquad(QAError):
    """A SQuAD file that cannot be read."""


@dataclass
class Paragraph:
    id: str
    article: str
    context: str
    qas: list[dict]
    held_out: bool


@dataclass
class Part:
    name: str
    articles: list[str] = field(default_factory=list)
    corpus: list[dict] = field(default_factory=list)
    queries: list[dict] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_articles(titles: list[str]) -> dict[str, str]:
    """Article title -> FIT or VALIDATION: by SHA-256 order, every third from the first is
    validation (a third, rounded up)."""
    ordered = sorted(set(titles), key=lambda t: (_sha(t), t))
    return {t: VALIDATION if i % 3 == 0 else FIT for i, t in enumerate(ordered)}


def is_held_out(n: int) -> bool:
    """Every third paragraph of an article, from the third, is kept out of the corpus."""
    return n % 3 == 2


def read_squad(path: str | Path) -> list[dict]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadSquad(f"{path}: cannot be read ({exc.__class__.__name__})") from None
    try:
        data = json.loads(text)["data"]
        for article in data:
            str(article["title"])
            for p in article["paragraphs"]:
                str(p["context"])
                for q in p["qas"]:
                    str(q["id"]), str(q["question"]), list(q["answers"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BadSquad(f"{path}: not a SQuAD v1.1 file ({exc.__class__.__name__})") from None
    return data


def paragraphs_of(article: dict) -> list[Paragraph]:
    title = str(article["title"])
    return [
        Paragraph(f"{title}-p{n}", title, p["context"], p["qas"], is_held_out(n))
        for n, p in enumerate(article["paragraphs"])
    ]


def _norm(text: str) -> str:
    """As qa.eval.metrics.contains_any compares: case and runs of white space ignored."""
    return " ".join(text.split()).casefold()


def answer_phrases(qa: dict) -> list[str]:
    phrases = [a["text"].strip() for a in qa["answers"] if str(a.get("text", "")).strip()]
    return list(dict.fromkeys(phrases))  # SQuAD repeats the same span for each annotator


def build_part(name: str, articles: list[dict], cap: int = CAP) -> Part:
    part = Part(name, [str(a["title"]) for a in articles])
    paragraphs = [p for a in articles for p in paragraphs_of(a)]
    kept = [p for p in paragraphs if not p.held_out]
    part.corpus = [
        {"_id": p.id, "title": p.article.replace("_", " "), "text": p.context} for p in kept
    ]
    haystack = "\n".join(_norm(p.context) for p in kept)
    answerable, unanswerable, in_corpus = [], [], 0
    for p in paragraphs:
        for qa in p.qas:
            record = {
                "_id": str(qa["id"]),
                "text": str(qa["question"]).strip(),
                "answers": answer_phrases(qa),
                "answerable": not p.held_out,
                "article": p.article,
                "gold": p.id,
            }
            if not record["answers"]:
                continue
            if not p.held_out:
                answerable.append(record)
            elif any(_norm(a) in haystack for a in record["answers"]):
                in_corpus += 1  # its answer is in a kept paragraph: it may be answerable there
            else:
                unanswerable.append(record)
    chosen = {
        r["_id"]
        for group in (answerable, unanswerable)
        for r in sorted(group, key=lambda r: _sha(r["_id"]))[:cap]
    }
    part.queries = [r for r in answerable + unanswerable if r["_id"] in chosen]
    part.queries.sort(key=lambda r: (r["article"], r["gold"], not r["answerable"]))
    part.stats = {
        "folder": name,
        "role": ROLES[name],
        "articles": part.articles,
        "paragraphs": len(kept),
        "held_out_paragraphs": len(paragraphs) - len(kept),
        "answerable": {"on_kept_paragraphs": len(answerable),
                       "sampled": sum(r["answerable"] for r in part.queries)},
        "unanswerable": {"on_held_out_paragraphs": len(unanswerable) + in_corpus,
                         "left_out_answer_in_corpus": in_corpus,
                         "sampled": sum(not r["answerable"] for r in part.queries)},
    }
    return part


def build_parts(data: list[dict], cap: int = CAP) -> list[Part]:
    split = split_articles([str(a["title"]) for a in data])
    return [
        build_part(name, [a for a in data if split[str(a["title"])] == name], cap)
        for name in (FIT, VALIDATION)
    ]


def _jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_folders(parts: list[Part], out: Path) -> None:
    """Each part's BEIR folder: corpus.jsonl, queries.jsonl, qrels.tsv (answerable -> gold)."""
    for part in parts:
        folder = out / part.name
        folder.mkdir(parents=True, exist_ok=True)
        _jsonl(folder / "corpus.jsonl", part.corpus)
        _jsonl(folder / "queries.jsonl", part.queries)
        with open(folder / "qrels.tsv", "w", encoding="utf-8") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for r in part.queries:
                if r["answerable"]:
                    fh.write(f"{r['_id']}\t{r['gold']}\t1\n")


def write_parts(parts: list[Part], out: Path, source: str, cap: int) -> None:
    """Each part's BEIR folder, and `parts.json` naming the parts, their roles and counts."""
    write_folders(parts, out)
    manifest = {
        "source": source,
        "license": LICENSE,
        "split": "articles by SHA-256 of the title; every third from the first is validation",
        "held_out": "every third paragraph of each article (from the third) is not in the "
        "corpus; its questions are unanswerable unless an answer phrase is in the corpus",
        "cap": f"the first {cap} answerable and {cap} unanswerable questions per part by "
        "SHA-256 of the question id",
        "parts": [p.stats for p in parts],
    }
    (out / "parts.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qa.eval.squad", description=__doc__.split("\n")[0]
    )
    parser.add_argument("source", help="a SQuAD v1.1 JSON file")
    parser.add_argument("out", help="folder for parts.json, fit/ and validation/")
    parser.add_argument("--cap", type=int, default=CAP, help=f"questions of each kind per part "
                        f"(default: {CAP})")
    args = parser.parse_args(argv)
    try:
        data = read_squad(args.source)
    except BadSquad as exc:
        print(f"qa.eval.squad: {exc}", file=sys.stderr)
        return 1
    parts = build_parts(data, args.cap)
    write_parts(parts, Path(args.out), Path(args.source).name, args.cap)
    for p in parts:
        s = p.stats
        print(f"{p.name}: {len(p.articles)} articles, {s['paragraphs']} paragraphs "
              f"({s['held_out_paragraphs']} held out), {s['answerable']['sampled']} answerable "
              f"+ {s['unanswerable']['sampled']} unanswerable questions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
