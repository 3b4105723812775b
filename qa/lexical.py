"""BM25 over the passages (LlamaIndex's `BM25Retriever`, i.e. bm25s), as absolute scores.

`coverage` is a passage's BM25 score over the largest BM25 score any passage could reach for
the question (the sum of the question terms' IDFs, Lucene's BM25 term factor being < 1): how
much of the question's weighted vocabulary the passage holds, in [0, 1). The answer step
weighs a question's terms by the same IDFs (`idf`, `tokenize`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from llama_index.core.schema import TextNode

FOLDER = "bm25"


def bm25_idf(doc_freq: np.ndarray, n_docs: int) -> np.ndarray:
    """Lucene's BM25 IDF, log(1 + (N - df + 0.5) / (df + 0.5)) (as bm25s's default method)."""
    return np.log(1.0 + (n_docs - doc_freq + 0.5) / (doc_freq + 0.5))


class LexicalIndex:
    """One BM25 row per passage, `ids[row]` naming its passage."""

    def __init__(self, retriever, ids: list[str]) -> None:
        self.retriever = retriever  # LlamaIndex's BM25Retriever (its stemmer and tokenizer)
        self.bm25 = retriever.bm25
        self.ids = ids
        self.row = {pid: i for i, pid in enumerate(ids)}
        indptr = np.asarray(self.bm25.scores["indptr"])
        self.doc_freq = np.diff(indptr).astype(np.float64)
        self.n_docs = int(self.bm25.scores["num_docs"])
        self.vocab: dict[str, int] = self.bm25.vocab_dict

    @classmethod
    def build(cls, nodes: Sequence[TextNode]) -> LexicalIndex | None:
        """BM25 over the nodes' texts; None when there are none."""
        from llama_index.retrievers.bm25 import BM25Retriever

        if not nodes:
            return None
        try:
            with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 when no row has a word
                retriever = BM25Retriever.from_defaults(nodes=list(nodes), similarity_top_k=1)
        except ValueError:
            if _has_words(nodes):
                raise
            # Not one searchable word in any passage (only punctuation, numbers, stopwords):
            # bm25s cannot build an empty vocabulary, so every row gets the empty token,
            # which no question ever contains.
            retriever = BM25Retriever(existing_bm25=_wordless_bm25(len(nodes)),
                                      similarity_top_k=1)
        return cls(retriever, [n.id_ for n in nodes])

    def save(self, folder: Path) -> None:
        # The retriever would also save every node again as its corpus; the docstore already
        # holds them, so only the bm25s matrices and the row order go.
        self.bm25.save(str(folder / FOLDER))
        (folder / FOLDER / "ids.json").write_text(json.dumps(self.ids))

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        import bm25s
        from llama_index.retrievers.bm25 import BM25Retriever

        bm25 = bm25s.BM25.load(str(folder / FOLDER))
        ids = json.loads((folder / FOLDER / "ids.json").read_text())
        return cls(BM25Retriever(existing_bm25=bm25, similarity_top_k=1), ids)

    def tokenize(self, texts: Sequence[str], stopwords: Sequence[str] | None = None
                 ) -> list[list[str]]:
        """Texts as BM25 sees them (stemmed), less `stopwords`."""
        import bm25s

        if not texts:
            return []
        return bm25s.tokenize(
            list(texts),
            stemmer=self.retriever.stemmer,
            token_pattern=self.retriever.token_pattern,
            stopwords=list(stopwords) if stopwords is not None else None,
            return_ids=False,
            show_progress=False,
        )

    def idf(self, token: str) -> float:
        df = self.doc_freq[self.vocab[token]] if token in self.vocab else 0.0
        return float(bm25_idf(np.asarray(df), max(self.n_docs, 1)))

    def coverage(self, question: str) -> np.ndarray:
        """Coverage in [0, 1) of every row."""
        tokens = self.tokenize([question])[0]
        ids = self.bm25.get_tokens_ids(list(tokens)) if tokens else []
        if not ids:
            return np.zeros(len(self.ids))
        raw = self.bm25.get_scores_from_ids(ids)
        ceiling = float(bm25_idf(self.doc_freq[ids], self.n_docs).sum())
        return raw / ceiling if ceiling > 0 else np.zeros_like(raw)


def _has_words(nodes: Sequence[TextNode]) -> bool:
    """Whether BM25's tokenizer (as LlamaIndex's retriever sets it up) finds any word."""
    import bm25s

    tokens = bm25s.tokenize(
        [n.get_content() for n in nodes], stopwords="en", return_ids=False, show_progress=False
    )
    return any(tokens)


def _wordless_bm25(rows: int):
    import bm25s
    from bm25s.tokenization import Tokenized

    bm25 = bm25s.BM25()
    bm25.index(Tokenized(ids=[[0]] * rows, vocab={"": 0}), show_progress=False)
    return bm25
