"""A question needs neither torch nor LlamaIndex; the query model's export is checked and
made again when it is missing or damaged, and that is said in one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

QUESTION = "What did Russia demand?"
RIGHT = "never admit Ukraine"


def run_qa(*args: str, cache) -> subprocess.CompletedProcess:
    env = {**os.environ, "QA_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "qa.faces.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=600)


def test_a_cold_question_imports_neither_torch_nor_llamaindex(seed_index_dir, cache):
    argv = ["ask", QUESTION, "--index", str(seed_index_dir)]
    code = (
        f"import sys; from qa.faces.cli import main; code = main({argv!r}); "
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers', "
        "'llama_index.core', 'bm25s') if m in sys.modules)); sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "QA_CACHE": str(cache)}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert RIGHT in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"


def made_again(err: str, path) -> list[str]:
    """The lines of stderr that say the export at `path` was made again."""
    return [line for line in err.splitlines()
            if line.startswith(f"qa: the query model export at {path} was ") and "made it" in line]


def without_query_model(seed_index_dir, seed_engine, cache, tmp_path) -> tuple[Path, Path]:
    """A copy of the seed index, and the path of its query model export, deleted from the
    test's cache."""
    index_dir = tmp_path / "index"
    shutil.copytree(seed_index_dir, index_dir)
    model = cache / "query-model" / seed_engine.embedder.onnx_file.name
    model.unlink()
    return index_dir, model


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_damaged_query_model_is_made_again_by_the_next_question(
        seed_index_dir, seed_engine, cache, tmp_path, damage):
    index_dir = tmp_path / "index"
    shutil.copytree(seed_index_dir, index_dir)
    model = cache / "query-model" / seed_engine.embedder.onnx_file.name  # this model's export
    if damage == "truncate":
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    else:
        model.unlink()
    mended = run_qa("ask", QUESTION, "--index", str(index_dir), cache=cache)
    assert mended.returncode == 0 and RIGHT in mended.stdout, mended.stderr
    assert len(made_again(mended.stderr, model)) == 1
    assert len(mended.stderr.strip().splitlines()) == 1, mended.stderr
    again = run_qa("ask", QUESTION, "--index", str(index_dir), cache=cache)
    assert again.returncode == 0 and RIGHT in again.stdout and again.stderr == ""


def test_qa_index_says_when_it_writes_the_query_model_again(seed_index_dir, seed_engine, cache,
                                                           tmp_path):
    index_dir, model = without_query_model(seed_index_dir, seed_engine, cache, tmp_path)
    done = run_qa("index", "--index", str(index_dir), cache=cache)
    assert done.returncode == 0, done.stderr
    assert len(made_again(done.stderr, model)) == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_two_processes_make_a_missing_query_model_once(seed_index_dir, seed_engine, cache,
                                                        tmp_path):
    index_dir, model = without_query_model(seed_index_dir, seed_engine, cache, tmp_path)
    env = {**os.environ, "QA_CACHE": str(cache)}
    runs = [subprocess.Popen([sys.executable, "-m", "qa.faces.cli", "ask", QUESTION, "--index",
                              str(index_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=ROOT, env=env) for _ in range(2)]
    done = [(*proc.communicate(timeout=600), proc.returncode) for proc in runs]
    for out, err, code in done:
        assert code == 0 and RIGHT in out, err
    assert sum(len(made_again(err, model)) for _, err, _ in done) == 1  # one made it
    assert not list(model.parent.glob("*.tmp"))  # and nothing was left half-written


def test_the_python_api_makes_a_missing_query_model_again(seed_index_dir, seed_engine, cache,
                                                          tmp_path, monkeypatch, capsys):
    from qa import Engine

    index_dir, model = without_query_model(seed_index_dir, seed_engine, cache, tmp_path)
    monkeypatch.setenv("QA_CACHE", str(cache))
    engine = Engine.open(sources=None, index_dir=index_dir)
    assert RIGHT in engine.retrieve(QUESTION, k=1)[0].text
    err = capsys.readouterr().err
    assert len(made_again(err, model)) == 1, err  # (besides the libraries' progress bars)
    assert len([line for line in err.splitlines() if line.startswith("qa: ")]) == 1, err
    assert RIGHT in engine.ask(QUESTION).text
    assert capsys.readouterr().err == ""
