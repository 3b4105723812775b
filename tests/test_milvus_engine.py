"""Milvus behind the whole engine: the seed questions answered alike through FAISS and Milvus
Lite, documents added and removed, the store recorded for later opens, and `qa` on a Milvus
index. Real embedder, real FAISS, real Milvus Lite files in tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SEEDS
from test_answers import ANSWERABLE, OFF_CORPUS, ON_TOPIC_UNANSWERED

from qa import Engine
from qa.answering.answer import DECLINE_TEXT

QUESTIONS = [q for q, _ in ANSWERABLE] + ON_TOPIC_UNANSWERED + OFF_CORPUS
TOWER = ("The Zanthor Tower\n\nThe Zanthor Tower was designed by the architect Miriam Okonkwo "
         "and opened in 1911 in the harbour town of Pellford.\n")
TOWER_QUESTION = "Who designed the Zanthor Tower?"
WAIT = 600  # seconds at most for one command on a busy machine


@pytest.fixture(scope="module")
def engines(tmp_path_factory) -> dict[str, Engine]:
    """The seed index built once through each store: {"faiss": ..., "milvus": ...}."""
    root = tmp_path_factory.mktemp("stores")
    return {
        "faiss": Engine.open(sources=[SEEDS], index_dir=root / "faiss-index", store="faiss"),
        "milvus": Engine.open(sources=[SEEDS], index_dir=root / "milvus-index",
                              store=f"milvus:{root / 'milvus.db'}"),
    }


def newest_segment(engine: Engine) -> Path:
    """The segment folder the engine's last write added (the one a Milvus index has)."""
    return sorted((engine.snapshot().generation / "segments").glob("seg-*"))[-1]


def vector_files(engine: Engine) -> list[str]:
    return sorted(p.name for p in (newest_segment(engine) / "vectors").iterdir())


def cited(answer) -> list[tuple]:
    return [(c.n, c.quote, c.quote_start, c.quote_end, c.passage.id) for c in answer.citations]


def tower_file(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tower.txt"
    path.write_text(TOWER, encoding="utf-8")
    return path


# ---- FAISS and Milvus answer alike -------------------------------------------------------------
def test_each_engine_keeps_its_vectors_in_its_store(engines):
    from qa.storage.vectors.faiss_store import FaissStore
    from qa.storage.vectors.milvus_store import MilvusStore

    assert isinstance(engines["faiss"].index.vectors, FaissStore)
    assert isinstance(engines["milvus"].index.vectors, MilvusStore)
    assert vector_files(engines["faiss"]) == ["gone.npy", "keys.npy", "vectors.npy"]
    assert vector_files(engines["milvus"]) == ["milvus.json"]
    milvus_segments = list((engines["milvus"].snapshot().generation / "segments").iterdir())
    assert len(milvus_segments) == 1  # each Milvus write's segment replaces the others
    assert len(engines["milvus"].index) == len(engines["faiss"].index) > 5


@pytest.mark.parametrize("question", QUESTIONS)
def test_the_seed_questions_get_the_same_passages_and_answers(engines, question):
    faiss, milvus = engines["faiss"], engines["milvus"]
    want, got = faiss.retrieve(question, k=5), milvus.retrieve(question, k=5)
    assert len(want) == 5
    assert [p.id for p in got] == [p.id for p in want]
    assert [p.score for p in got] == pytest.approx([p.score for p in want], abs=1e-5)

    # the dense ranking alone: Milvus's own search of its collection against FAISS
    query = faiss.embedder.encode_queries([question])[0]
    want_ids, want_scores = faiss.index.vectors.search(query, 5)
    got_ids, got_scores = milvus.index.vectors.search(query, 5)
    assert got_ids.tolist() == want_ids.tolist()
    assert list(got_scores) == pytest.approx(list(want_scores), abs=1e-5)

    want, got = faiss.ask(question), milvus.ask(question)
    assert want.answered == (question not in ON_TOPIC_UNANSWERED + OFF_CORPUS)
    assert (got.text, got.answered) == (want.text, want.answered)
    assert cited(got) == cited(want)
    assert got.confidence == pytest.approx(want.confidence, abs=1e-5)


def test_a_follow_up_is_answered_alike(engines):
    answers = {name: engine.ask("What did he say?", history=["Who is NATO's Secretary-General?"])
               for name, engine in engines.items()}
    want, got = answers["faiss"], answers["milvus"]
    assert want.answered and "Stoltenberg" in want.standalone_question
    assert got.standalone_question == want.standalone_question
    assert (got.text, got.answered) == (want.text, want.answered)
    assert cited(got) == cited(want)


# ---- writes through Milvus ----------------------------------------------------------------------
def test_adding_and_removing_documents_and_reopening_read_milvus(tmp_path, seed_copy):
    from qa.storage.vectors.milvus_store import MilvusStore

    spec, index = f"milvus:{tmp_path / 'vectors.db'}", tmp_path / "index"
    engine = Engine.open(sources=[seed_copy], index_dir=index, store=spec)
    seeds = len(engine.index)
    assert not engine.ask(TOWER_QUESTION).answered

    report = engine.add([tower_file(tmp_path / "extra")])
    assert report.added and len(engine.index) > seeds
    answer = engine.ask(TOWER_QUESTION)
    assert answer.answered and "Miriam Okonkwo" in answer.text
    assert {c.passage.doc_id for c in answer.citations} == {"tower.txt"}
    assert engine.retrieve(TOWER_QUESTION, k=1)[0].doc_id == "tower.txt"
    info = json.loads((newest_segment(engine) / "vectors/milvus.json").read_text())
    assert info["count"] == len(engine.index)
    tower = [p.id for p in engine.retrieve(TOWER_QUESTION, k=50) if p.doc_id == "tower.txt"]
    tower_keys = [engine.index.db.key_of(pid) for pid in tower]
    assert tower and None not in tower_keys
    assert engine.index.vectors.fetch(tower_keys).shape == (len(tower_keys),
                                                        engine.embedder.dimension)
    # a scope inside Milvus: only the article, then only the tower, whatever ranks first
    scoped = engine.retrieve(TOWER_QUESTION, k=5, where="000_*.txt")
    assert scoped and {p.doc_id for p in scoped} == {"000_56b9276ed6e05626.txt"}
    assert [p.doc_id for p in engine.retrieve("Russia", k=3, where="tower.txt")] == ["tower.txt"]

    assert engine.remove(["tower.txt"]) == ["tower.txt"]
    after = engine.ask(TOWER_QUESTION)
    assert not after.answered and after.text == DECLINE_TEXT
    assert all(p.doc_id != "tower.txt" for p in engine.retrieve(TOWER_QUESTION, k=50))
    assert len(engine.index) == seeds
    for key in tower_keys:  # their vectors are gone from the store
        with pytest.raises(KeyError):
            engine.index.vectors.fetch([key])
    query = engine.embedder.encode_queries([TOWER_QUESTION])[0]
    found, _ = engine.index.vectors.search(query, len(engine.index) + 10)
    assert len(found) == seeds and not np.isin(found, tower_keys).any()

    again = Engine.open(sources=[seed_copy], index_dir=index)  # no store named
    assert again.settings.store == spec
    assert isinstance(again.index.vectors, MilvusStore)
    assert not again.last_report.rebuilt and again.last_report.passages_embedded == 0
    assert [d["doc_id"] for d in again.documents()] == [d["doc_id"] for d in engine.documents()]
    assert not again.ask(TOWER_QUESTION).answered
    assert again.ask(ANSWERABLE[0][0]).text == engine.ask(ANSWERABLE[0][0]).text


def test_an_engine_answers_on_while_another_writes_the_index_twice(tmp_path):
    # Each save drops the collections no generation folder names; a generation an engine of
    # this process still reads keeps its collection (FAISS keeps it in memory anyway).
    spec, index = f"milvus:{tmp_path / 'vectors.db'}", tmp_path / "index"
    reader = Engine.open(sources=[SEEDS], index_dir=index, store=spec)
    before = reader.ask(ANSWERABLE[1][0])
    writer = Engine.open(sources=None, index_dir=index)
    writer.add([tower_file(tmp_path / "extra")])
    assert writer.remove(["tower.txt"]) == ["tower.txt"]
    later = reader.ask(ANSWERABLE[1][0])
    assert later.answered and (later.text, cited(later)) == (before.text, cited(before))


def test_a_relative_milvus_file_is_the_same_file_from_another_working_directory(
        tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    built = Engine.open(sources=[SEEDS], index_dir=tmp_path / "index", store="milvus:vectors.db")
    assert (first / "vectors.db").exists()
    monkeypatch.chdir(second)
    again = Engine.open(sources=None, index_dir=tmp_path / "index")  # IndexDamaged today
    assert again.ask(ANSWERABLE[0][0]).text == built.ask(ANSWERABLE[0][0]).text
    assert not (second / "vectors.db").exists()


# ---- the command line ---------------------------------------------------------------------------
def qa(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qa.faces.cli", *args], cwd=cwd, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "QA_HOME": str(cwd / "home")},
        timeout=WAIT,
    )


def test_qa_index_into_milvus_then_ask_without_naming_the_store(tmp_path):
    docs, index, db = tmp_path / "docs", tmp_path / "index", tmp_path / "cli.db"
    tower_file(docs)
    done = qa("index", str(docs), "--index", str(index), "--store", f"milvus:{db}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1 added")
    assert (index / "STORE").read_text().strip() == f"milvus:{db}"
    assert [p.name for p in index.glob("gen-*/segments/*/vectors/*")] == ["milvus.json"]

    done = qa("ask", TOWER_QUESTION, "--index", str(index), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "Miriam Okonkwo" in lines[0] and lines[0].endswith("[1]")
    assert lines[1].startswith("[1] tower.txt (chars ")

    done = qa("ask", TOWER_QUESTION, "--index", str(index), "--store", "bogus", cwd=tmp_path)
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.startswith("qa: unknown vector store 'bogus'")
    assert len(done.stderr.splitlines()) == 1


def test_a_milvus_lite_file_held_by_another_process_is_one_line(engines, tmp_path):
    index = engines["milvus"].store.root  # its Milvus Lite file is open in this process
    done = qa("ask", ANSWERABLE[0][0], "--index", str(index), cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("qa: cannot open the Milvus Lite file ")
    assert len(done.stderr.splitlines()) == 1, done.stderr
