"""The real `qa` command in its own process: killed mid-build, two writers, one-line errors."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, SEEDS
from filelock import FileLock, Timeout
from make_files import GOOD_TEXT, write_corpus

from qa import Engine
from qa.errors import IndexLocked
from qa.settings import Settings

QUESTION = "What did Russia demand?"
WAIT = 600  # seconds at most for a step of a subprocess on a busy machine


def qa(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "qa.faces.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def wait_for(condition, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"`qa index` ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.001)


def lock_is_held(index_dir: Path) -> bool:
    lock = FileLock(str(index_dir / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def segments(index_dir: Path) -> list[str]:
    """The segment folders on disk of the live generation."""
    generation = index_dir / (index_dir / "CURRENT").read_text().strip()
    return sorted(p.name for p in (generation / "segments").iterdir() if p.is_dir())


def snapshot(engine: Engine) -> dict:
    return {
        "documents": {d: (e.hash, e.passages) for d, e in engine.index.documents.items()},
        "ranking": [(p.id, round(p.score, 6)) for p in engine.retrieve(QUESTION, k=5)],
    }


@pytest.fixture
def seed_index_copy(seed_index_dir, tmp_path) -> Path:
    copy = tmp_path / "index"
    shutil.copytree(seed_index_dir, copy)
    return copy


@pytest.mark.parametrize("moment", ["embedding", "writing"])
def test_sigkill_mid_build_leaves_the_previous_index(seed_engine, seed_index_copy, tmp_path,
                                                     moment):
    before = snapshot(seed_engine)
    current = (seed_index_copy / "CURRENT").read_text()
    listed = segments(seed_index_copy)
    corpus = write_corpus(tmp_path / "notes.jsonl", 300)
    proc = qa("index", str(corpus), "--index", str(seed_index_copy), cwd=tmp_path)
    if moment == "embedding":
        wait_for(lambda: lock_is_held(seed_index_copy), proc, "it took the lock")
        time.sleep(1.0)  # reading and embedding 300 documents takes longer than this
    else:  # the new segment is being written, inside the SQLite transaction
        wait_for(lambda: len(segments(seed_index_copy)) > len(listed), proc, "it began writing")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    assert (seed_index_copy / "CURRENT").read_text() == current
    assert snapshot(Engine.open(sources=None, index_dir=seed_index_copy)) == before
    reopened = Engine.open(sources=[SEEDS], index_dir=seed_index_copy,
                           settings=Settings(lock_timeout=5))  # the dead writer's lock is free
    assert reopened.last_report.passages_embedded == 0
    note = tmp_path / "note.txt"
    note.write_text(GOOD_TEXT)
    assert reopened.add([note]).added == ["note.txt"]
    # the half-written segment is gone: the folders on disk are those the index lists
    generation = seed_index_copy / current.strip()
    db = sqlite3.connect(generation / "qa.sqlite")
    listed_now = sorted(name for (name,) in db.execute("SELECT name FROM segments"))
    assert segments(seed_index_copy) == listed_now
    db.close()


def test_a_second_writer_waits_for_the_first(seed_index_copy, tmp_path):
    corpus = write_corpus(tmp_path / "notes.jsonl", 150)
    proc = qa("index", str(corpus), "--index", str(seed_index_copy), cwd=tmp_path)
    wait_for(lambda: lock_is_held(seed_index_copy), proc, "it took the lock")
    note = tmp_path / "note.txt"
    note.write_text(GOOD_TEXT)
    engine = Engine.open(sources=None, index_dir=seed_index_copy,
                         settings=Settings(lock_timeout=0.2))
    with pytest.raises(IndexLocked, match=r"another process is writing .* try again"):
        engine.add([note])
    patient = Engine.open(sources=None, index_dir=seed_index_copy,
                          settings=Settings(lock_timeout=WAIT))
    assert patient.add([note]).added == ["note.txt"]  # after the first writer committed
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    final = Engine.open(sources=None, index_dir=seed_index_copy)
    assert {"note.txt", "gen-0", "gen-149"} <= set(final.index.documents)  # no update lost


def test_cli_errors_are_one_line_and_the_output_is_quiet(seed_index_copy, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(seed_index_copy, damaged)
    generation = damaged / (damaged / "CURRENT").read_text().strip()
    (generation / "qa.sqlite").write_bytes(b"not a database, " * 64)
    index_args = ["--index", str(seed_index_copy), "--source", str(SEEDS)]
    runs = {  # started together: each pays for its imports, in parallel
        "empty question": qa("ask", "", *index_args, cwd=tmp_path),
        "missing path": qa("index", "/no/such/path", "--index", str(tmp_path / "i"), cwd=tmp_path),
        "damaged index": qa("ask", QUESTION, "--index", str(damaged), "--source", str(SEEDS),
                            cwd=tmp_path),
        "good": qa("ask", QUESTION, "--passages", *index_args, cwd=tmp_path),
    }
    results = {name: (*proc.communicate(timeout=WAIT), proc.returncode)
               for name, proc in runs.items()}
    for name in ("empty question", "missing path", "damaged index"):
        out, err, code = results[name]
        assert code != 0 and out == "", name
        assert err.count("\n") == 1 and err.startswith("qa: "), (name, err)
    assert "empty" in results["empty question"][1]
    assert "no such file or folder: /no/such/path" in results["missing path"][1]
    assert "qa index --rebuild" in results["damaged index"][1]
    assert not (tmp_path / "i").exists()  # nothing was created for a path that is not there
    out, err, code = results["good"]
    assert code == 0 and err == ""  # no progress bars or warnings from the libraries
    assert "never admit Ukraine" in out.split("[2]")[0]
