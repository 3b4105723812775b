"""`qa eval`: metric functions against hand-computed values, BM25-only / dense-only purity,
and the command end to end on a tiny BEIR folder and a small question set built from the seed."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from conftest import ROOT, SEED_FILE, SEEDS
from llama_index.core.schema import NodeRelationship, NodeWithScore, RelatedNodeInfo, TextNode

from qa.eval.beir import DocumentsByMaxScore, load_beir, passage_depth
from qa.eval.metrics import (
    abstention,
    contains_any,
    hit_at_k,
    mrr_at_k,
    ndcg_at_k,
    percentile,
    recall_at_k,
)

# ---- metric functions ------------------------------------------------------------------


def test_ndcg_graded_by_hand():
    # gains d2=1 at rank 2, d3=2 at rank 3: DCG = 1/log2(3) + 2/log2(4); ideal = 2 + 1/log2(3)
    expected = (1 / math.log2(3) + 1.0) / (2.0 + 1 / math.log2(3))
    assert ndcg_at_k(["d1", "d2", "d3"], {"d2": 1, "d3": 2}, 10) == pytest.approx(expected)
    assert ndcg_at_k(["d2", "d3"], {"d2": 1, "d3": 2}, 1) == pytest.approx(0.5)  # cut at k
    assert ndcg_at_k(["d3", "d2"], {"d2": 1, "d3": 2, "d4": 0}, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["d1"], {"d2": 1}, 10) == 0.0


def test_ranking_metrics_by_hand():
    ranked = ["a", "b", "c", "d"]
    assert recall_at_k(ranked, ["c", "x"], 2) == 0.0
    assert recall_at_k(ranked, ["c", "x"], 3) == 0.5
    assert recall_at_k(ranked, ["a", "d"], 100) == 1.0
    assert mrr_at_k(ranked, ["c"], 2) == 0.0
    assert mrr_at_k(ranked, ["c", "d"], 10) == pytest.approx(1 / 3)
    assert hit_at_k(ranked, ["b"], 1) == 0.0
    assert hit_at_k(ranked, ["b"], 3) == 1.0
    assert hit_at_k([], ["b"], 3) == 0.0 and mrr_at_k(ranked, [], 5) == 0.0


def test_abstention_latency_and_phrase_match():
    declined = [True, True, False, False]
    answerable = [False, True, False, True]
    assert abstention(declined, answerable) == (0.5, 0.5)
    assert abstention([False, False], [True, True]) == (None, None)
    assert percentile([10, 20, 30, 40], 50) == 25.0
    assert percentile([10, 20, 30, 40], 95) == pytest.approx(38.5)
    assert contains_any("The Kremlin  SAID\nno", ["kremlin said no"])
    assert not contains_any("The Kremlin said", ["White House"])


def _node(pid: str, doc: str) -> TextNode:
    node = TextNode(id_=pid, text=pid)
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc)
    return node


def test_documents_ranked_by_their_best_passage():
    hits = [
        NodeWithScore(node=_node("p1", "A"), score=0.9),
        NodeWithScore(node=_node("p2", "B"), score=0.8),
        NodeWithScore(node=_node("p3", "A"), score=0.7),
        NodeWithScore(node=_node("p4", "C"), score=0.95),
    ]
    docs = DocumentsByMaxScore(limit=2).postprocess_nodes(hits)
    assert [(d.node.node_id, d.score) for d in docs] == [("C", 0.95), ("A", 0.9)]
    assert passage_depth(12008, 5183) == 696 and passage_depth(20, 20) == 100


# ---- BM25 only and dense only are the pure rankings ---------------------------------------


def test_weight_zero_is_bm25_and_weight_one_is_dense(seed_engine):
    from qa.eval.baselines import weighted

    question = "How many troops has Russia deployed near Ukraine?"
    index = seed_engine.index
    n = len(index)
    keys, covered = index.lexical.coverage(question)
    coverage = {index.ids_of([int(k)])[int(k)]: float(c) for k, c in zip(keys, covered)}
    bm25 = weighted(seed_engine, 0.0)(n).retrieve(question)
    expected = sorted(coverage.values(), reverse=True)
    assert [coverage.get(h.node.id_, 0.0) for h in bm25][:len(expected)] == pytest.approx(expected)
    assert [h.score for h in bm25][:len(expected)] == pytest.approx(expected)
    dense = weighted(seed_engine, 1.0)(n).retrieve(question)
    query = seed_engine.embedder.encode_queries([question])[0]
    keys, cosines = index.vectors.search(query, n)
    ids = index.ids_of(keys.tolist())
    assert [h.node.id_ for h in dense] == [ids[int(k)] for k in keys]
    assert [h.score for h in dense] == pytest.approx(list(cosines), abs=1e-5)


# ---- the command end to end ---------------------------------------------------------------

QUERIES = {  # query -> {paragraph number: graded relevance}, judged by reading the seed
    "How many troops has Russia deployed to the region?": {12: 1},
    "What did Kremlin spokesman Dmitry Peskov say about tensions?": {17: 1},
    "How many troops is the Biden administration considering moving?": {6: 1},
    "Who is the NATO Secretary-General?": {10: 2, 11: 1},
}


@pytest.fixture(scope="module")
def beir_folder(tmp_path_factory):
    """The seed's paragraphs of 20+ words as a BEIR corpus, with hand-made test qrels."""
    folder = tmp_path_factory.mktemp("tiny-beir")
    paragraphs = [p.strip() for p in SEED_FILE.read_text().split("\n\n") if p.strip()]
    with open(folder / "corpus.jsonl", "w") as fh:
        for i, text in enumerate(paragraphs):
            if len(text.split()) >= 20:
                fh.write(json.dumps({"_id": f"p{i:02d}", "title": "", "text": text}) + "\n")
    with open(folder / "queries_test.jsonl", "w") as fh:
        for i, query in enumerate(QUERIES):
            fh.write(json.dumps({"_id": f"q{i}", "text": query, "answerable": True}) + "\n")
        unanswerable = "What is the boiling point of mercury in kelvin?"
        fh.write(json.dumps({"_id": "q-none", "text": unanswerable, "answerable": False}) + "\n")
    with open(folder / "qrels_test.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for i, rels in enumerate(QUERIES.values()):
            for para, grade in rels.items():
                fh.write(f"q{i}\tp{para:02d}\t{grade}\n")
    return folder


def run_qa(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "qa.faces.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_beir_loader_reads_split_and_grades(beir_folder):
    data = load_beir(beir_folder, "test")
    assert len(data.queries) == 4 and "q-none" not in data.queries and len(data.records) == 5
    assert data.qrels["q3"] == {"p10": 2.0, "p11": 1.0}
    assert data.relevant("q0") == ["p12"]


def test_eval_beir_with_baselines_json_out_and_cache(beir_folder, tmp_path, monkeypatch):
    out = tmp_path / "report"
    args = ["eval", str(beir_folder), "--split", "test", "--baselines", "--json"]
    first = run_qa(*args, "--out", str(out), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["kind"] == "beir" and report["questions"] == 4
    systems = ["qa", "BM25 only", "dense only", "LlamaIndex default"]
    assert list(report["rows"]) == systems
    answer_columns = ["answered", "cites_relevant", "abstention_precision", "abstention_recall"]
    assert report["columns"] == ["ndcg@10", "recall@10", "recall@100", "mrr@10", *answer_columns]
    for name, row in report["rows"].items():
        assert row["recall@100"] == 1.0  # 17 documents: every one is ranked
        if name != "qa":  # only qa answers; its abstention is measured on all 5 queries
            assert all(row[c] is None for c in answer_columns)
        assert 0.0 <= row["ndcg@10"] <= 1.0 and row["recall@10"] <= 1.0
    # the corpus is tiny and the questions plain: each relevant paragraph is found near the top
    assert report["rows"]["qa"]["mrr@10"] >= 0.5
    assert report["rows"]["qa"]["abstention_recall"] in (0.0, 1.0)  # one unanswerable query
    assert 0.0 <= report["rows"]["qa"]["cites_relevant"] <= report["rows"]["qa"]["answered"]
    assert report["embedded"]["qa"] > 0 and report["embedded"]["LlamaIndex default"] > 0
    markdown = (out / f"{beir_folder.name}-test.md").read_text()
    assert "| system |" in markdown and all(f"| {s} |" in markdown for s in systems)
    assert (out / f"{beir_folder.name}-test.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a second run, here in the test's process, finds both indexes in the cache
    from qa.eval.evaluate import evaluate_beir

    monkeypatch.chdir(tmp_path)
    again = evaluate_beir(beir_folder, "test", baselines=True)
    assert again.embedded == {"qa": 0, "LlamaIndex default": 0}
    assert again.rows.keys() == report["rows"].keys()
    for name, row in again.rows.items():
        assert row == pytest.approx(report["rows"][name])


def test_eval_bad_inputs_are_one_line(tmp_path):
    missing = run_qa("eval", str(tmp_path / "nope.jsonl"), cwd=tmp_path)
    assert missing.returncode == 1 and "no such question set" in missing.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "question": "Who?", "answers": ["x"]}\nnot json\n')
    broken = run_qa(
        "eval", str(bad), "--source", str(SEEDS), "--index", str(tmp_path / "ix"), cwd=tmp_path
    )
    assert broken.returncode == 1
    assert f"{bad}:2: expected" in broken.stderr and "Traceback" not in broken.stderr
    no_qrels = tmp_path / "noqrels"
    no_qrels.mkdir()
    (no_qrels / "corpus.jsonl").write_text('{"_id": "a", "text": "b"}\n')
    result = run_qa("eval", str(no_qrels), "--split", "dev", cwd=tmp_path)
    assert result.returncode == 1 and 'no qrels for split "dev"' in result.stderr
    assert "Traceback" not in result.stderr


SMALL_SET = [
    {"id": "t1", "question": "How many troops has Russia deployed to the region?",
     "answers": ["127,000"], "answerable": True, "history": []},
    {"id": "t2", "question": "Who is the NATO Secretary-General?",
     "answers": ["Jens Stoltenberg"], "answerable": True, "history": []},
    {"id": "t3", "question": "Where did Biden discuss options with his military officials?",
     "answers": ["Camp David"], "answerable": True, "history": []},
    {"id": "t4", "question": "What is the boiling point of mercury in kelvin?",
     "answers": [], "answerable": False, "history": []},
    {"id": "t5", "question": "What did he say about the tensions?",
     "answers": ["Tensions are rising", "information hysteria"], "answerable": True,
     "history": ["Who is the Kremlin spokesman?"]},
]  # fmt: skip


def test_eval_question_set_matches_the_engine(seed_engine, seed_index_dir, tmp_path):
    path = tmp_path / "small.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in SMALL_SET))
    result = run_qa("eval", str(path), "--json", "--baselines", "--index", str(seed_index_dir),
                    "--source", str(SEEDS), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kind"] == "questions" and report["questions"] == 5
    assert list(report["rows"]) == ["qa", "BM25 only", "dense only", "LlamaIndex default"]

    # judged by reading the article: each answerable question's answer phrase is in one
    # passage that a plain search ranks first, and the one unanswerable one is off the corpus
    qa = report["rows"]["qa"]
    assert qa["answers_right"] == 1.0
    assert qa["abstention_recall"] == 1.0 and qa["abstention_precision"] == 1.0
    assert qa["hit@1"] == 1.0 and qa["hit@5"] == 1.0
    assert 0 < qa["latency_p50_ms"] <= qa["latency_p95_ms"]
    for name, row in report["rows"].items():
        assert row["hit@1"] <= row["hit@3"] <= row["hit@5"]
        if name != "qa":
            assert row["answers_right"] is None and row["abstention_recall"] is None
    assert report["rows"]["LlamaIndex default"]["words_per_passage"] > qa["words_per_passage"]
