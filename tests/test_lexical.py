"""BM25 from the segments' term counts equals bm25s's over the same passages, after any
sequence of writes; a question imports neither LlamaIndex nor bm25s nor torch."""

from __future__ import annotations

import subprocess
import sys

import bm25s
import numpy as np
import pytest
from conftest import ROOT

from qa import Engine
from qa.storage.lexical import LexicalIndex

QUESTIONS = [
    "What did Russia demand?",
    "How many troops has Russia deployed near Ukraine?",
    "Who is the NATO Secretary-General Jens Stoltenberg?",
    "the and of",  # stopwords only
    "borscht recipe",  # words the corpus lacks
    "kite kite owl lighthouse",  # a repeated word counts twice, as in bm25s
]
NOTES = {
    "kite.txt": "A kite flies over the harbour when the wind comes from the west.",
    "owl.txt": "The owl hunts at night over the fields behind the lighthouse.",
    "lamp.txt": "The lighthouse keeper lights the lamp at dusk; the owl watches the kite.",
    "ferry.txt": "The ferry leaves at noon, and bicycles travel free of charge.",
}


def bm25s_scores(lexical: LexicalIndex, texts: dict[int, str], question: str) -> dict[int, float]:
    """bm25s's own scores (as LlamaIndex's BM25Retriever builds it) over these passages."""
    keys = sorted(texts)
    stemmer = __import__("Stemmer").Stemmer("english")
    corpus = bm25s.tokenize([texts[k] for k in keys], stopwords="en", stemmer=stemmer,
                            show_progress=False)
    model = bm25s.BM25()
    model.index(corpus, show_progress=False)
    tokens = lexical.tokenize([question], lexical.stopwords)[0]
    ids = [corpus.vocab[t] for t in tokens if t in corpus.vocab]
    scores = model.get_scores(ids) if ids else np.zeros(len(keys))
    return {k: float(s) for k, s in zip(keys, scores) if s > 0}


def ours(lexical: LexicalIndex, question: str) -> dict[int, float]:
    keys, scores = lexical.scores(lexical.term_ids(question))
    return dict(zip(keys.tolist(), scores.tolist()))


def live_texts(engine: Engine) -> dict[int, str]:
    return dict(engine.index.db.rows("SELECT key, text FROM passages"))


def assert_agree(engine: Engine) -> None:
    lexical, texts = engine.index.lexical, live_texts(engine)
    assert len(lexical) == len(texts) > 0
    for question in QUESTIONS:
        expected, got = bm25s_scores(lexical, texts, question), ours(lexical, question)
        assert got.keys() == expected.keys(), question
        for key, score in expected.items():
            assert got[key] == pytest.approx(score, rel=1e-5), question


def test_scores_agree_with_bm25s_on_the_seed_index(seed_engine):
    assert_agree(seed_engine)
    keys, coverage = seed_engine.index.lexical.coverage(QUESTIONS[1])
    assert len(keys) and 0 < coverage.max() < 1
    assert not len(seed_engine.index.lexical.coverage("the and of")[0])


def test_scores_agree_after_adds_and_removes_in_many_segments(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    engine = Engine.open(sources=None, index_dir=tmp_path / "ix")
    for name, text in NOTES.items():  # one write, one segment each (merged as they go)
        (docs / name).write_text(text)
        engine.add([docs / name])
    engine.remove(["owl.txt"])  # a tombstone in a later segment
    (docs / "kite.txt").write_text(NOTES["kite.txt"] + " The kite string snapped.")
    engine.add([docs / "kite.txt"])  # replaced: removed and added in one write
    assert sorted(engine.index.documents) == ["ferry.txt", "kite.txt", "lamp.txt"]
    assert_agree(engine)
    reopened = Engine.open(sources=None, index_dir=tmp_path / "ix")
    assert_agree(reopened)
    assert "owl" not in " ".join(live_texts(reopened).values()).split()[:3]


def test_a_question_imports_neither_llamaindex_nor_bm25s_nor_torch(seed_index_dir):
    code = (
        "import sys; from qa import Engine; "
        f"e = Engine.open(sources=None, index_dir={str(seed_index_dir)!r}); "
        "i = e.index; keys, cov = i.lexical.coverage('What did Russia demand?'); "
        "pid = i.ids_of([int(keys[cov.argmax()])]); "
        "p = i.passage(next(iter(pid.values()))); assert 'Russia' in p.text; "
        "e.ask('What did Russia demand?'); "
        "print(sorted(m for m in ('llama_index.core', 'bm25s', 'torch') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
