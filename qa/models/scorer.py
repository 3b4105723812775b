"""The learned sentence scorer: the packaged all-MiniLM-L6-v2 with its top two encoder layers
fine-tuned on SQuAD questions and their answer sentences (bench/train_sentence_scorer.py; the
model card is qa/models/sentence_scorer/README.md). The reader takes its cosine of a question
with a sentence in place of the retrieval embedder's (`AnswerSettings.sentence_scorer`).

Only the two layers ship (float16 safetensors, 6.8 MiB). `assemble` writes the whole model, the
packaged one's files with those layers replaced, into the cache once, where torch is loaded
anyway (an index build, or the first question on a fresh cache); from then on it runs like the
query model, through its ONNX export and without torch (qa/models/embed.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
from filelock import FileLock

from qa.errors import QAError
from qa.models.embed import (
    QUERY_MODELS,
    Embedder,
    OnnxQueryEmbedder,
    SentenceTransformerEmbedder,
    model_path,
)
from qa.models.maxsim import Tokens
from qa.progress import say_made
from qa.settings import EmbedSettings

LAYERS = Path(__file__).resolve().parent / "sentence_scorer" / "top_layers.safetensors"
MAX_SEQ_LENGTH = 96  # as it was trained
DONE = "assembled.json"  # written last: a folder without it is not a model yet


def layers_digest(layers: Path = LAYERS) -> str:
    try:
        return hashlib.sha256(layers.read_bytes()).hexdigest()
    except OSError as error:
        raise QAError(f"the sentence scorer's layers cannot be read: {layers} "
                      f"({error.strerror}); reinstall qa") from None


def assemble(base: Path, layers: Path, out: Path, digest: str) -> None:
    """Write the sentence-transformers folder of `base` with the layers of `layers` in place of
    its own to `out`, whole or not at all."""
    import torch
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(base), device="cpu", local_files_only=True)
    state = {k: v.float() for k, v in load_file(str(layers)).items()}
    bert = model[0].auto_model
    known = set(bert.state_dict())
    if not state or not set(state) <= known:
        raise QAError(f"{layers} does not hold layers of {base}")
    bert.load_state_dict(state, strict=False)
    model.max_seq_length = MAX_SEQ_LENGTH
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with torch.no_grad():
            model.save(str(tmp))
        (tmp / DONE).write_text(json.dumps({"layers_sha256": digest, "base": str(base)}),
                                encoding="utf-8")
        # its export belongs to the folder it replaces: written again from this one
        onnx = out.with_suffix(".onnx")
        for stale in (onnx.with_name(onnx.name + ".json"), onnx):
            stale.unlink(missing_ok=True)
        aside = out.with_name(f".{out.name}.{os.getpid()}.old")
        if out.exists():
            os.replace(out, aside)  # a damaged one: moved aside whole, then removed
        os.replace(tmp, out)
        shutil.rmtree(aside, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _folder_lock(folder: Path) -> FileLock:
    """One process at a time makes a scorer (of any layers' version): another one waits, then
    finds it made."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder.with_name(".sentence-scorer.lock")))


class SentenceScorer:
    """The scorer as an `Embedder` of questions and sentences, made on first use (assembled,
    then exported to ONNX when `settings.query_runtime` is "onnx") or by `ensure`."""

    def __init__(self, settings: EmbedSettings, cache: Path, layers: Path = LAYERS) -> None:
        self.settings = settings
        self.cache = Path(cache)
        self.layers = layers
        self.name = "sentence-scorer"
        self._lock = threading.Lock()
        self._wrote = False

    @cached_property
    def dimension(self) -> int:
        """The packaged model's: only two of its layers are replaced."""
        return SentenceTransformerEmbedder(EmbedSettings(), model_path()).dimension

    @cached_property
    def digest(self) -> str:
        return layers_digest(self.layers)

    @cached_property
    def folder(self) -> Path:
        # named by the layers' digest: another release's layers get their own folder
        return self.cache / QUERY_MODELS / f"sentence-scorer-{self.digest[:12]}"

    def _assemble(self, again: bool = False) -> None:
        digest = self.digest
        try:
            done = json.loads((self.folder / DONE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            done = {}
        if again or done.get("layers_sha256") != digest:
            # what a process killed mid-way left (under the lock, no one else is writing)
            parent = self.folder.parent
            for left in [*parent.glob(".sentence-scorer-*.tmp"),
                         *parent.glob(".sentence-scorer-*.old")]:
                if left.is_dir():
                    shutil.rmtree(left, ignore_errors=True)
                else:
                    left.unlink(missing_ok=True)
            assemble(model_path(), self.layers, self.folder, digest)
            self._wrote = True

    def _load(self) -> Embedder:
        settings = EmbedSettings(model_name=str(self.folder),
                                 query_runtime=self.settings.query_runtime,
                                 query_threads=self.settings.query_threads)
        indexer = SentenceTransformerEmbedder(settings, self.folder)
        if self.settings.query_runtime != "onnx":
            return indexer
        embedder = OnnxQueryEmbedder(indexer, self.folder.with_suffix(".onnx"), label=None)
        self._wrote |= embedder.ensure_query_model()  # loads it; exports it when it must
        return embedder

    def _make(self) -> Embedder:
        self._assemble()
        try:
            return self._load()
        except Exception:  # a damaged assembled folder: made once more from the layers
            self._assemble(again=True)
            return self._load()

    @cached_property
    def _embedder(self) -> Embedder:
        with self._lock:
            if "_embedder" in self.__dict__:  # made by another thread meanwhile
                return self.__dict__["_embedder"]
            try:
                with _folder_lock(self.folder):
                    missing = not (self.folder / DONE).is_file()
                    start = time.monotonic()
                    made = self._make()
                    if self._wrote:
                        say_made("the sentence scorer", self.folder, missing,
                                 time.monotonic() - start)
                    return made
            except QAError:
                raise
            except Exception as error:  # a read-only or full cache, say: one line, not a trace
                raise QAError(f"the sentence scorer could not be made in {self.folder} "
                              f"({type(error).__name__}: {error}); run `qa index`") from error

    def ensure(self) -> bool:
        """Make it now (an index build does, so that no question waits for it); whether
        anything was written."""
        self._embedder  # noqa: B018
        wrote, self._wrote = self._wrote, False
        return wrote

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._embedder.count_tokens(texts)

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return self._embedder.encode_queries(texts)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embedder.encode_queries(texts)

    def encode_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[Tokens]]:
        return self._embedder.encode_tokens(texts)
