"""The index is never damaged by a user's own folders, damage is named in one line, and
`qa index --rebuild` always repairs it; every skipped file is said, on one line."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT, SEEDS
from make_files import GOOD_TEXT, write_jsonl

from qa import Engine
from qa.errors import IndexInconsistent
from qa.faces.cli import main
from qa.ingest.load import make_document
from qa.ingest.records import FileRecord
from qa.models.embed import Embedder, make_embedder
from qa.settings import Settings
from qa.storage.index import PassageIndex

KITE = "The red kite nests in oak trees."
OWL = "The barn owl hunts voles at night."
QUESTION = "What did Russia demand?"
ANSWER = "never admit Ukraine"  # in the seed article's answer to QUESTION


def two_folders(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "notes.txt").write_text(KITE + "\n")
    (b / "notes.txt").write_text(OWL + "\n")
    return a, b


def skipped(err: str) -> list[str]:
    """The lines of stderr but the libraries' progress bars."""
    return [line for line in err.splitlines() if line and "%|" not in line]


def file_ids(index_dir: Path) -> dict[str, list[str]]:
    """The ids each file holds, by the file's path under the test's folder."""
    engine = Engine.open(sources=None, index_dir=index_dir)
    files = engine.index.files.items()
    return {Path(o).relative_to(index_dir.parent).as_posix(): e.doc_ids for o, e in files}


# ---- 1. doc_ids unique across sources ----------------------------------------------------------
def test_two_folders_with_a_file_of_the_same_name(tmp_path, capsys):
    a, b = two_folders(tmp_path)
    ix = str(tmp_path / "ix")
    assert main(["index", str(a), str(b), "--index", ix]) == 0
    assert "2 documents, 2 passages" in capsys.readouterr().out
    sources = ["--index", ix, "--source", str(a), "--source", str(b)]
    for question, text, doc_id in (("Where does the red kite nest?", KITE, "notes.txt"),
                                   ("What does the barn owl hunt?", OWL, "b/notes.txt")):
        assert main(["ask", question, *sources]) == 0
        out = capsys.readouterr().out
        assert out.startswith(text) and f"[1] {doc_id} " in out, out
    assert file_ids(tmp_path / "ix") == {"a/notes.txt": ["notes.txt"],
                                         "b/notes.txt": ["b/notes.txt"]}

    # the ids stay: on a rebuild naming the folders the other way round, on a change of the
    # file, and after the file that held the plain id is gone
    assert main(["index", "--rebuild", str(b), str(a), "--index", ix]) == 0
    assert file_ids(tmp_path / "ix") == {"a/notes.txt": ["notes.txt"],
                                         "b/notes.txt": ["b/notes.txt"]}
    (a / "notes.txt").unlink()
    (b / "notes.txt").write_text(OWL + " It nests in barns.\n")
    assert main(["index", str(a), str(b), "--index", ix]) == 0
    assert file_ids(tmp_path / "ix") == {"b/notes.txt": ["b/notes.txt"]}

    # a third folder also named b: the folder's name and a hash of where it is
    other = tmp_path / "elsewhere" / "b"
    other.mkdir(parents=True)
    (other / "notes.txt").write_text(KITE + "\n")
    (a / "notes.txt").write_text("The kestrel hovers over fields.\n")
    assert main(["index", str(a), str(b), str(other), "--index", ix]) == 0
    ids = file_ids(tmp_path / "ix")
    assert ids["a/notes.txt"] == ["notes.txt"] and ids["b/notes.txt"] == ["b/notes.txt"]
    [qualified] = ids["elsewhere/b/notes.txt"]
    assert qualified.startswith("b~") and qualified.endswith("/notes.txt"), qualified


def test_sources_of_the_app_open_twice(tmp_path):
    """`qa serve --source a --source b` opens the engine over both at every start."""
    a, b = two_folders(tmp_path)
    first = Engine.open(sources=[a, b], index_dir=tmp_path / "ix")
    assert sorted(first.index.documents) == ["b/notes.txt", "notes.txt"]
    again = Engine.open(sources=[a, b], index_dir=tmp_path / "ix")
    assert again.last_report.passages_embedded == 0 and not again.last_report.errors
    assert again.retrieve("What does the barn owl hunt?", k=1)[0].doc_id == "b/notes.txt"


def test_records_of_two_corpora_with_the_same_ids(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    write_jsonl(docs / "corpus1.jsonl", [{"_id": "1", "text": KITE}])
    write_jsonl(docs / "corpus2.jsonl", [{"_id": "1", "text": OWL}, {"_id": "2", "text": "Hi."}])
    engine = Engine.open(sources=[docs], index_dir=tmp_path / "ix")
    assert not engine.last_report.errors
    assert sorted(engine.index.documents) == ["1", "2", "corpus2.jsonl#1"]
    assert engine.document_text("corpus2.jsonl#1") == OWL


def test_the_same_text_in_two_folders_is_indexed_once(tmp_path):
    a, b = two_folders(tmp_path)
    (b / "notes.txt").write_text(KITE + "\n")
    engine = Engine.open(sources=[a, b], index_dir=tmp_path / "ix")
    assert list(engine.index.documents) == ["notes.txt"]
    assert [str(n) for n in engine.last_report.notices] == [
        f'{b / "notes.txt"}: same text as "notes.txt"; not indexed twice']
    (a / "notes.txt").unlink()  # the copy takes over; the plain id is free again
    engine = Engine.open(sources=[a, b], index_dir=tmp_path / "ix")
    assert engine.index.files[str((b / "notes.txt").resolve())].doc_ids == ["notes.txt"]


# ---- 1. no inconsistent index is ever swapped in ----------------------------------------------
def _key(ix: PassageIndex, pid: str) -> int:
    return ix.db.key_of(pid)


BREAKS = {
    "a passage row deleted": lambda ix, pid: ix.db.delete_passages([_key(ix, pid)]),
    "a vector deleted": lambda ix, pid: ix.vectors.delete([_key(ix, pid)]),
    "a passage listed twice": lambda ix, pid: ix.documents["kite.txt"].passages.append(pid),
    "a file lists a document not indexed": lambda ix, pid: ix.files.update(
        {"/x/gone.txt": FileRecord(doc_ids=["gone.txt"])}),
    "two files list one document": lambda ix, pid: ix.files.update(
        {"/y/owl.txt": FileRecord(doc_ids=["owl.txt"])}),
}


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return make_embedder()


@pytest.mark.parametrize("how", BREAKS)
def test_check_finds_an_inconsistent_index(embedder, how):
    index = PassageIndex.open(None, Settings(), embedder.dimension)  # in memory
    docs = [make_document(f"{n}.txt", text, n, source=f"{n}.txt", origin=None)
            for n, text in (("kite", KITE), ("owl", OWL))]
    index.add_documents(docs, embedder)
    index.files.update({"/x/kite.txt": FileRecord(doc_ids=["kite.txt"]),
                        "/x/owl.txt": FileRecord(doc_ids=["owl.txt"])})
    index.check()  # whole
    BREAKS[how](index, index.documents["owl.txt"].passages[0])
    with pytest.raises(IndexInconsistent, match=r"^the update was not saved: .+; "
                                                 r"the index is unchanged$"):
        index.check()


def test_a_write_that_would_break_the_index_fails_and_keeps_it(seed_index_dir, tmp_path):
    index_dir = tmp_path / "ix"
    shutil.copytree(seed_index_dir, index_dir)
    current = (index_dir / "CURRENT").read_text()
    engine = Engine.open(sources=None, index_dir=index_dir)
    broken = engine._open(engine.store.current(), write=True)  # what a write changes
    passage = broken.documents[next(iter(broken.documents))].passages[0]
    broken.db.delete_passages([broken.db.key_of(passage)])  # as a bug in an update might
    new = tmp_path / "new.txt"
    new.write_text(GOOD_TEXT)
    with pytest.raises(IndexInconsistent, match="the update was not saved"):
        engine._commit(broken)
    broken.close()
    assert (index_dir / "CURRENT").read_text() == current
    assert not list(index_dir.glob("gen-*.tmp"))
    assert ANSWER in engine.ask(QUESTION).text  # the engine holds the index on disk again
    assert ANSWER in Engine.open(sources=None, index_dir=index_dir).ask(QUESTION).text
    assert engine.add([new]).added == ["new.txt"]


# ---- 1. the app's removal deletes only its own uploads ----------------------------------------
def test_removing_an_upload_deletes_its_file_and_nothing_else(tmp_path):
    from qa.ui.library import Library
    from qa.ui.uploads import uploads_dir

    a, _ = two_folders(tmp_path)
    data = tmp_path / "data"
    uploads = uploads_dir(data)
    uploads.mkdir(parents=True)
    engine = Engine.open(sources=[a, uploads], index_dir=tmp_path / "ix")
    library = Library(engine, data, max_upload_mb=1)
    sent = tmp_path / "sent"
    sent.mkdir()
    (sent / "notes.txt").write_text(OWL)
    write_jsonl(sent / "two.jsonl", [{"_id": "r1", "text": "One."}, {"_id": "r2", "text": "Two."}])
    results = library.add([sent / "notes.txt", sent / "two.jsonl"], lambda *_: None)
    assert all(r.ok for r in results), results
    assert "uploads/notes.txt" in engine.index.documents

    library.remove(["uploads/notes.txt", "r1"])
    assert not (uploads / "notes.txt").exists()
    assert (uploads / "two.jsonl").exists()  # r2 is still indexed from it
    assert (a / "notes.txt").exists() and "notes.txt" in engine.index.documents
    library.remove(["r2"])
    assert not (uploads / "two.jsonl").exists()


# ---- 2. damage under index/ --------------------------------------------------------------------
def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _damages(index_dir: Path) -> list[tuple[str, Path, Callable[[Path], object]]]:
    """Each file of the live generation (and CURRENT) flipped, truncated or deleted; then
    stray, garbage and unreadable files."""
    generation = index_dir / (index_dir / "CURRENT").read_text().strip()
    files = [index_dir / "CURRENT"] + sorted(p for p in generation.rglob("*") if p.is_file())
    hows = {"flip": _flip, "truncate": _truncate, "delete": Path.unlink}
    # SQLite keeps no checksum of its pages: a flipped byte inside a value goes unseen (its
    # structure is checked: truncated, deleted, header and the cases below)
    cases = [(f"{how} {p.relative_to(index_dir)}", p, hows[how]) for p in files for how in hows
             if not (p.name == "qa.sqlite" and how == "flip")]
    segment = next(p for p in (generation / "segments").iterdir())
    more = [
        ("stray file", segment / "vectors" / "notes.txt", lambda p: p.write_text("x")),
        ("CURRENT names garbage", index_dir / "CURRENT", lambda p: p.write_text("../../etc\n")),
        ("CURRENT empty", index_dir / "CURRENT", lambda p: p.write_text("")),
        ("CURRENT unreadable (a folder)", index_dir / "CURRENT",
         lambda p: (p.unlink(), p.mkdir())),
        ("qa.sqlite unreadable (a folder)", generation / "qa.sqlite",
         lambda p: (p.unlink(), p.mkdir())),
        ("qa.sqlite header overwritten", generation / "qa.sqlite",
         lambda p: p.write_bytes(bytes(100) + p.read_bytes()[100:])),
        ("a segment's size changed in qa.sqlite", generation / "qa.sqlite",
         lambda p: _sql(p, "UPDATE segments SET sums = replace(sums, '[', '[1')")),
        ("a segment unlisted in qa.sqlite", generation / "qa.sqlite",
         lambda p: _sql(p, "DELETE FROM segments")),
    ]
    return cases + more


def _sql(path: Path, statement: str) -> None:
    db = sqlite3.connect(path)
    db.execute(statement)
    db.commit()
    db.close()


@pytest.fixture(scope="module")
def small_index(tmp_path_factory) -> tuple[Path, list[str]]:
    """An index of two short notes (rebuilt quickly), and the sources to name with it."""
    a, b = two_folders(tmp_path_factory.mktemp("small"))
    index_dir = a.parent / "ix"
    Engine.open(sources=[a, b], index_dir=index_dir)
    return index_dir, [str(a), str(b)]


def test_every_damaged_file_is_named_in_one_line_and_rebuild_repairs_it(small_index, tmp_path,
                                                                       capsys):
    seed, sources = small_index
    cases = _damages(seed)
    assert len(cases) > 30 and any("bm25" in name for name, *_ in cases)
    rebuilt: set[str] = set()
    for i, (name, _, _) in enumerate(cases):
        index_dir = tmp_path / f"ix{i}"
        shutil.copytree(seed, index_dir)
        _, path, how = _damages(index_dir)[i]
        how(path)
        args = ["--index", str(index_dir), *(f"--source={s}" for s in sources)]
        assert main(["ask", "Where does the red kite nest?", *args]) == 1, name
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1, (name, err)
        assert err.startswith(f"qa: index at {index_dir}") and " is damaged (" in err, (name, err)
        assert err.endswith(f"); run `qa index --rebuild --index {index_dir}`\n"), (name, err)

        # a rebuild reads only CURRENT and qa.sqlite: each of their cases, one of the others
        if path.name in ("CURRENT", "qa.sqlite") or path.name not in rebuilt:
            rebuilt.add(path.name)
            # as the message says: the sources need not be named, the index keeps their list
            assert main(["index", "--rebuild", "--index", str(index_dir)]) == 0, name
            capsys.readouterr()
            assert main(["ask", "Where does the red kite nest?", *args]) == 0, name
            assert capsys.readouterr().out.startswith(KITE + " [1]"), name


def test_rebuild_of_a_damaged_home_index_keeps_its_documents(tmp_path, monkeypatch, capsys):
    a, b = two_folders(tmp_path)
    monkeypatch.setenv("QA_HOME", str(tmp_path / "home"))
    assert main(["index", str(a), str(b)]) == 0
    index_dir = tmp_path / "home" / "index"
    _truncate(index_dir / (index_dir / "CURRENT").read_text().strip() / "qa.sqlite")
    assert main(["ask", "What does the barn owl hunt?"]) == 1
    assert capsys.readouterr().err.endswith("); run `qa index --rebuild`\n")
    assert main(["index", "--rebuild"]) == 0
    assert "seed article" not in capsys.readouterr().err
    assert sorted(Engine.open(sources=None, index_dir=index_dir).index.documents) == [
        "b/notes.txt", "notes.txt"]


def test_a_flipped_byte_in_current_through_the_command(seed_index_dir, tmp_path):
    """The issue's own case, as a user runs it."""
    index_dir = tmp_path / "ix"
    shutil.copytree(seed_index_dir, index_dir)
    _flip(index_dir / "CURRENT")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "qa.faces.cli", "ask", QUESTION, "--index",
                          str(index_dir), "--source", str(SEEDS)],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr == (f"qa: index at {index_dir} is damaged (CURRENT: UnicodeDecodeError); "
                          f"run `qa index --rebuild --index {index_dir}`\n")
    run = subprocess.run([sys.executable, "-m", "qa.faces.cli", "index", "--rebuild", "--index",
                          str(index_dir)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "1 documents" in run.stdout


def test_the_index_lists_each_segment_file_with_its_size_and_checksum(seed_index_dir):
    generation = seed_index_dir / (seed_index_dir / "CURRENT").read_text().strip()
    db = sqlite3.connect(generation / "qa.sqlite")
    rows = db.execute("SELECT name, sums FROM segments").fetchall()
    listed = {name: json.loads(sums) for name, sums in rows}
    db.close()
    on_disk = {p.name for p in (generation / "segments").iterdir()}
    assert listed and set(listed) == on_disk
    for name, sums in listed.items():
        for file, (size, crc) in sums.items():
            path = generation / "segments" / name / file
            assert path.stat().st_size == size and zlib.crc32(path.read_bytes()) == crc
