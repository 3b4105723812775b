"""The query path's ONNX model: the same vectors as sentence-transformers, without torch, and a
clear one-line error for a missing, damaged or stale export."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SEEDS

from qa.errors import QAError
from qa.models.embed import SentenceTransformerEmbedder, model_path
from qa.models.onnx_model import OnnxQueryEncoder, export, metadata_path
from qa.settings import EmbedSettings

MIN_COSINE = 0.9999
MAX_SEQ_LENGTH = 256
COMMAND = "qa index --rebuild  # test"  # not the default: the message must carry the argument
SCIFACT = next(
    (
        base / "shared" / "bench" / "scifact"
        for base in (ROOT.parent, ROOT.parent.parent)
        if (base / "shared" / "bench" / "scifact" / "corpus.jsonl").is_file()
    ),
    None,
)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _real_texts() -> list[str]:
    """A few hundred real texts: the seed document's sentences, the seed and SQuAD questions,
    SQuAD paragraphs (dozens longer than 256 word pieces) and, where shared/ is beside the
    checkout, SciFact claims and abstracts."""
    texts = []
    for path in sorted(SEEDS.glob("*.txt")):
        body = path.read_text(encoding="utf-8")
        texts += [s.strip() for s in re.split(r"(?<=[.!?”])\s+|\n+", body) if len(s.split()) >= 3]
    texts += [row["question"] for row in _jsonl(ROOT / "eval" / "seed.jsonl")]
    squad = ROOT / "eval" / "squad"
    texts += [row["text"] for row in _jsonl(squad / "fit" / "queries.jsonl")[:120]]
    texts += [row["text"] for row in _jsonl(squad / "validation" / "queries.jsonl")[:60]]
    paragraphs = [
        *_jsonl(squad / "fit" / "corpus.jsonl"), *_jsonl(squad / "validation" / "corpus.jsonl")
    ]
    by_length = sorted(paragraphs, key=lambda row: len(row["text"]), reverse=True)
    texts += [row["text"] for row in by_length[:40]]  # the longest: truncation
    texts += [row["text"] for row in paragraphs[::40]]  # and some of every length
    if SCIFACT is not None:
        texts += [row["text"] for row in _jsonl(SCIFACT / "queries_test.jsonl")[:60]]
        texts += [row["text"] for row in _jsonl(SCIFACT / "corpus.jsonl")[:30]]
    return list(dict.fromkeys(texts))


@pytest.fixture(scope="module")
def st_model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_path()), device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """The packaged model exported once, as the first index build does (loading its own)."""
    out = tmp_path_factory.mktemp("onnx") / "minilm.onnx"
    export(model_path(), out)
    return out


@pytest.fixture(scope="module")
def encoder(exported) -> OnnxQueryEncoder:
    return OnnxQueryEncoder(exported, model_path(), recreate_command=COMMAND)


def _word_pieces(texts: list[str]) -> list[int]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_path() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return [len(e.ids) for e in tokenizer.encode_batch(texts)]


def test_export_writes_the_model_and_its_record(exported):
    record = json.loads(metadata_path(exported).read_text(encoding="utf-8"))
    weights = model_path() / "model.safetensors"
    assert record["source"]["model.safetensors"]["size"] == weights.stat().st_size
    tokenizer = model_path() / "tokenizer.json"
    assert record["source"]["tokenizer.json"]["size"] == tokenizer.stat().st_size
    assert record["model_folder"] == str(model_path().resolve())
    assert (record["max_seq_length"], record["dimension"], record["pooling"]) == (256, 384, "mean")
    assert record["onnx_size"] == exported.stat().st_size > 50_000_000
    assert sorted(p.name for p in exported.parent.iterdir()) == ["minilm.onnx", "minilm.onnx.json"]


def test_onnx_vectors_match_sentence_transformers(encoder, st_model):
    texts = _real_texts()
    lengths = _word_pieces(texts)
    assert len(texts) >= 300
    assert sum(n > MAX_SEQ_LENGTH for n in lengths) >= 20  # truncation is exercised
    expected = st_model.encode(texts, batch_size=32, normalize_embeddings=True)
    batches = [texts[i : i + 20] for i in range(0, len(texts), 20)]
    got = np.concatenate([encoder.encode_queries(batch) for batch in batches])
    assert got.shape == (len(texts), 384) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(got * expected, axis=1)
    worst = int(np.argmin(cosines))
    assert cosines.min() >= MIN_COSINE, (
        f"cosine {cosines[worst]:.6f} for text {worst} ({lengths[worst]} word pieces): "
        f"{texts[worst][:80]!r}"
    )


def test_token_vectors_match_sentence_transformers(encoder, st_model):
    # The answer step matches the question's words token by token (qa/models/maxsim.py) with the
    # token vectors of the run that embeds the sentences: the ONNX path and the torch path
    # (a model without an export) must give the same, truncated alike, special tokens out.
    texts = _real_texts()[:80] + sorted(_real_texts(), key=len)[-5:]
    torch_path = SentenceTransformerEmbedder(EmbedSettings(), model_path())
    torch_path.__dict__["model"] = st_model  # the same model, loaded once
    want_pooled, want = torch_path.encode_tokens(texts)
    got_pooled, got = encoder.encode_tokens(texts)
    assert np.sum(got_pooled * want_pooled, axis=1).min() >= MIN_COSINE
    assert np.allclose(got_pooled, encoder.encode_queries(texts), atol=1e-6)
    for text, a, b in zip(texts, got, want):
        assert len(a.vectors) == len(b.vectors) <= MAX_SEQ_LENGTH - 2
        assert np.array_equal(a.words, b.words) and np.array_equal(a.spans, b.spans)
        assert a.vectors.dtype == np.float16 and a.vectors.shape[1] == 384
        rows = np.sum(a.vectors.astype(np.float32) * b.vectors.astype(np.float32), axis=1)
        assert rows.min() >= 0.995, text[:80]
    (x,) = encoder.encode_tokens(["x"])[1]
    assert len(x.vectors) == 1 and x.spans.tolist() == [[0, 1]]  # no [CLS], no [SEP]


def test_padding_in_a_batch_does_not_change_a_vector(encoder):
    texts = _real_texts()
    lengths = _word_pieces(texts)
    short = texts[lengths.index(min(lengths))]
    long = texts[lengths.index(max(lengths))]
    alone = encoder.encode_queries([short])[0]
    padded = encoder.encode_queries([short, long])[0]  # padded to 256
    assert float(alone @ padded) >= 0.99999
    assert float(alone @ encoder.encode_queries([long])[0]) < 0.9  # different texts differ


def test_empty_input_and_dimension(encoder):
    assert encoder.dimension == 384
    assert encoder.encode_queries([]).shape == (0, 384)


def test_the_query_path_imports_no_torch(exported, encoder):
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from qa.models.embed import model_path\n"
        "from qa.models.onnx_model import OnnxQueryEncoder\n"
        f"e = OnnxQueryEncoder(Path({str(exported)!r}), model_path())\n"
        "v = e.encode_queries(['Where did Biden meet his generals?'])\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'sentence_transformers', 'llama_index', 'transformers'})\n"
        "print(json.dumps({'heavy': heavy, 'vector': v[0].tolist()}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    here = encoder.encode_queries(["Where did Biden meet his generals?"])[0]
    assert np.allclose(result["vector"], here, atol=1e-6)


def _copy(exported: Path, folder: Path) -> Path:
    folder.mkdir()
    shutil.copyfile(exported, folder / exported.name)
    shutil.copyfile(metadata_path(exported), metadata_path(folder / exported.name))
    return folder / exported.name


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _garbage(path: Path) -> Path:
    path.write_bytes(os.urandom(path.stat().st_size))  # the same size: the CRC catches it
    return path


def _flip_middle(path: Path) -> Path:
    with path.open("r+b") as f:  # inside the weights: protobuf would still parse
        f.seek(path.stat().st_size // 2)
        f.write(os.urandom(4096))
    return path


def _delete(path: Path) -> Path:
    path.unlink()
    return path


def _garbage_record(path: Path) -> Path:
    record = metadata_path(path)
    record.write_bytes(b"\x00\xffnot json")
    return record


def _delete_record(path: Path) -> Path:
    return _delete(metadata_path(path))


@pytest.mark.parametrize(
    "damage", [_truncate, _garbage, _flip_middle, _delete, _garbage_record, _delete_record]
)
def test_a_damaged_file_is_one_line_naming_it_and_the_command(exported, tmp_path, damage):
    onnx_file = _copy(exported, tmp_path / "copy")
    OnnxQueryEncoder(onnx_file, model_path())  # the copy itself is fine
    damaged = damage(onnx_file)
    with pytest.raises(QAError) as caught:
        OnnxQueryEncoder(onnx_file, model_path(), recreate_command=COMMAND)
    message = str(caught.value)
    assert "\n" not in message
    assert str(damaged) in message and COMMAND in message


def test_without_the_checksum_onnxruntime_errors_are_one_line_too(exported, tmp_path):
    onnx_file = _garbage(_copy(exported, tmp_path / "copy"))
    with pytest.raises(QAError) as caught:
        OnnxQueryEncoder(onnx_file, model_path(), recreate_command=COMMAND, verify=False)
    message = str(caught.value)
    assert "\n" not in message and str(onnx_file) in message and COMMAND in message
    assert "not a loadable ONNX model" in message


def test_an_export_of_another_model_version_is_stale(exported, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(model_path(), folder, copy_function=shutil.copyfile)  # new mtimes
    # the same content elsewhere (a reinstall): still current, and the same vectors
    same = OnnxQueryEncoder(exported, folder)
    original = OnnxQueryEncoder(exported, model_path())
    question = ["How many American soldiers could be sent?"]
    assert np.allclose(same.encode_queries(question), original.encode_queries(question))
    config = folder / "config.json"
    config.write_text(config.read_text().replace('"hidden_act"', '"hidden_act" '))
    with pytest.raises(QAError) as caught:
        OnnxQueryEncoder(exported, folder, recreate_command=COMMAND)
    assert "config.json changed" in str(caught.value) and COMMAND in str(caught.value)


def test_a_failed_export_leaves_the_previous_one(exported, st_model, tmp_path, monkeypatch):
    import qa.models.onnx_model

    onnx_file = _copy(exported, tmp_path / "copy")
    before = {p.name: p.read_bytes() for p in onnx_file.parent.iterdir()}
    monkeypatch.setattr(qa.models.onnx_model, "MIN_COSINE", 1.5)  # no export can pass its own check
    with pytest.raises(QAError, match="disagrees with sentence-transformers"):
        export(model_path(), onnx_file, model=st_model)
    after = {p.name: p.read_bytes() for p in onnx_file.parent.iterdir()}
    assert after == before  # no temporary file left, nothing replaced
    OnnxQueryEncoder(onnx_file, model_path())
