"""The embedding model's transformer as an ONNX file, so a question is embedded without torch.

`export` runs once, where torch and sentence-transformers are loaded anyway (the first index
build): it writes `<name>.onnx` atomically and `<name>.onnx.json` beside it, which records the
source model folder's identity, the export settings and the ONNX file's size and CRC-32.
`OnnxQueryEncoder` needs only onnxruntime, tokenizers and numpy: it tokenizes with the model's
own tokenizer.json (truncated at the model's max_seq_length, padded to the batch's longest),
runs the transformer, mean-pools over the attention mask and L2-normalises, as the
sentence-transformers pipeline does. A missing, damaged or stale file is a `QAError` naming the
file and the command that recreates it.

It imports neither torch nor sentence_transformers nor llama_index until `export` runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import QAError
from qa.models.maxsim import Tokens, tokens_of

FORMAT = 1  # of the .onnx.json; a change makes older exports stale
OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "last_hidden_state"
DEFAULT_RECREATE = "qa index --rebuild"
MIN_COSINE = 0.9999  # export checks its own output against sentence-transformers'
BATCH = 8  # texts per run, sorted by length
_HASHED_BELOW = 4 * 1024 * 1024  # source files smaller than this are hashed, larger ones stat'ed
_CHUNK = 1 << 20

# Checked at export: short, padded in a batch, and one far longer than any max_seq_length.
_PROBES = (
    "How many soldiers were massed near the frontier?", "x",
    "  Leading and trailing   spaces, ÜMLAUTS and accents: café naïve.  ",
    " ".join(["The committee reviewed every clause of the agreement before it signed."] * 60),
)


def metadata_path(onnx_file: Path) -> Path:
    """The JSON written beside an export: `model.onnx` -> `model.onnx.json`."""
    return onnx_file.with_name(onnx_file.name + ".json")


# ---- the source model's identity ---------------------------------------------------------------
def source_identity(model_folder: Path) -> dict[str, dict[str, Any]]:
    """Every file of the model folder that can change its vectors (hidden files and *.md
    excepted): size and mtime of each, and the SHA-256 of the small ones (configs, vocab,
    tokenizer). Large files (weights) are hashed only when their mtime changed; see `_stale`."""
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(model_folder.rglob("*")):
        rel = path.relative_to(model_folder)
        if any(part.startswith(".") for part in rel.parts) or path.suffix == ".md":
            continue
        if not path.is_file():
            continue
        stat = path.stat()
        entry: dict[str, Any] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        entry["sha256"] = _sha256(path)
        files[rel.as_posix()] = entry
    return files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stale(recorded: dict[str, dict[str, Any]], model_folder: Path) -> str | None:
    """Why the export no longer matches the model folder, or None. Cheap when nothing changed:
    one stat per file; a file whose size is the same but mtime differs (a reinstall) is
    hashed and compared."""
    current = {}
    for path in sorted(model_folder.rglob("*")):
        rel = path.relative_to(model_folder)
        if any(part.startswith(".") for part in rel.parts) or path.suffix == ".md":
            continue
        if path.is_file():
            current[rel.as_posix()] = path
    if set(current) != set(recorded):
        changed = sorted(set(current) ^ set(recorded))
        return f"the model folder's files changed ({', '.join(changed[:3])})"
    for name, path in current.items():
        want = recorded[name]
        stat = path.stat()
        if stat.st_size != want.get("size"):
            return f"{name} changed size"
        if stat.st_size < _HASHED_BELOW or stat.st_mtime_ns != want.get("mtime_ns"):
            if _sha256(path) != want.get("sha256"):
                return f"{name} changed"
    return None


# ---- export (torch) -----------------------------------------------------------------------------
def export(model_folder: Path, out: Path, model: Any = None) -> None:
    """Export the sentence-transformers model in `model_folder` to `out` (ONNX) and its
    `.onnx.json`. `model` may be that folder's SentenceTransformer already loaded (indexing has
    one); otherwise it is loaded here. The result is checked against sentence-transformers
    before it replaces anything: on failure nothing at `out` changes."""
    import warnings

    import torch

    model_folder = Path(model_folder).resolve()
    out = Path(out)
    if model is None:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(model_folder), device="cpu", local_files_only=True)
    layout = _layout(model, model_folder)
    tokenizer = _tokenizer(model_folder / layout["tokenizer"], layout["max_seq_length"])
    transformer = model[0].auto_model

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    # A batch of two lengths, so the traced graph holds a real padding mask.
    example = _batch(tokenizer.encode_batch(list(_PROBES[:2])))
    args = tuple(torch.from_numpy(example[name]) for name in INPUTS)
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}.{threading.get_ident()}"  # two threads may export one model
    tmp = out.with_name(f".{out.name}.{tag}.tmp")
    meta = metadata_path(out)
    try:
        was_training = transformer.training
        transformer.eval()
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the legacy exporter's and tracer's notes
                torch.onnx.export(
                    LastHiddenState(transformer),
                    args,
                    str(tmp),
                    input_names=list(INPUTS),
                    output_names=[OUTPUT],
                    dynamic_axes={n: {0: "batch", 1: "sequence"} for n in (*INPUTS, OUTPUT)},
                    opset_version=OPSET,
                    do_constant_folding=True,
                    dynamo=False,
                )
        finally:
            transformer.train(was_training)
        size, crc = _size_and_crc(tmp)
        record = {
            "format": FORMAT,
            "model_folder": str(model_folder),
            "source": source_identity(model_folder),
            "tokenizer": layout["tokenizer"],
            "max_seq_length": layout["max_seq_length"],
            "dimension": layout["dimension"],
            "pooling": "mean",
            "normalize": True,
            "inputs": list(INPUTS),
            "output": OUTPUT,
            "opset": OPSET,
            "exporter": "torch.onnx.export(dynamo=False)",
            "torch": torch.__version__,
            "onnx_size": size,
            "onnx_crc32": crc,
        }
        # Check the export against sentence-transformers before it replaces anything.
        encoder = OnnxQueryEncoder(tmp, model_folder, _record=record)
        expected = model.encode(list(_PROBES), normalize_embeddings=True, convert_to_numpy=True)
        cosines = np.sum(encoder.encode_queries(list(_PROBES)) * expected, axis=1)
        if float(cosines.min()) < MIN_COSINE:
            raise QAError(
                f"the ONNX export of {model_folder} disagrees with sentence-transformers "
                f"(cosine {float(cosines.min()):.5f}); it was not saved"
            )
        # The JSON goes first and comes back last: an .onnx without its JSON is never taken
        # for current, and the JSON's size and CRC catch an .onnx from another export.
        meta.unlink(missing_ok=True)
        os.replace(tmp, out)
        meta_tmp = meta.with_name(f".{meta.name}.{tag}.tmp")
        meta_tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
        os.replace(meta_tmp, meta)
    finally:
        tmp.unlink(missing_ok=True)


def _layout(model: Any, model_folder: Path) -> dict[str, Any]:
    """What the query path must reproduce of a SentenceTransformer: Transformer, mean Pooling,
    optionally Normalize (the query path always normalises, as `encode_queries` does)."""
    kinds = [type(module).__name__ for module in model]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        raise QAError(
            f"the embedding model in {model_folder} ({' -> '.join(kinds)}) cannot be exported "
            "for the ONNX query path: it needs Transformer -> mean Pooling [-> Normalize]"
        )
    pooling = model[1].get_config_dict()
    if pooling.get("pooling_mode") != "mean":
        raise QAError(
            f"the embedding model in {model_folder} pools by {pooling.get('pooling_mode')!r}; "
            "the ONNX query path supports mean pooling only"
        )
    subfolder = ""
    modules = model_folder / "modules.json"
    if modules.is_file():
        entries = json.loads(modules.read_text(encoding="utf-8"))
        subfolder = next(e["path"] for e in entries if e["type"].endswith("Transformer"))
    tokenizer = Path(subfolder, "tokenizer.json").as_posix()
    if not (model_folder / tokenizer).is_file():
        raise QAError(f"the embedding model in {model_folder} has no {tokenizer}")
    return {
        "tokenizer": tokenizer,
        "max_seq_length": int(model.max_seq_length),
        "dimension": int(pooling["embedding_dimension"]),
    }


def _size_and_crc(path: Path) -> tuple[int, int]:
    crc = 0
    with path.open("rb") as f:
        while chunk := f.read(8 * _CHUNK):
            crc = zlib.crc32(chunk, crc)
    return path.stat().st_size, crc


# ---- the query path (no torch) ------------------------------------------------------------------
def _tokenizer(path: Path, max_seq_length: int):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    # tokenizer.json may carry its own settings (MiniLM's: truncate and pad to 128): replace them
    tokenizer.enable_truncation(max_length=max_seq_length)
    pad_id = tokenizer.padding["pad_id"] if tokenizer.padding else 0
    pad_token = tokenizer.padding["pad_token"] if tokenizer.padding else "[PAD]"
    tokenizer.no_padding()
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)  # to the batch's longest
    return tokenizer


def _batch(encodings: list) -> dict[str, np.ndarray]:
    return {
        "input_ids": np.asarray([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.asarray([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.asarray([e.type_ids for e in encodings], dtype=np.int64),
    }


class OnnxQueryEncoder:
    """Unit float32 vectors of a question's few short texts, from an `export`ed file, with
    onnxruntime on `threads` threads (1: a question is short, and one thread is not slowed by
    the other core being busy)."""

    def __init__(
        self,
        onnx_file: Path,
        model_folder: Path,
        recreate_command: str = DEFAULT_RECREATE,
        threads: int = 1,
        verify: bool = True,
        _record: dict[str, Any] | None = None,
    ) -> None:
        """`model_folder` is the model it was exported from (its tokenizer.json is read, and
        its files are compared with the export's record: a changed model is a stale export).
        `verify` compares the file's CRC-32 with the one recorded at export (50-250 ms for the
        90 MB MiniLM, more on a busy machine), so a file damaged in place is an error, not
        wrong vectors; the size is compared either way."""
        self.onnx_file = Path(onnx_file)
        self.model_folder = Path(model_folder)
        self.recreate_command = recreate_command
        record = _record if _record is not None else self._read_record()
        self.dimension = int(record["dimension"])
        self.max_seq_length = int(record["max_seq_length"])
        self._check_onnx(record, verify and _record is None)
        self._session = self._open_session(str(self.onnx_file), threads)
        self._tokenizer = self._load_tokenizer(record)

    # -- loading; every failure is one line naming the file and the command -------------------
    def _fail(self, path: Path, problem: str) -> QAError:
        return QAError(f"{path}: {problem}; recreate it with: {self.recreate_command}")

    def _read_record(self) -> dict[str, Any]:
        meta = metadata_path(self.onnx_file)
        if not self.onnx_file.is_file():
            raise self._fail(self.onnx_file, "the ONNX query model is missing")
        try:
            record = json.loads(meta.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise self._fail(meta, "the ONNX query model's record is missing") from None
        except (OSError, ValueError) as error:
            raise self._fail(meta, f"unreadable ({type(error).__name__})") from None
        required = ("format", "source", "tokenizer", "max_seq_length", "dimension",
                    "onnx_size", "onnx_crc32", "inputs", "output")
        if not isinstance(record, dict) or any(key not in record for key in required):
            raise self._fail(meta, "not an ONNX query model record")
        if record["format"] != FORMAT or record["inputs"] != list(INPUTS):
            raise self._fail(meta, f"written in another format ({record['format']!r})")
        try:
            why = _stale(record["source"], self.model_folder)
        except OSError as error:
            why = f"the model folder cannot be read ({error.strerror})"
        if why is not None:
            raise self._fail(
                self.onnx_file, f"exported from another version of {self.model_folder}: {why}"
            )
        return record

    def _check_onnx(self, record: dict[str, Any], verify: bool) -> None:
        try:
            size = self.onnx_file.stat().st_size
            if size != record["onnx_size"]:
                raise self._fail(
                    self.onnx_file, f"damaged: {size} bytes, {record['onnx_size']} were written"
                )
            if verify and _size_and_crc(self.onnx_file)[1] != record["onnx_crc32"]:
                raise self._fail(self.onnx_file, "damaged: its checksum differs from the export's")
        except FileNotFoundError:
            raise self._fail(self.onnx_file, "the ONNX query model is missing") from None
        except OSError as error:
            raise self._fail(self.onnx_file, f"unreadable ({error.strerror})") from None

    def _open_session(self, path: str, threads: int):
        # onnxruntime 1.32 writes a device id under ~/.cache/Microsoft on import and can send
        # telemetry; qa keeps everything on the machine (before its first import, or it is late)
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 4  # ORT's own log lines would duplicate the QAError
        try:
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own Fail/InvalidProtobuf/...
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise self._fail(
                self.onnx_file, f"not a loadable ONNX model ({type(error).__name__}: {first[:160]})"
            ) from None
        names = [i.name for i in session.get_inputs()]
        outputs = session.get_outputs()
        width = outputs[0].shape[-1] if outputs and outputs[0].shape else None
        if (
            sorted(names) != sorted(INPUTS)
            or [o.name for o in outputs] != [OUTPUT]
            or (isinstance(width, int) and width != self.dimension)
        ):
            raise self._fail(self.onnx_file, "not the exported query model (inputs or outputs)")
        return session

    def _load_tokenizer(self, record: dict[str, Any]):
        path = self.model_folder / record["tokenizer"]
        try:
            return _tokenizer(path, self.max_seq_length)
        except Exception as error:  # tokenizers raises plain Exception for a bad file
            first = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
            raise QAError(
                f"{path}: the embedding model's tokenizer cannot be read "
                f"({type(error).__name__}: {first})"
            ) from None

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Unit float32 vectors, shape (len(texts), dimension); texts of like length run together
        (one batch padded to the longest took 1.2 s for a question's 32 SciFact sentences)."""
        return self.encode_tokens(texts, with_tokens=False)[0]

    def encode_tokens(self, texts: Sequence[str], with_tokens: bool = True
                      ) -> tuple[np.ndarray, list[Tokens]]:
        """`encode_queries`' vectors and each text's token vectors, from the same run."""
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        tokens: list[Tokens] = [None] * len(texts)  # type: ignore[list-item]
        lengths = [sum(e.attention_mask) for e in self._tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        for start in range(0, len(order), BATCH):
            rows = order[start : start + BATCH]
            batch = self._tokenizer.encode_batch([texts[i] for i in rows])  # padded to its own
            vectors[rows], hidden = self._run(batch)
            for i, h, e in zip(rows, hidden, batch) if with_tokens else ():
                tokens[i] = tokens_of(h, e)
        return vectors, tokens

    def _run(self, encodings: list) -> tuple[np.ndarray, np.ndarray]:
        feed = _batch(encodings)
        (hidden,) = self._session.run([OUTPUT], feed)
        mask = feed["attention_mask"][:, :, None].astype(np.float32)
        summed = (hidden * mask).sum(axis=1)
        pooled = summed / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None), hidden
