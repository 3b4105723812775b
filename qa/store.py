"""index/ on disk: generations swapped in atomically, a manifest, and a writers' lock.

Layout:
    index/CURRENT        the name of the live generation (replaced atomically)
    index/gen-<n>/       manifest.json, docstore.json, vectors/, bm25/
    index/.lock          held by the one writer

A build writes a new `gen-<n>.tmp` folder, renames it to `gen-<n>`, then points CURRENT at it,
so a crash at any moment leaves the previous generation loadable.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from qa.errors import IndexDamaged, IndexLocked

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
REQUIRED_KEYS = {"format", "fingerprint", "documents", "files"}  # in every format version


class IndexStore:
    def __init__(self, index_dir: str | Path) -> None:
        self.root = Path(index_dir)

    def current(self) -> Path | None:
        """The live generation folder, or None when no index was built yet."""
        try:
            name = (self.root / CURRENT).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        path = self.root / name
        if not name.startswith("gen-") or not path.is_dir():
            raise IndexDamaged(
                f"index at {self.root} is damaged (CURRENT names a missing folder); "
                "run `qa index --rebuild`"
            )
        return path

    def read_manifest(self, generation: Path) -> dict[str, Any]:
        try:
            manifest = json.loads((generation / MANIFEST).read_text(encoding="utf-8"))
            if not isinstance(manifest, dict) or not REQUIRED_KEYS <= manifest.keys():
                raise ValueError("not a manifest")
            return manifest
        except (OSError, ValueError) as exc:
            raise IndexDamaged(
                f"index at {self.root} is damaged ({MANIFEST}: {exc.__class__.__name__}); "
                "run `qa index --rebuild`"
            ) from exc

    @contextmanager
    def lock(self, timeout: float):
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.root / ".lock"))
        try:
            lock.acquire(timeout=timeout)
        except Timeout as exc:
            raise IndexLocked(
                f"another process is writing the index at {self.root} "
                f"(waited {timeout:.0f} s); try again when it is done"
            ) from exc
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def new_generation(self):
        """Yield a fresh temporary folder; on clean exit it becomes the live generation."""
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob("gen-*.tmp"):  # left by a crashed build
            shutil.rmtree(stale, ignore_errors=True)
        numbers = [int(p.name[4:]) for p in self.root.glob("gen-*") if p.name[4:].isdigit()]
        name = f"gen-{max(numbers, default=0) + 1:06d}"
        tmp = self.root / f"{name}.tmp"
        tmp.mkdir()
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_tree(tmp)
        final = self.root / name
        os.rename(tmp, final)
        pointer = self.root / f"{CURRENT}.tmp"
        pointer.write_text(name + "\n", encoding="utf-8")
        _fsync_file(pointer)
        os.replace(pointer, self.root / CURRENT)
        _fsync_dir(self.root)
        for old in self.root.glob("gen-*"):
            if old.name != name and not old.name.endswith(".tmp"):
                shutil.rmtree(old, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        _fsync_file(path)
    except OSError:
        pass


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            _fsync_file(Path(dirpath) / name)
        _fsync_dir(Path(dirpath))
