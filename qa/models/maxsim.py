"""Word-by-word match of a question with a sentence, from the embedder's token vectors.

One pooled cosine cannot show that a word the question hinges on ("parental" leave, "money"
in the package) has no counterpart in a sentence that is otherwise on its topic. The token
vectors can (late interaction, as in ColBERT, over the frozen model's last hidden states): for
each word of the question that counts (not a stopword, holding a letter or digit), the best
cosine of its tokens with any token of the sentence, averaged over the word's pieces.
`SentenceVectors` (qa/models/sentence_vectors.py) keeps the token vectors from the run that embeds
the sentences.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tokens:
    """A text's contextual token vectors (the model's last hidden state, each of unit length;
    special tokens and padding left out), with each token's word number and character span."""

    vectors: np.ndarray  # (tokens, dimension) float16
    words: np.ndarray  # (tokens,) int32
    spans: np.ndarray  # (tokens, 2) int32


def tokens_of(hidden: np.ndarray, encoding) -> Tokens:
    """`Tokens` from one text's hidden states and its `tokenizers` encoding (of no more tokens
    than `hidden` has rows)."""
    keep = [i for i, (w, m) in enumerate(zip(encoding.word_ids, encoding.attention_mask))
            if m and w is not None and i < len(hidden)]
    vecs = hidden[keep]
    vecs = vecs / np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
    return Tokens(vecs.astype(np.float16), np.asarray([encoding.word_ids[i] for i in keep],
                                                     dtype=np.int32),
                  np.asarray([encoding.offsets[i] for i in keep], dtype=np.int32).reshape(-1, 2))


@dataclass(frozen=True)
class QuestionWords:
    """The question's words that count: their tokens' vectors and IDF weights."""

    vectors: np.ndarray  # (tokens, dimension) float32
    word_of: np.ndarray  # (tokens,) which word (0 .. words - 1)
    weights: np.ndarray  # (words,) summing to 1

    @property
    def empty(self) -> bool:
        return not len(self.weights)


def content_words(text: str, tokens: Tokens, stopwords: frozenset[str]
                  ) -> list[tuple[str, np.ndarray]]:
    """The words of `text` (its `tokens`) that count, each with its token rows."""
    out = []
    for w in np.unique(tokens.words):
        rows = np.flatnonzero(tokens.words == w)
        word = text[tokens.spans[rows, 0].min() : tokens.spans[rows, 1].max()]
        if any(ch.isalnum() for ch in word) and word.lower() not in stopwords:
            out.append((word, rows))
    return out


def question_words(tokens: Tokens, words: list[tuple[str, np.ndarray]],
                   idf: list[float]) -> QuestionWords:
    """`words` (`content_words`) weighted by their `idf`, with a small floor so that a word the
    index cannot weigh still counts."""
    weights = np.asarray([max(x, 0.0) + 1e-3 for x in idf], dtype=np.float32)
    rows = np.concatenate([r for _, r in words]) if words else np.zeros(0, dtype=np.int64)
    word_of = np.concatenate([np.full(len(r), i) for i, (_, r) in enumerate(words)]
                             ) if words else np.zeros(0, dtype=np.int64)
    return QuestionWords(tokens.vectors[rows].astype(np.float32), word_of.astype(np.int64),
                         weights / (weights.sum() or 1.0))


def word_maxima(question: QuestionWords, sentence: Tokens) -> np.ndarray:
    """Per word of the question: its tokens' best cosine with a token of the sentence, averaged
    over its pieces (0 for an empty sentence)."""
    if question.empty or not len(sentence.vectors):
        return np.zeros(len(question.weights), dtype=np.float32)
    best = (question.vectors @ sentence.vectors.astype(np.float32).T).max(axis=1)
    counts = np.bincount(question.word_of, minlength=len(question.weights))
    return (np.bincount(question.word_of, weights=best, minlength=len(question.weights))
            / np.maximum(counts, 1)).astype(np.float32)
