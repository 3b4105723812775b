"""The embedder is a setting: the packaged MiniLM by default, any local sentence-transformers
folder otherwise; a change rebuilds the index."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, SEEDS

from qa import Engine
from qa.errors import QAError
from qa.models.embed import make_embedder, model_path
from qa.settings import EmbedSettings, Settings

QUESTION = "What did Russia demand?"


@pytest.fixture(scope="module")
def cls_model(tmp_path_factory):
    """Another local model: the packaged weights with [CLS] pooling instead of the mean."""
    folder = tmp_path_factory.mktemp("models") / "minilm-cls"
    shutil.copytree(model_path(), folder)
    pooling = folder / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    pooling.write_text(json.dumps(config))
    return folder


def test_a_local_model_folder_is_the_one_used(cls_model):
    packaged = make_embedder()
    other = make_embedder(EmbedSettings(model_name=str(cls_model)))
    assert other.dimension == packaged.dimension == 384
    a, b = packaged.encode_queries([QUESTION]), other.encode_queries([QUESTION])
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert float(a[0] @ b[0]) < 0.99  # another pooling, another vector


def test_changing_the_model_rebuilds_the_index(seed_index_dir, tmp_path, cls_model):
    index_dir = tmp_path / "index"
    shutil.copytree(seed_index_dir, index_dir)
    passages = len(Engine.open(sources=None, index_dir=index_dir).index)
    settings = Settings(embed=EmbedSettings(model_name=str(cls_model)))
    other = Engine.open(sources=[SEEDS], index_dir=index_dir, settings=settings)
    assert other.last_report.rebuilt and other.last_report.passages_embedded == passages
    assert other.retrieve(QUESTION, k=1)
    again = Engine.open(sources=[SEEDS], index_dir=index_dir, settings=settings)
    assert not again.last_report.changed  # built with this model now: nothing to redo
    back = Engine.open(sources=[SEEDS], index_dir=index_dir)
    assert back.last_report.rebuilt  # and the packaged model rebuilds it again


def test_an_unknown_model_is_one_clear_error(tmp_path):
    with pytest.raises(QAError, match="not the packaged .* nor a local sentence-transformers"):
        make_embedder(EmbedSettings(model_name=str(tmp_path / "nowhere")))


def test_the_cli_refuses_an_unknown_store_in_one_line(seed_index_dir):
    done = subprocess.run(
        [sys.executable, "-m", "qa.faces.cli", "ask", QUESTION, "--index", str(seed_index_dir),
         "--store", "bogus"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("qa: unknown vector store 'bogus'")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
