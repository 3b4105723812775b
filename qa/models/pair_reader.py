"""The learned reader: a MiniLM cross-encoder that reads a question and a candidate sentence
together (after the sentence before it, as context) and gives the probability that the sentence
answers the question, and the words inside it that do (the key phrase).

Trained by bench/train_reader.py on SQuAD fit articles (model card: qa/models/reader/README.md)
and shipped as an int8 ONNX file run by onnxruntime: no torch on the question path.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.errors import QAError

FOLDER = Path(__file__).resolve().parent / "reader"
OUTPUTS = ("answer_logit", "start_logits", "end_logits")


@dataclass
class Encoded:
    """One pair as the model reads it; `first` is the sentence's first token, `offsets` its
    tokens' character spans inside the sentence."""

    ids: list[int]
    types: list[int]
    first: int
    offsets: list[tuple[int, int]]


class PairEncoder:
    """`[CLS] question [SEP] (previous sentence [SEP]) sentence [SEP]`: the question cut to
    `max_question` tokens, the sentence to what is left, the context's tail kept when at least
    `min_context` tokens of it fit; the layout the reader was trained with."""

    def __init__(self, tokenizer_file: Path, max_length: int = 96, max_question: int = 32,
                 min_context: int = 4, context: bool = True) -> None:
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(tokenizer_file))
        self.tok.no_truncation()
        self.tok.no_padding()
        self.cls, self.sep = self.tok.token_to_id("[CLS]"), self.tok.token_to_id("[SEP]")
        self.max_length, self.max_question = max_length, max_question
        self.min_context, self.context = min_context, context

    def __call__(self, question: str, before: str, sentence: str) -> Encoded:
        eq, es = (self.tok.encode(t, add_special_tokens=False) for t in (question, sentence))
        qi = eq.ids[: self.max_question]
        room = self.max_length - 3 - len(qi)
        si, so = es.ids[:room], es.offsets[:room]
        left = room - len(si) - 1
        ci = (self.tok.encode(before, add_special_tokens=False).ids
              if self.context and before else [])
        ci = ci[-left:] if left >= self.min_context else []  # the tail, nearest the sentence
        head = [self.cls, *qi, self.sep]
        body = [*ci, self.sep] if ci else []
        ids = head + body + si + [self.sep]
        return Encoded(ids, [0] * len(head) + [1] * (len(ids) - len(head)),
                       len(head) + len(body), list(so))


@dataclass(frozen=True)
class PairReading:
    """What the reader makes of one sentence: the probability that it answers the question, and
    the key phrase's character span inside the sentence."""

    probability: float
    phrase: tuple[int, int]


class PairReader:
    """The exported reader in `folder` (reader.onnx, reader.json, tokenizer.json)."""

    def __init__(self, folder: Path = FOLDER, threads: int = 1) -> None:
        self.folder = Path(folder)
        config = self.folder / "reader.json"
        try:
            record = json.loads(config.read_text(encoding="utf-8"))
            self.max_span = int(record["max_span_tokens"])
            self.encoder = PairEncoder(self.folder / record["tokenizer"], int(record["max_length"]),
                                       int(record["max_question_tokens"]),
                                       int(record["min_context_tokens"]), bool(record["context"]))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise QAError(f"{config}: the reader's record cannot be read "
                          f"({type(error).__name__}); reinstall qa") from None
        except Exception as error:  # tokenizers raises plain Exception for a bad file
            raise QAError(f"{self.folder}: the reader's tokenizer cannot be read "
                          f"({type(error).__name__}); reinstall qa") from None
        self._session = self._open(self.folder / "reader.onnx", threads, record)

    @staticmethod
    def _open(path: Path, threads: int, record: dict):
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # as onnx_model.py, before import
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 4
        try:
            if path.stat().st_size != record.get("onnx_size"):
                raise QAError(f"{path}: damaged ({path.stat().st_size} bytes, "
                              f"{record.get('onnx_size')} were written); reinstall qa")
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except OSError as error:
            raise QAError(f"{path}: the reader cannot be read ({error.strerror}); "
                          "reinstall qa") from None
        except QAError:
            raise
        except Exception as error:  # onnxruntime raises its own Fail/InvalidProtobuf/...
            raise QAError(f"{path}: not a loadable reader ({type(error).__name__}); "
                          "reinstall qa") from None
        if tuple(o.name for o in session.get_outputs()) != OUTPUTS:
            raise QAError(f"{path}: not the exported reader (outputs); reinstall qa")
        return session

    def read(self, question: str, pairs: Sequence[tuple[str, str]]) -> list[PairReading]:
        """Each (sentence before, sentence) as an answer to `question`, in one model call."""
        if not pairs:
            return []
        encoded = [self.encoder(question, before, sentence) for before, sentence in pairs]
        n = max(len(e.ids) for e in encoded)
        ids = np.zeros((len(encoded), n), dtype=np.int64)
        types, mask = np.zeros_like(ids), np.zeros_like(ids)
        for r, e in enumerate(encoded):
            ids[r, : len(e.ids)], types[r, : len(e.ids)], mask[r, : len(e.ids)] = (
                e.ids, e.types, 1)
        logit, start, end = self._session.run(
            list(OUTPUTS), {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        probability = 1.0 / (1.0 + np.exp(-np.clip(logit.reshape(-1), -50, 50)))
        return [PairReading(float(p), self.phrase(s, t, e))
                for p, s, t, e in zip(probability, start, end, encoded)]

    def phrase(self, start: np.ndarray, end: np.ndarray, e: Encoded) -> tuple[int, int]:
        """The character span in the sentence of the best start <= end within `max_span`
        tokens."""
        n = len(e.offsets)
        if not n:
            return (0, 0)
        s, t = start[e.first : e.first + n], end[e.first : e.first + n]
        score = s[:, None] + t[None, :]
        k = np.arange(n)
        score[(k[None, :] < k[:, None]) | (k[None, :] - k[:, None] >= self.max_span)] = -np.inf
        i, j = np.unravel_index(int(np.argmax(score)), score.shape)
        return e.offsets[i][0], e.offsets[j][1]


_shipped: dict[Path, PairReader] = {}
_lock = threading.Lock()


def shipped(folder: Path = FOLDER) -> PairReader:
    """The reader in `folder`, loaded once per process (qa's own by default)."""
    with _lock:
        if folder not in _shipped:
            _shipped[folder] = PairReader(folder)
        return _shipped[folder]
