"""BM25 over the passages, as absolute scores, from the segments' term counts.

Lucene's BM25 as bm25s computes it for LlamaIndex's `BM25Retriever` (k1 1.5, b 0.75, bm25s's
English stopwords, PyStemmer), scored with numpy over the postings of every segment
(qa/storage/postings.py) with the document frequencies and average length of the moment, so that a
write adds a segment instead of rebuilding BM25 (tests/test_lexical.py checks the scores
equal bm25s's over the same passages). Terms are looked up by id in the index's SQLite file.

`coverage` is a passage's BM25 score over the largest BM25 score any passage could reach for
the question (the sum of the question terms' IDFs, Lucene's BM25 term factor being < 1): how
much of the question's weighted vocabulary the passage holds, in [0, 1). The answer step
weighs a question's terms by the same IDFs (`idf`, `tokenize`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

import numpy as np

from qa.storage.postings import Postings
from qa.storage.rows import rows_in

TOKEN = re.compile(r"(?u)\b\w\w+\b")  # LlamaIndex's BM25Retriever's token_pattern
K1, B = 1.5, 0.75  # bm25s's defaults, as BM25Retriever builds it


def bm25_idf(doc_freq: np.ndarray, n_docs: int) -> np.ndarray:
    """Lucene's BM25 IDF, log(1 + (N - df + 0.5) / (df + 0.5)) (as bm25s's default method)."""
    return np.log(1.0 + (n_docs - doc_freq + 0.5) / (doc_freq + 0.5))


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer  # PyStemmer, as BM25Retriever uses it

    return Stemmer.Stemmer("english")


def bm25_stopwords() -> list[str]:
    """bm25s's English stopwords, which BM25Retriever strips; a write keeps them in the index,
    so that a question does not import bm25s."""
    from bm25s.stopwords import STOPWORDS_EN

    return list(STOPWORDS_EN)


def tokenize(texts: Iterable[str], stopwords: Iterable[str] = ()) -> list[list[str]]:
    """Texts as BM25 sees them: lower case, words of two or more characters, less
    `stopwords`, stemmed (bm25s.tokenize's steps, in its order)."""
    stop = set(stopwords)
    stem = _stemmer().stemWords
    out = []
    for text in texts:
        words = [w for w in TOKEN.findall(text.lower()) if w not in stop]
        out.append(stem(words) if words else [])
    return out


class Vocabulary:
    """Term -> id, looked up on demand (a large index has millions of terms)."""

    def __init__(self, lookup: Callable[[Iterable[str]], dict[str, int]]) -> None:
        self._lookup = lookup
        self._known: dict[str, int | None] = {}

    def ids(self, terms: Iterable[str]) -> dict[str, int]:
        terms = list(terms)
        missing = [t for t in terms if t not in self._known]
        if missing:
            found = self._lookup(missing)
            for term in missing:
                self._known[term] = found.get(term)
        return {t: i for t in terms if (i := self._known[t]) is not None}

    def __contains__(self, term: str) -> bool:
        return bool(self.ids([term]))


class LexicalIndex:
    """BM25 over the live rows of every segment."""

    def __init__(self, segments: Sequence[Postings], vocab: Vocabulary, n_terms: int,
                 stopwords: Sequence[str]) -> None:
        self.segments = list(segments)
        self.vocab = vocab
        self.stopwords = list(stopwords)  # what a question's words are stripped of
        gone = [s.gone() for s in self.segments]
        dead = np.concatenate([g.keys for g in gone]) if gone else np.zeros(0, np.int64)
        self.n_docs = sum(len(s.keys) for s in self.segments) - len(dead)
        total = sum(int(np.asarray(s.lengths, dtype=np.int64).sum()) for s in self.segments)
        total -= sum(int(g.lengths.astype(np.int64).sum()) for g in gone)
        # (1 where no passage has a word: every length is 0, so the norm is the same)
        self.avg_length = total / self.n_docs if self.n_docs and total else 1.0
        self.doc_freq = np.zeros(n_terms, dtype=np.int64)
        for segment, g in zip(self.segments, gone):
            self.doc_freq += segment.doc_freq(n_terms)
            self.doc_freq -= np.bincount(g.terms, minlength=n_terms)[:n_terms]
        # each segment's rows that later writes removed
        self.dead = [np.isin(s.keys, dead) if len(dead) else None for s in self.segments]
        # each row's length normalisation, the same for every question of this state
        # (float32, as bm25s scores: at a million passages it halves a question's BM25 time)
        self.norms = [(K1 * ((1 - B) + B * np.asarray(s.lengths) / self.avg_length))
                      .astype(np.float32) for s in self.segments]

    def __len__(self) -> int:
        return self.n_docs

    def tokenize(self, texts: Sequence[str], stopwords: Iterable[str] = ()) -> list[list[str]]:
        return tokenize(texts, stopwords)

    def idf(self, token: str) -> float:
        term = self.vocab.ids([token]).get(token)
        df = self.doc_freq[term] if term is not None and term < len(self.doc_freq) else 0
        return float(bm25_idf(np.asarray(df, dtype=np.float64), max(self.n_docs, 1)))

    def term_ids(self, text: str) -> list[int]:
        """The text's BM25 term ids, repeats kept (as bm25s scores a question)."""
        tokens = tokenize([text], self.stopwords)[0]
        ids = self.vocab.ids(tokens)
        return [ids[t] for t in tokens if t in ids and ids[t] < len(self.doc_freq)]

    def scores(self, term_ids: Sequence[int], allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(keys, BM25) of every live row holding at least one of the terms; `allowed`: of
        those rows whose keys it holds (ascending) alone."""
        keys, values = [], []
        if not term_ids or not self.n_docs:
            return np.zeros(0, np.int64), np.zeros(0)
        idf = bm25_idf(self.doc_freq[term_ids].astype(np.float64), self.n_docs)
        for segment, dead, norm in zip(self.segments, self.dead, self.norms):
            out = np.zeros(len(segment.keys), dtype=np.float32)
            for term, weight in zip(term_ids, idf):
                if term >= segment.terms:
                    continue
                span = slice(segment.indptr[term], segment.indptr[term + 1])
                rows, tf = segment.rows[span], segment.tf[span]
                out[rows] += np.float32(weight) * (tf / (tf + norm[rows]))
            if dead is not None:
                out[dead] = 0.0
            if allowed is not None:
                held = np.zeros(len(out), dtype=bool)
                held[rows_in(segment.keys, allowed)] = True
                out[~held] = 0.0
            hit = np.flatnonzero(out)
            keys.append(np.asarray(segment.keys)[hit])
            values.append(out[hit])
        return np.concatenate(keys), np.concatenate(values)

    def coverage(self, question: str, allowed: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(keys, coverage in (0, 1)) of the live rows that hold a question term (and whose
        keys `allowed` holds, when given); the statistics are the whole index's."""
        ids = self.term_ids(question)
        keys, raw = self.scores(ids, allowed)
        ceiling = float(bm25_idf(self.doc_freq[ids].astype(np.float64), self.n_docs).sum())
        return (keys, raw / ceiling) if ceiling > 0 else (keys[:0], raw[:0])

