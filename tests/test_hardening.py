"""Bad input, odd questions, damaged indexes and two writers: clear messages, nothing lost."""

from __future__ import annotations

import math
import os
import shutil
import threading
from pathlib import Path

import pytest
from conftest import SEEDS
from make_files import GOOD_TEXT, TXT, write_bad_corpus, write_jsonl, write_pdf

from qa import Engine
from qa.answering.answer import DECLINE_TEXT
from qa.errors import BadQuestion, IndexDamaged, IndexLocked, QAError
from qa.faces.cli import main
from qa.settings import Settings
from qa.storage.store import IndexStore

QUESTION = "What did Russia demand?"


def messages(report) -> list[str]:
    return [str(m) for m in report.errors + report.notices]


def snapshot(engine: Engine) -> dict:
    """Everything a reader can see of the index."""
    return {
        "documents": {d: (e.hash, e.passages) for d, e in engine.index.documents.items()},
        "texts": {d: engine.document_text(d) for d in engine.index.documents},
        "ranking": [(p.id, round(p.score, 6)) for p in engine.retrieve(QUESTION, k=5)],
    }


# ---- bad input -------------------------------------------------------------------------------
def test_bad_input_corpus(tmp_path):
    folder = tmp_path / "disk"
    expected, good = write_bad_corpus(folder)
    odd_name = os.fsdecode(b"not utf-8 \xff name.txt")  # a byte no encoding can show
    (folder / odd_name).write_text("Glass floats were used by fishermen to hold up their nets.")
    good.add(odd_name)
    engine = Engine.open(sources=[folder], index_dir=tmp_path / "index")
    said = messages(engine.last_report)
    for name, reason in expected.items():
        about = [m for m in said if f"{os.sep}{name}:" in m]
        assert len(about) == 1, (name, said)
        assert reason in about[0] and "\n" not in about[0]
    assert len(said) == len(expected)  # nothing else complained
    assert set(engine.index.documents) == good
    assert "crème brûlée" in engine.document_text("latin1.txt")
    assert engine.retrieve("What do otters do while they sleep?", k=1)[0].doc_id == "m-1"
    assert engine.retrieve("How long is the bridge over the fjord?", k=1)[0].doc_id == (
        "odd..name.txt"
    )
    # reopening changes nothing and embeds nothing: the rejected files stay rejected
    again = Engine.open(sources=[folder], index_dir=tmp_path / "index")
    assert again.last_report.passages_embedded == 0
    assert set(again.index.documents) == good


def test_a_rejected_file_changes_nothing_in_the_index(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text(GOOD_TEXT)
    (docs / "lighthouse.txt").write_text(TXT)
    write_pdf(docs / "report.pdf", ["The audit found nine errors in the ledger.", "Page two."])
    records = [{"_id": f"r-{i}", "text": f"Record {i} says the pier is {i} metres wide."}
               for i in range(3)]
    write_jsonl(docs / "records.jsonl", records)
    index_dir = tmp_path / "index"
    before = snapshot(Engine.open(sources=[docs], index_dir=index_dir))
    current = (index_dir / "CURRENT").read_text()

    # every good file replaced by a broken version of itself
    (docs / "notes.txt").write_bytes(b"\x00\x01\x02" * 1000)
    (docs / "lighthouse.txt").write_text("   \n")
    (docs / "report.pdf").write_bytes((docs / "report.pdf").read_bytes()[:400])
    write_jsonl(docs / "records.jsonl", records[:1], extra_lines=('{"_id": "r-1", "te',
                                                                  '{"_id": "r-2"}'))
    engine = Engine.open(sources=[docs], index_dir=index_dir)
    said = messages(engine.last_report)
    assert len(said) == 5, said
    for name in ("notes.txt:", "lighthouse.txt:", "report.pdf:", "records.jsonl line 2:",
                 "records.jsonl line 3:"):
        assert any(name in m for m in said), (name, said)
    assert snapshot(engine) == before
    assert (index_dir / "CURRENT").read_text() == current  # nothing was written
    assert snapshot(Engine.open(sources=None, index_dir=index_dir)) == before

    # fixed again: the new text replaces the old
    (docs / "notes.txt").write_text(GOOD_TEXT.replace("six", "seven"))
    engine = Engine.open(sources=[docs], index_dir=index_dir)
    assert engine.last_report.updated == ["notes.txt"]
    assert "opens at seven" in engine.document_text("notes.txt")


def test_a_duplicate_is_indexed_once_and_again_when_the_original_goes(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(GOOD_TEXT)
    (docs / "b copy.txt").write_text(GOOD_TEXT)
    engine = Engine.open(sources=[docs], index_dir=tmp_path / "index")
    assert set(engine.index.documents) == {"a.txt"}
    assert messages(engine.last_report) == [f'{docs / "b copy.txt"}: same text as "a.txt"; '
                                            "not indexed twice"]
    (docs / "a.txt").unlink()
    engine = Engine.open(sources=[docs], index_dir=tmp_path / "index")
    assert set(engine.index.documents) == {"b copy.txt"}  # its text is still findable
    assert engine.retrieve("Who owns the bakery?", k=1)[0].doc_id == "b copy.txt"


def test_sources_that_do_not_exist(tmp_path):
    with pytest.raises(QAError, match=f"^no such file or folder: {tmp_path / 'nowhere'}$"):
        Engine.open(sources=[tmp_path / "nowhere"], index_dir=tmp_path / "index")
    engine = Engine.open(sources=[], index_dir=tmp_path / "index")
    assert engine.retrieve(QUESTION) == []  # an empty index answers with nothing, no error


def test_a_corpus_without_a_single_searchable_word(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "marks.txt").write_text("?! ... -- !!")
    engine = Engine.open(sources=[docs], index_dir=tmp_path / "index")
    assert engine.retrieve("what is this?", k=1)[0].doc_id == "marks.txt"
    reopened = Engine.open(sources=None, index_dir=tmp_path / "index")
    assert reopened.retrieve("what is this?", k=1)[0].doc_id == "marks.txt"


# ---- questions -------------------------------------------------------------------------------
ODD_QUESTIONS = {
    "long": "Why " + "really " * 16_000 + "did Russia mass troops?",  # ~100,000 characters
    "punctuation": "?!?... ;-) ,,, --",
    "spanish": "¿Qué exigió Rusia a la OTAN?",
    "russian": "Что потребовала Россия от НАТО?",
    "chinese": "俄罗斯要求北约做什么？",
    "emoji": "🙂🙂🙂",
    "controls": "\x00\x01\x1b[31m",
    "stopwords": "the of and to",
}


@pytest.mark.parametrize("kind", sorted(ODD_QUESTIONS))
def test_odd_questions_never_raise(seed_engine, kind):
    question = ODD_QUESTIONS[kind]
    assert len(ODD_QUESTIONS["long"]) > 100_000
    passages = seed_engine.retrieve(question, k=5)
    assert len(passages) == 5 and all(math.isfinite(p.score) for p in passages)
    answer = seed_engine.ask(question)
    assert answer.passages and answer.answered == bool(answer.citations)
    if answer.answered:  # quotes exact at their offsets
        text = seed_engine.document_text(answer.citations[0].passage.doc_id)
        assert all(text[c.quote_start:c.quote_end] == c.quote for c in answer.citations)
    else:
        assert answer.text == DECLINE_TEXT


@pytest.mark.parametrize("question", ["", "   ", "\n\t  \n"])
def test_empty_questions_are_a_clear_error(seed_engine, question):
    for call in (seed_engine.retrieve, seed_engine.ask):
        with pytest.raises(BadQuestion, match="empty"):
            call(question)


# ---- damaged index ---------------------------------------------------------------------------
def _damage(index_dir: Path, kind: str) -> None:
    generation = index_dir / (index_dir / "CURRENT").read_text().strip()
    segment = next((generation / "segments").iterdir())
    if kind == "truncated sqlite":
        path = generation / "qa.sqlite"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "sqlite header overwritten":
        path = generation / "qa.sqlite"
        path.write_bytes(bytes(100) + path.read_bytes()[100:])
    elif kind == "vectors altered":  # same size, different bytes: only a checksum sees it
        path = segment / "vectors" / "vectors.npy"
        data = bytearray(path.read_bytes())
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
        path.write_bytes(bytes(data))
    elif kind == "truncated vectors":
        path = segment / "vectors" / "vectors.npy"
        path.write_bytes(path.read_bytes()[:100])
    elif kind == "bm25 file missing":
        (segment / "bm25" / "indptr.npy").unlink()
    elif kind == "CURRENT names nothing":
        (index_dir / "CURRENT").write_text("gen-999999\n")


DAMAGE = ["truncated sqlite", "sqlite header overwritten", "vectors altered",
          "truncated vectors", "bm25 file missing", "CURRENT names nothing"]


@pytest.fixture
def seed_index_copy(seed_index_dir, tmp_path) -> Path:
    copy = tmp_path / "index"
    shutil.copytree(seed_index_dir, copy)
    return copy


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_index_says_so_and_rebuild_repairs_it(seed_engine, seed_index_copy, kind,
                                                         capsys):
    before = snapshot(seed_engine)
    _damage(seed_index_copy, kind)
    for sources in (None, [SEEDS]):
        with pytest.raises(IndexDamaged, match=r"damaged .*run `qa index --rebuild`"):
            Engine.open(sources=sources, index_dir=seed_index_copy)

    args = ["--index", str(seed_index_copy), "--source", str(SEEDS)]
    assert main(["ask", QUESTION, "--passages", *args]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("qa: index at ") and "qa index --rebuild" in err

    assert main(["index", "--rebuild", "--index", str(seed_index_copy), str(SEEDS)]) == 0
    assert snapshot(Engine.open(sources=[SEEDS], index_dir=seed_index_copy)) == before


def test_a_failed_write_leaves_engine_and_disk_as_they_were(seed_engine, seed_index_copy, tmp_path):
    before = snapshot(seed_engine)
    engine = Engine.open(sources=None, index_dir=seed_index_copy)
    generation = seed_index_copy / (seed_index_copy / "CURRENT").read_text().strip()
    listed = sorted(p.name for p in (generation / "segments").iterdir())
    blocker = generation / "segments" / f"seg-{int(listed[-1][4:]) + 1:08d}"
    blocker.write_text("a stray file where the next segment goes")
    new = tmp_path / "new.txt"
    new.write_text(GOOD_TEXT)
    with pytest.raises(OSError):
        engine.add([new])
    assert snapshot(engine) == before  # the half-applied change was dropped from memory too
    assert sorted(p.name for p in (generation / "segments").iterdir()
                  if p.is_dir()) == listed
    assert snapshot(Engine.open(sources=None, index_dir=seed_index_copy)) == before
    blocker.unlink()
    assert engine.add([new]).added == ["new.txt"]


# ---- writers ---------------------------------------------------------------------------------
def test_a_second_writer_waits_then_fails_with_a_clear_message(seed_index_copy, tmp_path):
    new = tmp_path / "new.txt"
    new.write_text(GOOD_TEXT)
    engine = Engine.open(sources=None, index_dir=seed_index_copy,
                         settings=Settings(lock_timeout=0.5))
    with IndexStore(seed_index_copy).lock(timeout=1):  # another writer holds the index
        with pytest.raises(IndexLocked, match="another process is writing the index"):
            engine.add([new])
    assert "new.txt" not in engine.index.documents
    assert engine.add([new]).added == ["new.txt"]  # free again: the same call works


def test_readers_open_while_a_writer_commits(seed_index_copy, tmp_path):
    """Readers opening the index during commits always get a whole generation."""
    errors: list[BaseException] = []
    done = threading.Event()

    def write() -> None:
        try:
            writer = Engine.open(sources=None, index_dir=seed_index_copy)
            for i in range(4):
                note = tmp_path / f"note-{i}.txt"
                note.write_text(f"Note {i}: the ferry to island {i} leaves at {i + 6} o'clock.")
                writer.add([note])
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    opened = 0
    while not done.is_set() or opened == 0:
        reader = Engine.open(sources=None, index_dir=seed_index_copy)
        assert reader.retrieve(QUESTION, k=1)
        opened += 1
    thread.join()
    assert errors == []
    final = Engine.open(sources=None, index_dir=seed_index_copy)
    assert {f"note-{i}.txt" for i in range(4)} <= set(final.index.documents)
