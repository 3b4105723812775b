"""A write costs what it changes: it adds one segment and leaves the others' files as they were;
small segments merge; a write that fails or dies leaves the committed state."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from make_files import GOOD_TEXT

from qa import Engine
from qa.storage.segments import merge_count

QUESTION = "Who owns the village bakery?"


def live(index_dir: Path) -> Path:
    return index_dir / (index_dir / "CURRENT").read_text().strip()


def segment_files(index_dir: Path) -> dict[Path, tuple[int, int]]:
    """Every segment file of the live generation, with its inode and modification time."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in (live(index_dir) / "segments").rglob("*") if p.is_file()}


def listed(index_dir: Path) -> list[str]:
    db = sqlite3.connect(live(index_dir) / "qa.sqlite")
    names = [name for (name,) in db.execute("SELECT name FROM segments ORDER BY position")]
    db.close()
    return names


def test_an_add_writes_one_segment_of_its_own_and_touches_no_other(seed_index_dir, tmp_path):
    index_dir = tmp_path / "ix"
    shutil.copytree(seed_index_dir, index_dir)
    engine = Engine.open(sources=None, index_dir=index_dir)
    before, names = segment_files(index_dir), listed(index_dir)
    note = tmp_path / "bakery.txt"
    note.write_text(GOOD_TEXT)
    assert engine.add([note]).added == ["bakery.txt"]

    after = segment_files(index_dir)
    assert {p: after[p] for p in before} == before  # not one byte of the others rewritten
    new = listed(index_dir)
    assert new[:-1] == names and len(new) == len(names) + 1
    keys = np.load(live(index_dir) / "segments" / new[-1] / "vectors" / "keys.npy")
    assert len(keys) == len(engine.index.documents["bakery.txt"].passages) == 1
    assert engine.ask(QUESTION).citations[0].passage.doc_id == "bakery.txt"

    # the removal's segment takes in the small one before it: the note's row is gone for good
    assert engine.remove(["bakery.txt"]) == ["bakery.txt"]
    assert listed(index_dir)[:-1] == names and {p: segment_files(index_dir)[p] for p in before
                                                } == before
    last = live(index_dir) / "segments" / listed(index_dir)[-1]
    assert len(np.load(last / "vectors" / "keys.npy")) == 0
    assert len(np.load(last / "vectors" / "gone.npy")) == 0  # nothing older was removed
    assert set(p.name for p in (live(index_dir) / "segments").iterdir()) == set(
        listed(index_dir))  # the merged folder was deleted
    reopened = Engine.open(sources=None, index_dir=index_dir)
    assert len(reopened.index) == len(engine.index) == 14
    assert "bakery.txt" not in reopened.index.documents


def test_segments_merge_while_they_are_small_beside_the_new_one():
    assert merge_count([], 10) == 0
    assert merge_count([1000], 1) == 0  # a big base is left alone
    assert merge_count([1000, 3], 1) == 1  # small ones are taken in
    assert merge_count([1000, 40, 3, 1], 1) == 2  # until one is over 4x what is merged
    assert merge_count([1000, 40, 3, 1], 10) == 3
    assert merge_count([1000, 4], 0) == 1  # a removal alone merges the newest small one


@pytest.mark.parametrize("block", [1, 7, 4_000_000])
def test_merged_postings_equal_those_built_from_the_live_rows(monkeypatch, block):
    # merge copies postings a block of terms at a time; any block size gives the same segment
    from qa.storage import postings

    monkeypatch.setattr(postings, "BLOCK", block)
    rng = np.random.default_rng(0)
    parts, tokens, keys, start = [], [], [], 0
    for n, vocab in [(50, 40), (30, 60), (70, 55)]:
        rows = [rng.integers(0, vocab, rng.integers(0, 30)) for _ in range(n)]
        part_keys = np.arange(start, start + n, dtype=np.int64) * 3
        parts.append(postings.Postings.build(part_keys, rows))
        tokens += rows
        keys += part_keys.tolist()
        start += n + 5
    dead = np.asarray(keys[::7], dtype=np.int64)
    alive = [k not in set(dead.tolist()) for k in keys]
    expected = postings.Postings.build(np.asarray([k for k, a in zip(keys, alive) if a]),
                                       [t for t, a in zip(tokens, alive) if a])
    merged = postings.merge(parts, dead, postings.Gone.of([], []))
    n = expected.terms
    np.testing.assert_array_equal(merged.keys, expected.keys)
    np.testing.assert_array_equal(merged.lengths, expected.lengths)
    np.testing.assert_array_equal(merged.indptr[:n + 1], expected.indptr)
    assert (merged.indptr[n:] == expected.indptr[-1]).all()  # terms only dead rows held
    np.testing.assert_array_equal(merged.rows, expected.rows)
    np.testing.assert_array_equal(merged.tf, expected.tf)
