"""Held-out SQuAD parts (qa/eval/squad.py, qa/eval/heldout.py): the split is by article and
fixed, every unanswerable question's gold paragraph is out of its corpus while the rest of its
article is in, and `qa eval` on a small slice reports both parts with their roles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT
from test_evaluate import run_qa

from qa.eval.metrics import contains_any
from qa.eval.squad import (
    FIT,
    ROLES,
    VALIDATION,
    build_parts,
    read_squad,
    split_articles,
    write_parts,
)

SQUAD = ROOT / "eval" / "squad"
SOURCE = next(
    (
        base / "shared" / "train" / "squad-dev-half" / "train-half.json"
        for base in (ROOT.parent, ROOT.parent.parent)
        if (base / "shared" / "train" / "squad-dev-half" / "train-half.json").is_file()
    ),
    None,
)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _part(name: str) -> tuple[list[dict], list[dict], dict[str, str]]:
    folder = SQUAD / name
    qrels = {}
    for line in (folder / "qrels.tsv").read_text().splitlines()[1:]:
        qid, doc, _ = line.split("\t")
        qrels[qid] = doc
    return _jsonl(folder / "corpus.jsonl"), _jsonl(folder / "queries.jsonl"), qrels


def test_split_is_by_article_and_fixed():
    manifest = json.loads((SQUAD / "parts.json").read_text())
    listed = {p["folder"]: set(p["articles"]) for p in manifest["parts"]}
    titles = sorted(listed[FIT] | listed[VALIDATION])
    split = split_articles(titles)
    assert split == split_articles(list(reversed(titles)))  # the order read does not matter
    assert {t for t, part in split.items() if part == VALIDATION} == listed[VALIDATION]
    assert not listed[FIT] & listed[VALIDATION]
    assert len(titles) == 23 and len(listed[VALIDATION]) == 8  # a third, rounded up
    seen: dict[str, set[str]] = {}
    for name in (FIT, VALIDATION):
        corpus, queries, _ = _part(name)
        seen[name] = {d["_id"].rsplit("-p", 1)[0] for d in corpus} | {q["article"] for q in queries}
        assert seen[name] == listed[name]
    assert not seen[FIT] & seen[VALIDATION]  # no article in both parts, corpus or questions


@pytest.mark.parametrize("name", [FIT, VALIDATION])
def test_gold_paragraphs_in_and_out_of_the_corpus(name):
    corpus, queries, qrels = _part(name)
    ids = {d["_id"]: d["text"] for d in corpus}
    text = "\n".join(d["text"] for d in corpus)
    answerable = [q for q in queries if q["answerable"]]
    unanswerable = [q for q in queries if not q["answerable"]]
    assert len(answerable) == 600 and 300 <= len(unanswerable) <= 600  # the caps
    for q in answerable:
        assert q["gold"] in ids and qrels[q["_id"]] == q["gold"]
        assert contains_any(ids[q["gold"]], q["answers"])  # its answer is in its paragraph
    for q in unanswerable:
        assert q["gold"] not in ids and q["_id"] not in qrels
        assert int(q["gold"].rsplit("-p", 1)[1]) % 3 == 2  # every third paragraph is held out
        same_article = [i for i in ids if i.rsplit("-p", 1)[0] == q["article"]]
        assert len(same_article) >= 10  # the rest of its article is there
    phrases = [a for q in unanswerable for a in q["answers"]]
    assert not contains_any(text, phrases)  # no unanswerable's answer phrase in the corpus


@pytest.mark.skipif(SOURCE is None, reason="the SQuAD source is not beside the checkout")
def test_committed_parts_are_what_the_builder_writes(tmp_path):
    write_parts(build_parts(read_squad(SOURCE)), tmp_path, SOURCE.name, 600)
    for path in sorted(SQUAD.rglob("*")):
        if path.is_file() and path.name != "README.md":
            rebuilt = tmp_path / path.relative_to(SQUAD)
            assert rebuilt.read_bytes() == path.read_bytes(), path


def _tiny_squad(articles: int = 3, paragraphs: int = 6) -> list[dict]:
    """A slice of the committed validation part as a SQuAD file: a few articles, each its first
    paragraphs with their answerable questions."""
    corpus, queries, _ = _part(VALIDATION)
    by_para: dict[str, list[dict]] = {}
    for q in queries:
        if q["answerable"]:
            by_para.setdefault(q["gold"], []).append(
                {"id": q["_id"], "question": q["text"],
                 "answers": [{"text": a, "answer_start": 0} for a in q["answers"]]}
            )
    data: dict[str, list[dict]] = {}
    for d in corpus:
        title = d["_id"].rsplit("-p", 1)[0]
        if title in data or len(data) < articles:
            qas = by_para.get(d["_id"], [])
            data.setdefault(title, []).append({"context": d["text"], "qas": qas})
    return [{"title": t, "paragraphs": ps[:paragraphs]} for t, ps in data.items()]


def test_builder_holds_out_every_third_paragraph_and_caps_by_hash():
    data = _tiny_squad()
    parts = build_parts(data, cap=3)
    again = build_parts(list(reversed(data)), cap=3)
    assert [p.queries for p in parts] == [p.queries for p in again]
    assert {len(p.articles) for p in parts} == {1, 2}
    for part in parts:
        ids = {d["_id"] for d in part.corpus}
        assert all(int(i.rsplit("-p", 1)[1]) % 3 != 2 for i in ids)
        assert sum(q["answerable"] for q in part.queries) <= 3
        assert sum(not q["answerable"] for q in part.queries) <= 3
        for q in part.queries:
            assert (q["gold"] in ids) == q["answerable"]


def test_qa_eval_reports_both_parts(tmp_path):
    data = _tiny_squad()
    folder = tmp_path / "squad"
    write_parts(build_parts(data, cap=4), folder, "tiny.json", 4)
    done = run_qa("eval", str(folder), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = {line.split("  ")[0]: line.split()[-9:] for line in done.stdout.splitlines()}
    assert set(ROLES.values()) <= set(rows)
    for role in ROLES.values():
        right, answered, declined, precision, *hits = rows[role][:7]
        assert 0.0 <= float(right) <= float(answered) <= 1.0
        assert all(0.0 <= float(h) <= 1.0 for h in hits)
    markdown = (tmp_path / "out" / "squad.md").read_text()
    assert "| fit |" in markdown and "| validation (held out) |" in markdown


def test_baselines_are_refused_on_parts(tmp_path, capsys):
    from qa.faces.cli import main

    write_parts(build_parts(_tiny_squad(), cap=2), tmp_path, "tiny.json", 2)
    assert main(["eval", str(tmp_path), "--baselines"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "one part's folder" in err[0]


SQUAD2 = next(
    (
        base / "shared" / "train" / "squad2-dev-even" / "train-half.json"
        for base in (ROOT.parent, ROOT.parent.parent)
        if (base / "shared" / "train" / "squad2-dev-even" / "train-half.json").is_file()
    ),
    None,
)


def _squad2_slice(paragraphs: int = 2, per_kind: int = 2) -> list[dict]:
    """A slice of the real SQuAD 2.0 file: two fit articles, the validation and the test one,
    each its first paragraphs with their first answerable and unanswerable questions."""
    from qa.eval.squad2 import read_squad2

    keep = ("Huguenot", "Warsaw", "Scottish_Parliament", "Force")
    data = [a for a in read_squad2(SQUAD2) if a["title"] in keep]
    for article in data:
        article["paragraphs"] = article["paragraphs"][:paragraphs]
        for p in article["paragraphs"]:
            p["qas"] = ([q for q in p["qas"] if not q["is_impossible"]][:per_kind]
                        + [q for q in p["qas"] if q["is_impossible"]][:per_kind])
    return data


@pytest.mark.skipif(SQUAD2 is None, reason="the SQuAD 2.0 source is not beside the checkout")
def test_squad2_parts_by_role_with_squad2s_own_unanswerables(tmp_path):
    from qa.eval.splits import article_role
    from qa.eval.squad2 import ROLES as ROLES2
    from qa.eval.squad2 import build_parts as build_parts2
    from qa.eval.squad2 import write_parts as write_parts2

    data = _squad2_slice()
    source = {q["id"]: q for a in data for p in a["paragraphs"] for q in p["qas"]}
    assert any(q["is_impossible"] for q in source.values())
    assert any(not q["is_impossible"] for q in source.values())
    write_parts2(build_parts2(data), tmp_path, SQUAD2.name)
    manifest = json.loads((tmp_path / "parts.json").read_text())
    assert [p["folder"] for p in manifest["parts"]] == ["fit", "validation", "test"]
    assert [p["folder"] for p in manifest["parts"] if p.get("touch") == "once"] == ["test"]
    seen: dict[str, set[str]] = {}
    for entry in manifest["parts"]:
        name = entry["folder"]
        assert entry["role"] == ROLES2[name]
        assert {article_role(t) for t in entry["articles"]} == {name}
        corpus = _jsonl(tmp_path / name / "corpus.jsonl")
        queries = _jsonl(tmp_path / name / "queries.jsonl")
        qrels = (tmp_path / name / "qrels.tsv").read_text().splitlines()[1:]
        seen[name] = {d["_id"].rsplit("-p", 1)[0] for d in corpus} | {q["article"] for q in queries}
        assert seen[name] == set(entry["articles"])
        texts = {d["_id"]: d["text"] for d in corpus}
        assert len(texts) == 2 * len(entry["articles"])  # every paragraph: none held out
        assert entry["unanswerable"] == sum(not q["answerable"] for q in queries) > 0
        for q in queries:
            original = source[q["_id"]]
            assert q["answerable"] == (not original["is_impossible"])
            assert q["gold"] in texts  # the paragraph it was written against is in the corpus
            if q["answerable"]:
                assert q["answers"] and contains_any(texts[q["gold"]], q["answers"])
                assert f"{q['_id']}\t{q['gold']}\t1" in qrels
                assert "plausible_answers" not in q
            else:
                assert q["answers"] == [] and all(q["_id"] not in r for r in qrels)
                plausible = {a["text"].strip() for a in original["plausible_answers"]}
                assert q["plausible_answers"] and set(q["plausible_answers"]) == plausible
        assert len(queries) == sum(
            len(p["qas"]) for a in data if a["title"] in entry["articles"] for p in a["paragraphs"]
        )  # every question kept: no cap
    names = list(seen)
    assert all(not seen[a] & seen[b] for a in names for b in names if a < b)


@pytest.mark.skipif(SQUAD2 is None, reason="the SQuAD 2.0 source is not beside the checkout")
def test_parts_runner_skips_the_test_part_unless_named(tmp_path, monkeypatch, capsys):
    from qa.eval.heldout import evaluate_parts, is_parts_folder
    from qa.eval.squad2 import build_parts as build_parts2
    from qa.eval.squad2 import write_parts as write_parts2

    folder = tmp_path / "squad2"
    write_parts2(build_parts2(_squad2_slice(paragraphs=1, per_kind=1)), folder, SQUAD2.name)
    monkeypatch.chdir(tmp_path)  # the parts' indexes go under .cache/eval here
    assert is_parts_folder(folder) and is_parts_folder(folder / "test")
    assert not is_parts_folder(folder / "fit")  # a fit or validation part is a BEIR folder
    report = evaluate_parts(folder)
    assert set(report.rows) == {"fit", "validation (held out)"}
    assert report.questions == len(_jsonl(folder / "fit" / "queries.jsonl")) + len(
        _jsonl(folder / "validation" / "queries.jsonl"))
    err = capsys.readouterr().err
    assert "test (touch once): skipped" in err and f"qa eval {folder / 'test'}" in err
    assert any("skipped" in note for note in report.notes)
    report = evaluate_parts(folder / "test")  # named: it alone runs
    assert set(report.rows) == {"test (touch once)"}
    assert report.questions == len(_jsonl(folder / "test" / "queries.jsonl")) == 2
    assert "skipped" not in capsys.readouterr().err
