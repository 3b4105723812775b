"""The answer step's sentence vectors, kept by text: `SentenceVectors` over one `Embedder`
(the retrieval embedder's, or the learned sentence scorer's)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from qa.models.embed import Embedder
from qa.models.maxsim import Tokens


class SentenceVectors:
    """Sentence embeddings kept by text (an LRU), so a passage is embedded once per session,
    and the token vectors of the last `token_capacity` texts embedded (`Tokens`, from the same
    model run; none at 0). Questions asked at the same time share them; the model runs outside
    the lock."""

    def __init__(self, embedder: Embedder, capacity: int, token_capacity: int = 1024) -> None:
        self.embedder = embedder
        self.capacity = capacity
        self.token_capacity = token_capacity
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._tokens: OrderedDict[str, Tokens] = OrderedDict()
        self._lock = threading.Lock()

    def _run(self, texts: list[str]) -> np.ndarray:
        """Vectors of `texts`, keeping their token vectors when the embedder gives them."""
        if self.token_capacity <= 0 or not hasattr(self.embedder, "encode_tokens"):
            return self.embedder.encode_queries(texts)
        vectors, tokens = self.embedder.encode_tokens(texts)
        self._keep_tokens(texts, tokens)
        return vectors

    def _keep_tokens(self, texts: Sequence[str], tokens: Sequence[Tokens]) -> None:
        with self._lock:
            for text, t in zip(texts, tokens):
                self._tokens[text] = t
                self._tokens.move_to_end(text)
            while len(self._tokens) > self.token_capacity:
                self._tokens.popitem(last=False)

    def tokens(self, texts: Sequence[str]) -> list[Tokens] | None:
        """The `Tokens` of each text (kept, or from one model run); None when the embedder
        gives no token vectors."""
        if not hasattr(self.embedder, "encode_tokens"):
            return None
        with self._lock:
            known = {t: self._tokens[t] for t in texts if t in self._tokens}
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:  # (sentences whose vectors were cached but whose tokens were not)
            found = self.embedder.encode_tokens(missing)[1]
            self._keep_tokens(missing, found)
            known.update(zip(missing, found))
        return [known[t] for t in texts]

    def encode(
        self, queries: Sequence[str], sentences: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of the queries (never cached) and of the sentences, in one model call."""
        with self._lock:
            known = {s: self._cache[s] for s in sentences if s in self._cache}
        missing = list(dict.fromkeys(s for s in sentences if s not in known))
        vectors = self._run([*queries, *missing])
        known.update(zip(missing, vectors[len(queries):]))
        with self._lock:
            for text in dict.fromkeys(sentences):
                self._cache[text] = known[text]
                self._cache.move_to_end(text)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        found = np.asarray([known[s] for s in sentences]).reshape(-1, self.embedder.dimension)
        return vectors[: len(queries)], found
