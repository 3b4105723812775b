"""A question needs neither torch nor LlamaIndex; the query model's export is checked and
repaired like the index."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

QUESTION = "What did Russia demand?"
RIGHT = "never admit Ukraine"


def run_qa(*args: str, cache) -> subprocess.CompletedProcess:
    env = {**os.environ, "QA_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=600)


def test_a_cold_question_imports_neither_torch_nor_llamaindex(seed_index_dir, cache):
    argv = ["ask", QUESTION, "--index", str(seed_index_dir)]
    code = (
        f"import sys; from qa.cli import main; code = main({argv!r}); "
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers', "
        "'llama_index.core', 'bm25s') if m in sys.modules)); sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "QA_CACHE": str(cache)}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert RIGHT in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_damaged_query_model_is_one_line_and_qa_index_repairs_it(
        seed_index_dir, seed_engine, cache, tmp_path, damage):
    index_dir = tmp_path / "index"
    shutil.copytree(seed_index_dir, index_dir)
    model = cache / "query-model" / seed_engine.embedder.onnx_file.name  # this model's export
    if damage == "truncate":
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    else:
        model.unlink()
    broken = run_qa("ask", QUESTION, "--index", str(index_dir), cache=cache)
    assert broken.returncode == 1
    assert broken.stderr.startswith("qa: ") and len(broken.stderr.strip().splitlines()) == 1
    assert str(model) in broken.stderr and "Traceback" not in broken.stderr
    assert f"`qa index --index {index_dir}`" in broken.stderr
    repaired = run_qa("index", "--index", str(index_dir), cache=cache)
    assert repaired.returncode == 0, repaired.stderr
    again = run_qa("ask", QUESTION, "--index", str(index_dir), cache=cache)
    assert again.returncode == 0 and RIGHT in again.stdout
