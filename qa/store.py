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
import re
import shutil
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from qa.errors import IndexDamaged, IndexLocked
from qa.records import FileRecord, files_from_json, files_to_json

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
# The indexed files, also kept beside the generations: a rebuild of a damaged one still knows them.
FILES = "files.json"
STORE = "STORE"  # the vector store the index uses (Settings.store), beside the generations
REQUIRED_KEYS = {"format", "fingerprint", "documents", "files"}  # in every format version
GENERATION = re.compile(r"gen-\d{6,}")
SUMMED = re.compile(rb'\{"checksum": "([0-9a-f]{8})", ')  # leads the manifest's bytes
SUMMED_SINCE = 4  # the first format whose manifests carry their checksum


class IndexStore:
    def __init__(self, index_dir: str | Path) -> None:
        self.root = Path(index_dir)

    def current(self) -> Path | None:
        """The live generation folder, or None when no index was built yet."""
        pointer = self.root / CURRENT
        try:
            name = pointer.read_bytes().decode("ascii").strip()
        except FileNotFoundError:
            if any(_is_generation(p) for p in _listing(self.root)):
                raise self.damaged("CURRENT is missing") from None
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise self.damaged(f"CURRENT: {exc.__class__.__name__}") from exc
        if not GENERATION.fullmatch(name):
            raise self.damaged("CURRENT does not name a generation")
        if not (self.root / name).is_dir():
            raise self.damaged("CURRENT names a missing folder")
        return self.root / name

    def read_manifest(self, generation: Path) -> dict[str, Any]:
        try:
            data = (generation / MANIFEST).read_bytes()
            manifest = json.loads(data.decode("utf-8"))
            if not isinstance(manifest, dict) or not REQUIRED_KEYS <= manifest.keys():
                raise ValueError("not a manifest")
            _verify_manifest(data, manifest)
            return manifest
        except (OSError, ValueError) as exc:
            raise self.damaged(f"{MANIFEST}: {exc.__class__.__name__}") from exc

    def damaged(self, why: str) -> IndexDamaged:
        return IndexDamaged(f"index at {self.root} is damaged ({why}); run `qa index --rebuild`")

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

    def write_files(self, files: dict[str, FileRecord]) -> None:
        """Keep the live generation's `files` beside it too (replaced atomically)."""
        _write_atomic(self.root / FILES, json.dumps(files_to_json(files)))

    def write_store(self, spec: str) -> None:
        """Record which vector store the index uses, for opens that do not name one."""
        _write_atomic(self.root / STORE, spec + "\n")

    def recorded_store(self) -> str | None:
        """The vector store the index was last written with, or None."""
        try:
            return (self.root / STORE).read_text(encoding="utf-8").strip() or None
        except (OSError, UnicodeDecodeError):
            return None

    def indexed_files(self) -> dict[str, FileRecord]:
        """The files the index holds (origin -> record): the live generation's list, or when
        that cannot be read, the copy kept beside it; empty when neither can be read."""
        try:
            generation = self.current()
            if generation is not None:
                return files_from_json(self.read_manifest(generation)["files"])
        except (IndexDamaged, OSError, KeyError, TypeError, ValueError, AttributeError):
            pass
        try:
            return files_from_json(json.loads((self.root / FILES).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, AttributeError):
            return {}

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
        if (self.root / CURRENT).is_dir() and not (self.root / CURRENT).is_symlink():
            shutil.rmtree(self.root / CURRENT)  # damage that would block the swap below
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


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """The manifest as JSON led by the CRC-32 of the rest of its bytes, which hold the
    checksums of every other file: a change anywhere in a generation is found on load."""
    body = json.dumps(manifest).encode("utf-8")
    head = b'{"checksum": "%08x", ' % zlib.crc32(body[1:])
    (folder / MANIFEST).write_bytes(head + body[1:])


def _verify_manifest(data: bytes, manifest: dict[str, Any]) -> None:
    match = SUMMED.match(data)
    manifest.pop("checksum", None)
    if match is None:
        if not _written_before_checksums(manifest):
            raise ValueError("no checksum")
    elif int(match.group(1), 16) != zlib.crc32(data[match.end() :]):
        raise ValueError("checksum does not match")


def _written_before_checksums(manifest: dict[str, Any]) -> bool:
    """Whether both the format and the fingerprint say the manifest predates checksums
    (such an index is rebuilt on opening, its fingerprint being another)."""
    try:
        formats = (manifest["format"], json.loads(manifest["fingerprint"])["format"])
    except (TypeError, ValueError, KeyError):
        return False
    return all(isinstance(f, int) and f < SUMMED_SINCE for f in formats)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    _fsync_file(tmp)
    os.replace(tmp, path)


def _is_generation(path: Path) -> bool:
    return GENERATION.fullmatch(path.name) is not None and path.is_dir()


def _listing(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


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
