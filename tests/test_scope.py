"""Questions scoped to some documents: by folder, file pattern or doc_id, applied inside the
search (FAISS, BM25, Milvus), on real indexes."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import SEED_FILE

from qa.answering.scope import BadFilter, Where
from qa.errors import QAError
from qa.storage.rows import rows_in

RUSSIA = "What did Russia demand?"
GARDEN = """# Garden diary

The tomatoes were planted on the fourth of May. I water them every second morning with rain
water from the barrel. The basil did not survive the cold night in April.
"""
WORK = """Russia demanded, said my colleague at the Monday meeting, that the coffee machine
stays on the third floor. The budget review moves to Thursday.
"""


@pytest.fixture(scope="module")
def two_folders(tmp_path_factory):
    """work/ and home/ each hold a notes.txt (same name, other text); news/ the seed article."""
    from qa import Engine

    root = tmp_path_factory.mktemp("scoped")
    for folder, text in (("work", WORK), ("home", GARDEN)):
        (root / folder).mkdir()
        (root / folder / "notes.txt").write_text(text, encoding="utf-8")
    (root / "home" / "diary.md").write_text(GARDEN.replace("tomatoes", "beans"), "utf-8")
    (root / "news").mkdir()
    shutil.copy(SEED_FILE, root / "news")
    engine = Engine.open(sources=[root / "work", root / "home", root / "news"],
                         index_dir=root / "index")
    return root, engine


def origins(engine, passages) -> set[str]:
    return {engine.index.documents[p.doc_id].origin for p in passages}


def test_a_folder_scope_returns_only_its_passages(two_folders):
    root, engine = two_folders
    everywhere = engine.retrieve(RUSSIA, k=5)
    assert str(root / "news" / SEED_FILE.name) in origins(engine, everywhere)
    found = engine.retrieve(RUSSIA, k=5, where={"folders": [str(root / "work")]})
    assert found and origins(engine, found) == {str(root / "work" / "notes.txt")}


def test_two_files_of_one_name_are_told_apart_by_their_folder(two_folders):
    root, engine = two_folders
    found = engine.retrieve("notes", k=10, where="home/notes.txt")
    assert origins(engine, found) == {str(root / "home" / "notes.txt")}
    both = engine.retrieve("notes", k=10, where="notes.txt")
    assert origins(engine, both) == {str(root / f / "notes.txt") for f in ("home", "work")}


def test_a_pattern_and_a_doc_id_scope_the_answer(two_folders):
    root, engine = two_folders
    answer = engine.ask(RUSSIA, where="*.txt")
    assert answer.answered
    answer = engine.ask(RUSSIA, where=["work/*"])
    assert answer.passages  # answered or declined, only from work/
    assert {p.doc_id for p in [*answer.passages, *(c.passage for c in answer.citations)]} == {
        engine.index.files[str(root / "work" / "notes.txt")].doc_ids[0]}
    seed_doc = engine.index.files[str(root / "news" / SEED_FILE.name)].doc_ids[0]
    answer = engine.ask(RUSSIA, where={"doc_ids": [seed_doc]})
    assert answer.answered and {c.passage.doc_id for c in answer.citations} == {seed_doc}
    assert "Ukraine" in answer.text


def test_a_scope_outside_the_answer_declines_rather_than_quoting_elsewhere(two_folders):
    root, engine = two_folders
    answer = engine.ask(RUSSIA, where="diary.md")
    assert not answer.answered
    assert all(p.source == "diary.md" for p in answer.passages)


def test_a_follow_up_stays_in_its_scope(two_folders):
    root, engine = two_folders
    answer = engine.ask("When does it move?", history=["What about the budget review?"],
                        where={"folders": [str(root / "work")]})
    assert answer.passages
    assert origins(engine, answer.passages) == {str(root / "work" / "notes.txt")}


def test_the_llamaindex_retriever_takes_a_scope(two_folders):
    root, engine = two_folders
    nodes = engine.as_retriever(k=3, where="*.md").retrieve("basil")
    assert nodes and {n.node.metadata["doc_id"] for n in nodes} == {
        engine.index.files[str(root / "home" / "diary.md")].doc_ids[0]}


@pytest.mark.parametrize("bad, message", [
    ("nothing-like-this*", "no indexed document matches"),
    ({"folder": ["x"]}, "unknown filter key 'folder'"),
    (7, "a filter is a pattern"),
    ({"patterns": [3]}, "must be a string or a list of strings"),
])
def test_a_bad_filter_is_one_clear_error(two_folders, bad, message):
    _, engine = two_folders
    with pytest.raises(BadFilter, match=message):
        engine.ask(RUSSIA, where=bad)
    assert issubclass(BadFilter, QAError)


def test_an_empty_filter_means_everything():
    assert Where.of(None) is None and Where.of({}) is None and Where.of([]) is None
    assert Where.of("*.md") == Where(patterns=("*.md",))


def test_rows_in_finds_the_rows_of_allowed_keys():
    keys = np.asarray([3, 5, 9, 12, 40], dtype=np.int64)
    assert rows_in(keys, np.asarray([1, 5, 12, 41], dtype=np.int64)).tolist() == [1, 3]
    assert rows_in(keys, np.zeros(0, np.int64)).tolist() == []


def test_an_ivf_segment_searched_in_scope_finds_the_exact_neighbours(tmp_path, monkeypatch):
    """A scope of 1% of an IVF segment: every hit in scope, and the exact top 10 among it."""
    from qa.storage.vectors import faiss_store

    monkeypatch.setattr(faiss_store, "APPROXIMATE_FROM", 1000)
    monkeypatch.setattr(faiss_store, "EXACT_AMONG", 50)  # past it: FAISS's id selector
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(20_000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    keys = np.arange(1, 20_001, dtype=np.int64)
    store = faiss_store.FaissStore(32)
    store.add(keys, vectors)
    store.save(tmp_path / "seg-1")
    assert (tmp_path / "seg-1" / "vectors" / "ivf.index").is_file()
    loaded = faiss_store.FaissStore.load("faiss", [tmp_path / "seg-1"], 32)
    allowed = np.sort(rng.choice(keys, 200, replace=False))
    for query in vectors[:5]:
        for limit in (50, 10_000):  # IVF with the selector, then the exact scores
            monkeypatch.setattr(faiss_store, "EXACT_AMONG", limit)
            found, _ = loaded.search(query, 10, allowed)
            assert set(found.tolist()) <= set(allowed.tolist())
            exact = allowed[np.argsort(-(vectors[allowed - 1] @ query))[:10]]
            assert len(set(found.tolist()) & set(exact.tolist())) >= 9


def test_qa_ask_in_scopes_the_cli(two_folders):
    root, engine = two_folders
    qa = [sys.executable, "-m", "qa.faces.cli", "ask", "--index", str(root / "index")]
    done = subprocess.run([*qa, RUSSIA, "--in", str(root / "work"), "--passages", "-k", "3"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "notes.txt" in done.stdout and SEED_FILE.name not in done.stdout
    done = subprocess.run([*qa, RUSSIA, "--in", "no-such-file*"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == "qa: no indexed document matches the filter (no-such-file*)"
