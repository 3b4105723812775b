"""The question's BM25 is read and scored with numpy alone; it agrees with bm25s's own."""

from __future__ import annotations

import subprocess
import sys

import bm25s
import numpy as np
import pytest
from conftest import ROOT

from qa.lexical import FOLDER, LexicalIndex

QUESTIONS = [
    "What did Russia demand?",
    "How many troops has Russia deployed near Ukraine?",
    "Who is the NATO Secretary-General Jens Stoltenberg?",
    "the and of",  # stopwords only
    "borscht recipe",  # words the corpus lacks
]


@pytest.fixture(scope="module")
def saved(seed_engine):
    return seed_engine.snapshot().generation


def test_scores_and_tokens_agree_with_bm25s(saved):
    ours = LexicalIndex.load(saved)
    theirs = bm25s.BM25.load(str(saved / FOLDER))
    assert ours.vocab == theirs.vocab_dict and ours.n_docs == len(ours.ids) > 5
    for question in QUESTIONS:
        tokens = bm25s.tokenize(question, stemmer=__import__("Stemmer").Stemmer("english"),
                                return_ids=False, show_progress=False)[0]
        assert ours.tokenize([question], ours.stopwords)[0] == tokens
        ids = theirs.get_tokens_ids(tokens)
        expected = theirs.get_scores_from_ids(ids) if ids else np.zeros(ours.n_docs)
        assert np.array_equal(ours.scores(ids), expected)
    assert ours.coverage(QUESTIONS[1]).max() > 0 and not ours.coverage("the and of").any()


def test_a_question_imports_neither_llamaindex_nor_bm25s_nor_torch(seed_index_dir):
    code = (
        "import sys; from qa import Engine; "
        f"e = Engine.open(sources=None, index_dir={str(seed_index_dir)!r}); "
        "i = e.index; hits = i.lexical.coverage('What did Russia demand?'); "
        "p = i.passage(i.lexical.ids[int(hits.argmax())]); assert 'Russia' in p.text; "
        "print(sorted(m for m in ('llama_index.core', 'bm25s', 'torch') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
