"""BM25 over the passages, as absolute scores.

Built with LlamaIndex's `BM25Retriever` (bm25s, English stopwords, PyStemmer) and saved in
bm25s's own files. A question reads those files and scores with numpy alone: the same
arithmetic as bm25s's `get_scores_from_ids` (tests/test_lexical.py checks they agree), without
importing LlamaIndex or bm25s, which would cost a cold question more than its whole budget.

`coverage` is a passage's BM25 score over the largest BM25 score any passage could reach for
the question (the sum of the question terms' IDFs, Lucene's BM25 term factor being < 1): how
much of the question's weighted vocabulary the passage holds, in [0, 1). The answer step
weighs a question's terms by the same IDFs (`idf`, `tokenize`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

FOLDER = "bm25"
TOKEN = re.compile(r"(?u)\b\w\w+\b")  # LlamaIndex's BM25Retriever's token_pattern
_ARRAYS = ("data", "indices", "indptr")  # bm25s's score matrix, one column per term


def bm25_idf(doc_freq: np.ndarray, n_docs: int) -> np.ndarray:
    """Lucene's BM25 IDF, log(1 + (N - df + 0.5) / (df + 0.5)) (as bm25s's default method)."""
    return np.log(1.0 + (n_docs - doc_freq + 0.5) / (doc_freq + 0.5))


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer  # PyStemmer, as BM25Retriever uses it

    return Stemmer.Stemmer("english")


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


class LexicalIndex:
    """One BM25 row per passage, `ids[row]` naming its passage."""

    def __init__(self, arrays: dict[str, np.ndarray], vocab: dict[str, int], ids: list[str],
                 params: dict, stopwords: list[str]) -> None:
        self.data, self.indices, self.indptr = (arrays[k] for k in _ARRAYS)
        self.vocab = vocab
        self.ids = ids
        self.params = params  # bm25s's, saved with the matrix
        self.n_docs = int(params["num_docs"])
        self.stopwords = stopwords  # what a question's words are stripped of, as at build
        self.row = {pid: i for i, pid in enumerate(ids)}
        self.doc_freq = np.diff(self.indptr).astype(np.float64)

    @classmethod
    def build(cls, ids: Sequence[str], texts: Sequence[str]) -> LexicalIndex | None:
        """BM25 over the passages' texts; None when there are none."""
        if not ids:
            return None
        from llama_index.core.schema import TextNode
        from llama_index.retrievers.bm25 import BM25Retriever

        nodes = [TextNode(id_=pid, text=text) for pid, text in zip(ids, texts)]
        try:
            with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 when no row has a word
                bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=1).bm25
        except ValueError:
            if any(tokenize(texts, _bm25_stopwords())):
                raise
            # Not one searchable word in any passage (only punctuation, numbers, stopwords):
            # bm25s cannot build an empty vocabulary, so every row gets the empty token,
            # which no question ever contains.
            bm25 = _wordless_bm25(len(ids))
        arrays = {k: np.asarray(bm25.scores[k]) for k in _ARRAYS}
        params = {"k1": bm25.k1, "b": bm25.b, "delta": bm25.delta, "method": bm25.method,
                  "idf_method": bm25.idf_method, "dtype": bm25.dtype,
                  "int_dtype": bm25.int_dtype, "num_docs": int(bm25.scores["num_docs"]),
                  "backend": "numpy"}
        return cls(arrays, dict(bm25.vocab_dict), list(ids), params, _bm25_stopwords())

    def save(self, folder: Path) -> None:
        """bm25s's own file layout (`bm25s.BM25.load` reads it), the row order and the
        stopwords; not the retriever's copy of every passage, which the docstore holds."""
        where = folder / FOLDER
        where.mkdir(parents=True, exist_ok=True)
        for name, array in zip(_ARRAYS, (self.data, self.indices, self.indptr)):
            np.save(where / f"{name}.csc.index.npy", array)
        files = {"vocab.index.json": self.vocab, "params.index.json": self.params,
                 "ids.json": self.ids, "stopwords.json": self.stopwords}
        for name, value in files.items():
            (where / name).write_text(json.dumps(value), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        where = folder / FOLDER
        arrays = {k: np.load(where / f"{k}.csc.index.npy") for k in _ARRAYS}
        read = {name: json.loads((where / f"{name}.json").read_text(encoding="utf-8"))
                for name in ("vocab.index", "params.index", "ids", "stopwords")}
        params = read["params.index"]
        if params.get("method") != "lucene" or params.get("idf_method") != "lucene":
            raise ValueError(f"BM25 variant {params.get('method')!r}; qa writes lucene's")
        return cls(arrays, read["vocab.index"], read["ids"], params, read["stopwords"])

    def tokenize(self, texts: Sequence[str], stopwords: Iterable[str] = ()) -> list[list[str]]:
        return tokenize(texts, stopwords)

    def idf(self, token: str) -> float:
        df = self.doc_freq[self.vocab[token]] if token in self.vocab else 0.0
        return float(bm25_idf(np.asarray(df), max(self.n_docs, 1)))

    def scores(self, token_ids: Sequence[int]) -> np.ndarray:
        """BM25 of every row for these term ids (bm25s's sum of the terms' columns)."""
        out = np.zeros(self.n_docs, dtype=self.data.dtype)
        if len(token_ids):
            columns = [slice(self.indptr[t], self.indptr[t + 1]) for t in token_ids]
            np.add.at(out, np.concatenate([self.indices[c] for c in columns]),
                      np.concatenate([self.data[c] for c in columns]))
        return out

    def coverage(self, question: str) -> np.ndarray:
        """Coverage in [0, 1) of every row."""
        ids = [self.vocab[t] for t in tokenize([question], self.stopwords)[0] if t in self.vocab]
        if not ids:
            return np.zeros(len(self.ids))
        raw = self.scores(ids)
        ceiling = float(bm25_idf(self.doc_freq[ids], self.n_docs).sum())
        return raw / ceiling if ceiling > 0 else np.zeros_like(raw)


def _bm25_stopwords() -> list[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return list(STOPWORDS_EN)


def _wordless_bm25(rows: int):
    import bm25s
    from bm25s.tokenization import Tokenized

    bm25 = bm25s.BM25()
    bm25.index(Tokenized(ids=[[0]] * rows, vocab={"": 0}), show_progress=False)
    return bm25
