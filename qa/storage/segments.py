"""Segment folders: naming, which to merge, checksums, and clearing the unused.

    <generation>/segments/seg-00000042/   bm25/ (qa/storage/postings.py), vectors/ (qa/vectors)

A write adds one segment; the segments it names are listed in the SQLite file, in the same
transaction as the passages, so a segment that a crash left unlisted is never read (the next
writer deletes it). A write merges the newest segments into its own while they are small
beside it (`merge_count`), so a segment count stays logarithmic in the passages and each
passage is rewritten a logarithmic number of times.
"""

from __future__ import annotations

import re
import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path

from qa.storage import store

FOLDER = "segments"
NAME = re.compile(r"seg-(\d{8,})")
GROWTH = 4  # a segment is merged into the next write while it is at most this many times its size
CHECKED_BYTES = 256 << 20  # up to this size, every file's CRC is checked on open


def folder_of(generation: Path, name: str) -> Path:
    return generation / FOLDER / name


def next_name(generation: Path, names: Sequence[str]) -> str:
    """A name above every segment listed or left on disk."""
    numbers = [int(m.group(1)) for n in [*names, *_on_disk(generation)]
               if (m := NAME.fullmatch(n))]
    return f"seg-{max(numbers, default=0) + 1:08d}"


def merge_count(sizes: Sequence[int], added: int) -> int:
    """How many of the newest segments (sizes oldest first) a write of `added` rows takes in."""
    count, total = 0, added
    while count < len(sizes) and sizes[-1 - count] <= GROWTH * max(total, 1):
        total += sizes[-1 - count]
        count += 1
    return count


def sums(folder: Path) -> dict[str, list[int]]:
    """Size and CRC-32 of every file of a segment."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            out[path.relative_to(folder).as_posix()] = [path.stat().st_size, crc_of(path)]
    return out


def crc_of(path: Path) -> int:
    value = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            value = zlib.crc32(chunk, value)
    return value


def verify(generation: Path, segments: Sequence[tuple[str, dict[str, list[int]]]],
           crc: bool = True) -> None:
    """Raise ValueError when a segment's file is missing, has another size, or (`crc`, and
    the segments small enough to read on every open) another CRC than when written."""
    total = sum(size for _, files in segments for size, _ in files.values())
    check_crc = crc and total <= CHECKED_BYTES
    for name, files in segments:
        folder = folder_of(generation, name)
        actual = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        for extra in sorted(actual - files.keys()):
            raise ValueError(f"{name}/{extra} is not part of the index")
        for file, (size, value) in files.items():
            path = folder / file
            try:
                if path.stat().st_size != size:
                    raise ValueError(f"{name}/{file} does not match the index")
            except FileNotFoundError:
                raise ValueError(f"{name}/{file} is missing") from None
            if check_crc and crc_of(path) != value:
                raise ValueError(f"{name}/{file} does not match the index")


def clear_unlisted(generation: Path, listed: Sequence[str]) -> None:
    """Delete segment folders the index no longer lists (merged, or left by a crash).
    A reader still answering from one keeps its open files."""
    keep = set(listed)
    for name in _on_disk(generation):
        if name not in keep:
            shutil.rmtree(generation / FOLDER / name, ignore_errors=True)


def fsync_tree(root: Path) -> None:
    """The segment's files and folders on disk, and its entry in the segments folder."""
    store.fsync_tree(root)
    store.fsync_dir(root.parent)


def _on_disk(generation: Path) -> list[str]:
    """The segment folders on disk (a stray file is not one)."""
    try:
        return [p.name for p in (generation / FOLDER).iterdir() if p.is_dir()]
    except OSError:
        return []
