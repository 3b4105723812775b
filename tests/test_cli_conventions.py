"""The `qa` command behaves as command-line tools do: `-` reads standard input, --version, a
closed pipe ends it quietly, progress bars only on a terminal, bad numbers are usage errors."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from importlib.metadata import version
from pathlib import Path

from conftest import ROOT, SEEDS

WAIT = 600  # seconds at most for one command on a busy machine


def qa(*args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "qa.faces.cli", *args], cwd=cwd, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "QA_HOME": str(cwd / "home")},
        **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs},
    )  # fmt: skip


def test_question_from_stdin_version_and_bad_k(seed_index_dir, tmp_path):
    common = ["--index", str(seed_index_dir), "--source", str(SEEDS)]
    runs = {
        "stdin": qa("ask", "-", *common, cwd=tmp_path, stdin=subprocess.PIPE),
        "version": qa("--version", cwd=tmp_path),
        "zero": qa("ask", "Who?", "-k", "0", *common, cwd=tmp_path),
        "negative": qa("ask", "Who?", "-k", "-3", *common, cwd=tmp_path),
    }
    stdin = {"stdin": "Who is the Kremlin\nspokesman?\n"}
    done = {name: (*p.communicate(stdin.get(name), timeout=WAIT), p.returncode)
            for name, p in runs.items()}  # fmt: skip

    out, err, code = done["stdin"]
    assert code == 0, err
    assert "Peskov" in out.splitlines()[0]  # the question read from stdin, lines joined
    out, err, code = done["version"]
    assert (out, code) == (f"qa {version('qa')}\n", 0)
    for name, value in (("zero", "0"), ("negative", "-3")):
        out, err, code = done[name]
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and "-k" in err and f"got {value}" in err, err
    assert not (tmp_path / "home").exists()  # none of them touched an index


def test_a_reader_that_went_away_ends_it_quietly(seed_index_dir, tmp_path):
    proc = qa("ask", "What did Russia demand?", "--index", str(seed_index_dir),
              "--source", str(SEEDS), cwd=tmp_path)  # fmt: skip
    proc.stdout.close()  # like `| head -1` having read its line and left
    err = proc.stderr.read()
    proc.wait(timeout=WAIT)
    assert proc.returncode == 141 and err == ""  # 128 + SIGPIPE, as `cat` ends; no message


def test_progress_bars_only_on_a_terminal(tmp_path, seed_index_dir):
    # the same build twice, stderr a pipe and stderr a terminal (the cache already holds the
    # query model and the scorer: a build that makes them says so)
    piped = qa("index", str(SEEDS), "--index", str(tmp_path / "a"), cwd=tmp_path)
    leader, follower = pty.openpty()
    # a terminal 100 columns wide (a new pty has 0, where tqdm draws nothing)
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    tty = qa("index", str(SEEDS), "--index", str(tmp_path / "b"), cwd=tmp_path, stderr=follower)
    os.close(follower)
    on_terminal = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        on_terminal += chunk
    os.close(leader)
    assert tty.wait(timeout=WAIT) == 0
    out, err = piped.communicate(timeout=WAIT)
    assert piped.returncode == 0 and "1 added" in out
    assert err == ""  # no bar, no carriage return, nothing
    assert b"\r" in on_terminal and b"%|" in on_terminal  # a tqdm bar was drawn
