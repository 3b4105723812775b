"""What a user meets outside the happy path: a source that is not there, a damaged STORE or a
deleted CURRENT under index/, and file names with control characters, each said in one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qa import Engine
from qa.errors import IndexDamaged, QAError
from qa.faces.cli import main

QUESTION = "What did Russia demand?"
RIGHT = "never admit Ukraine"  # in the seed article's answer to QUESTION
KITE = "The red kite nests in tall oak trees near the river."


@pytest.fixture
def index_copy(seed_index_dir, tmp_path) -> Path:
    copy = tmp_path / "index"
    shutil.copytree(seed_index_dir, copy)
    return copy


def notes(folder: Path, name: str = "kite.txt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(KITE + "\n")
    return folder


# ---- a source that does not exist -------------------------------------------------------------
def test_the_python_api_refuses_a_source_that_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where no `seeds` folder is
    with pytest.raises(QAError, match=r"^no such file or folder: seeds$"):
        Engine.open(sources=["seeds"], index_dir=tmp_path / "index")
    assert not (tmp_path / "index").exists()  # nothing was built for it
    engine = Engine.open(sources=[notes(tmp_path / "notes")], index_dir=tmp_path / "index")
    with pytest.raises(QAError, match=r"^no such file or folder: gone\.txt$"):
        engine.add(["gone.txt"])
    assert list(engine.index.documents) == ["kite.txt"]  # and the index is as it was


def test_the_cli_refuses_a_source_that_does_not_exist_in_one_line(index_copy, tmp_path, capsys):
    args = ["--index", str(index_copy), "--source", str(tmp_path / "gone")]
    assert main(["ask", QUESTION, *args]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == f"qa: no such file or folder: {tmp_path / 'gone'}\n"
    assert main(["index", str(tmp_path / "gone"), "--index", str(index_copy)]) == 1
    assert capsys.readouterr().err == f"qa: no such file or folder: {tmp_path / 'gone'}\n"


# ---- index/STORE damaged --------------------------------------------------------------------
@pytest.mark.parametrize("content", [b"fai\n", b"", b"\xff\xfe"])
def test_a_damaged_store_file_is_named_and_rebuild_repairs_it(index_copy, capsys, content):
    (index_copy / "STORE").write_bytes(content)
    args = ["--index", str(index_copy)]
    with pytest.raises(IndexDamaged, match=r"\(STORE .*\); run `qa index --rebuild`$"):
        Engine.open(sources=None, index_dir=index_copy)
    assert main(["ask", QUESTION, *args]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(f"qa: index at {index_copy} is damaged (STORE ")
    assert err.endswith(f"; run `qa index --rebuild --index {index_copy}`\n")
    assert main(["index", "--rebuild", *args]) == 0
    assert "qa: " not in capsys.readouterr().err  # (in this process, the libraries' bars show)
    assert (index_copy / "STORE").read_text() == "faiss\n"
    assert main(["ask", QUESTION, *args]) == 0
    assert RIGHT in capsys.readouterr().out


def test_an_index_without_a_store_file_is_a_faiss_one(index_copy):
    (index_copy / "STORE").unlink()  # as an index written before STORE was kept
    assert RIGHT in Engine.open(sources=None, index_dir=index_copy).ask(QUESTION).text


# ---- index/CURRENT deleted --------------------------------------------------------------------
def test_a_home_index_without_current_says_one_thing_and_rebuild_keeps_it(tmp_path, monkeypatch,
                                                                           capsys):
    monkeypatch.setenv("QA_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(["index", str(notes(tmp_path / "notes"))]) == 0
    capsys.readouterr()
    index_dir = tmp_path / "home" / "index"
    (index_dir / "CURRENT").unlink()
    for command in (["ask", "Where does the red kite nest?"], ["chat"]):
        assert main(command) == 1
        out, err = capsys.readouterr()
        assert out == "" and err == (f"qa: index at {index_dir} is damaged (CURRENT is missing); "
                                     "run `qa index --rebuild`\n"), command
    assert main(["index", "--rebuild"]) == 0
    assert "seed article" not in capsys.readouterr().err
    assert list(Engine.open(sources=None, index_dir=index_dir).index.documents) == ["kite.txt"]


# ---- control characters in file names -------------------------------------------------------
def test_a_file_name_with_a_newline_or_tab_is_printed_on_one_line(tmp_path, capsys):
    docs = notes(tmp_path / "docs", "red\nkite\t.txt")
    args = ["--index", str(tmp_path / "ix")]
    assert main(["index", str(docs), *args]) == 0
    capsys.readouterr()
    assert main(["ask", "Where does the red kite nest?", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(KITE + " [1]")
    assert lines[1].startswith("[1] red\\nkite\\t.txt (chars 0-"), lines
    assert lines[2] == "    " + KITE and len(lines) == 3, lines
    assert main(["ask", "Where does the red kite nest?", "--passages", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[1] red\\nkite\\t.txt (chars 0-") and len(lines) == 2, lines
