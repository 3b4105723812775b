"""index/ on disk: generations swapped in atomically, a manifest, and a writers' lock.

Layout:
    index/CURRENT        the name of the live generation (replaced atomically)
    index/gen-<n>/       qa.sqlite and segments/ (qa/storage/index.py)
    index/files.json     the indexed files, also kept outside the generation
    index/.lock          held by the one writer

A write changes the live generation in one SQLite transaction. A build or rebuild writes a
new `gen-<n>.tmp` folder, renames it to `gen-<n>`, then points CURRENT at it, so a crash at
any moment leaves the previous generation loadable.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from qa.errors import IndexDamaged, IndexLocked, QAError
from qa.ingest.records import FileRecord, files_from_json

CURRENT = "CURRENT"
# The indexed files, also kept beside the generations: a rebuild of a damaged one still knows them.
FILES = "files.json"
STORE = "STORE"  # the vector store the index uses (Settings.store), beside the generations
GENERATION = re.compile(r"gen-\d{6,}")


def older_layout(generation: Path) -> bool:
    """A generation written before passages moved to SQLite (index format 5 and older: a
    manifest.json and a JSON docstore), to be rebuilt rather than read."""
    return (generation / "manifest.json").exists() and not (generation / "qa.sqlite").exists()


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

    def built(self) -> bool:
        """An index was built here: CURRENT names it, or when CURRENT is gone, a generation
        folder is left (damage that opening it names)."""
        return (self.root / CURRENT).exists() or any(_is_generation(p) for p in _listing(self.root))

    def version(self) -> tuple[int, ...]:
        """What every commit changes: CURRENT and files.json are each replaced whole (a new
        inode) by a swap and by every write. Two stat calls; () before the first build."""
        out: list[int] = []
        for name in (CURRENT, FILES):
            try:
                st = (self.root / name).stat()
            except OSError:
                continue
            out += [st.st_ino, st.st_mtime_ns]
        return tuple(out)

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
        """Keep where the live generation's files are beside it too (replaced atomically):
        enough for a rebuild to find them again when the generation is damaged."""
        listed = {origin: {"root": r.root, "in_folder": r.in_folder} for origin, r in files.items()}
        _write_atomic(self.root / FILES, json.dumps(listed))

    def write_store(self, spec: str) -> None:
        """Record which vector store the index uses, for opens that do not name one."""
        _write_atomic(self.root / STORE, spec + "\n")

    def recorded_store(self, repairing: bool = False) -> str | None:
        """The vector store the index was last written with, or None when none was recorded
        (nothing written yet, or by a qa before STORE). A STORE that cannot be read or names
        no store is damage; `repairing` (a rebuild, which writes it again) takes it for none."""
        from qa.storage.vectors import store_kind  # (numpy: not on the path of `qa --help`)

        try:
            spec = (self.root / STORE).read_bytes().decode("utf-8").strip()
            store_kind(spec)
            return spec
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, QAError) as exc:
            if repairing:
                return None
            why = "names no vector store" if isinstance(exc, QAError) else exc.__class__.__name__
            raise self.damaged(f"STORE {why}") from None

    def indexed_files(self) -> dict[str, FileRecord]:
        """The files the index holds (origin -> record): the live generation's, or when
        that cannot be read, the list kept beside it; empty when neither can be read."""
        from qa.storage.db import Database

        try:
            generation = self.current()
            if generation is not None:
                db = Database(generation)
                try:
                    return {o: db.file(o) for o in db.file_origins()}
                finally:
                    db.close()
        except (IndexDamaged, OSError):
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
        fsync_tree(tmp)
        final = self.root / name
        os.rename(tmp, final)
        pointer = self.root / f"{CURRENT}.tmp"
        pointer.write_text(name + "\n", encoding="utf-8")
        _fsync_file(pointer)
        os.replace(pointer, self.root / CURRENT)
        fsync_dir(self.root)
        for old in self.root.glob("gen-*"):
            if old.name != name and not old.name.endswith(".tmp"):
                shutil.rmtree(old, ignore_errors=True)


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


def fsync_dir(path: Path) -> None:
    try:
        _fsync_file(path)
    except OSError:
        pass


def fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            _fsync_file(Path(dirpath) / name)
        fsync_dir(Path(dirpath))
