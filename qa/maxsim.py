"""Word-by-word match of a question with a sentence, from the embedder's token vectors.

One pooled cosine cannot show that a word the question hinges on ("parental" leave, "money"
in the package) has no counterpart in a sentence that is otherwise on its topic. The token
vectors can (late interaction, as in ColBERT, over the frozen model's last hidden states): for
each word of the question that counts (not a stopword, holding a letter or digit), the best
cosine of its tokens with any token of the sentence, averaged over the word's pieces.
`SentenceVectors` keeps the token vectors from the run that embeds the sentences.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from qa.embed import Tokens


@dataclass(frozen=True)
class QuestionWords:
    """The question's words that count: their tokens' vectors and IDF weights."""

    vectors: np.ndarray  # (tokens, dimension) float32
    word_of: np.ndarray  # (tokens,) which word (0 .. words - 1)
    weights: np.ndarray  # (words,) summing to 1

    @property
    def empty(self) -> bool:
        return not len(self.weights)


def question_words(text: str, tokens: Tokens, stopwords: frozenset[str],
                   idf: Callable[[str], float]) -> QuestionWords:
    """The words of `text` (its `tokens`) that count, each weighted by `idf` (a small floor,
    so a word the index cannot weigh still counts)."""
    rows: list[int] = []
    word_of: list[int] = []
    weights: list[float] = []
    for w in np.unique(tokens.words):
        mine = np.flatnonzero(tokens.words == w)
        word = text[tokens.spans[mine, 0].min() : tokens.spans[mine, 1].max()]
        if any(ch.isalnum() for ch in word) and word.lower() not in stopwords:
            rows.extend(mine)
            word_of.extend([len(weights)] * len(mine))
            weights.append(max(idf(word), 0.0) + 1e-3)
    total = sum(weights) or 1.0
    return QuestionWords(tokens.vectors[rows].astype(np.float32), np.asarray(word_of, np.int64),
                         np.asarray(weights, dtype=np.float32) / total)


def word_maxima(question: QuestionWords, sentence: Tokens) -> np.ndarray:
    """Per word of the question: its tokens' best cosine with a token of the sentence, averaged
    over its pieces (0 for an empty sentence)."""
    if question.empty or not len(sentence.vectors):
        return np.zeros(len(question.weights), dtype=np.float32)
    best = (question.vectors @ sentence.vectors.astype(np.float32).T).max(axis=1)
    counts = np.bincount(question.word_of, minlength=len(question.weights))
    return (np.bincount(question.word_of, weights=best, minlength=len(question.weights))
            / np.maximum(counts, 1)).astype(np.float32)
