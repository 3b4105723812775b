"""Files qa cannot take are each said on one line, links and folders included, and the exit
status says when nothing given could be indexed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT
from make_files import GOOD_TEXT
from test_integrity import KITE, OWL, skipped

from qa import Engine
from qa.faces.cli import main


def test_exit_status_when_the_files_given_are_rejected(seed_index_dir, tmp_path, capsys):
    index_dir = tmp_path / "ix"
    shutil.copytree(seed_index_dir, index_dir)
    (tmp_path / "blob.txt").write_bytes(b"x\x00\x01\x02")  # zeros in odd places only
    (tmp_path / "empty.md").write_text("  \n")
    (tmp_path / "good.txt").write_text(GOOD_TEXT)
    bad = [str(tmp_path / "blob.txt"), str(tmp_path / "empty.md")]
    assert main(["index", *bad, "--index", str(index_dir)]) == 1  # the index holds others
    err = capsys.readouterr().err
    assert skipped(err) == [f"skipped {tmp_path / 'blob.txt'}: binary content, not text",
                                f"skipped {tmp_path / 'empty.md'}: no text in it (empty or "
                                "whitespace only)"]
    assert main(["index", *bad, str(tmp_path / "good.txt"), "--index", str(index_dir)]) == 0
    assert capsys.readouterr().err.count("skipped ") == 2


def test_links_are_followed_and_broken_ones_said(tmp_path, capsys):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "sub" / "kite.txt").write_text(KITE)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "owl.txt").write_text(OWL)
    (docs / "linked").symlink_to(outside)
    (docs / "dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    (docs / "self.txt").symlink_to(docs / "self.txt")
    (docs / "sub" / "up").symlink_to(docs)  # a loop: docs/sub/up/sub/up/...
    assert main(["index", str(docs), "--index", str(tmp_path / "ix")]) == 0
    captured = capsys.readouterr()
    assert "2 added" in captured.out
    assert skipped(captured.err) == [
        f"skipped {docs / 'dangling.txt'}: a broken link (its target {tmp_path / 'nowhere.txt'} "
        "does not exist)",
        f"skipped {docs / 'self.txt'}: a link in a loop (it leads back to itself)",
        f"skipped {docs / 'sub' / 'up'}: a link back to a folder that holds it ({docs}); "
        "not followed",
    ]
    ids = sorted(Engine.open(sources=None, index_dir=tmp_path / "ix").index.documents)
    assert ids == ["linked/owl.txt", "sub/kite.txt"]


def test_a_folder_that_cannot_be_read_is_said(tmp_path):
    """Root reads any folder; its run drops the two capabilities that let it (setpriv), so the
    folder is as unreadable to it as to anyone."""
    docs = tmp_path / "docs"
    (docs / "locked").mkdir(parents=True)
    (docs / "locked" / "in.txt").write_text(KITE)
    (docs / "locked").chmod(0)
    command = [sys.executable, "-m", "qa.faces.cli", "index", str(docs),
               "--index", str(tmp_path / "ix")]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: no folder is unreadable to root")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    try:
        run = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        (docs / "locked").chmod(0o755)
    assert run.stderr == f"skipped {docs / 'locked'}: folder cannot be read (Permission denied)\n"
    assert run.returncode == 1  # nothing given could be indexed


def test_utf16_text_is_read(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bom.txt").write_bytes(KITE.encode("utf-16"))
    (docs / "le.txt").write_bytes(OWL.encode("utf-16-le"))
    (docs / "be.md").write_bytes("# Kestrels\n\nThe kestrel hovers.".encode("utf-16-be"))
    engine = Engine.open(sources=[docs], index_dir=tmp_path / "ix")
    assert not engine.last_report.errors and not engine.last_report.notices
    assert engine.document_text("bom.txt") == KITE
    assert engine.document_text("le.txt") == OWL
    assert {d["doc_id"]: d["title"] for d in engine.documents()}["be.md"] == "Kestrels"


def test_a_file_name_with_a_newline_is_one_line(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text(GOOD_TEXT)
    (docs / "bad\nname.txt").write_bytes(bytes(range(256)))
    (docs / "tab\tand\x1bescape.md").write_text("")
    assert main(["index", str(docs), "--index", str(tmp_path / "ix")]) == 0
    assert skipped(capsys.readouterr().err) == [
        f"skipped {docs}/bad\\nname.txt: binary content, not text",
        f"skipped {docs}/tab\\tand\\x1bescape.md: no text in it (empty or whitespace only)",
    ]
    assert main(["index", str(docs / "bad\nname.txt"), "--index", str(tmp_path / "ix")]) == 1
    # (the folder already indexed is kept up to date too, so its other rejected file is said again)
    lines = capsys.readouterr().err.splitlines()
    assert f"skipped {docs}/bad\\nname.txt: binary content, not text" in lines
    assert all(line.startswith("skipped ") for line in lines)


def test_a_question_does_not_repeat_what_qa_index_skipped(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "owl.txt").write_text(OWL)
    (docs / "bad.txt").write_bytes(bytes(range(256)))
    assert main(["index", str(docs), "--index", str(tmp_path / "ix")]) == 0
    assert skipped(capsys.readouterr().err) == [f"skipped {docs}/bad.txt: binary content, not text"]
    assert main(["ask", "What does the barn owl hunt?", "--index", str(tmp_path / "ix")]) == 0
    out, err = capsys.readouterr()
    assert "voles" in out and "skipped" not in err
