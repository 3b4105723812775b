"""Uploaded files -> checked copies under the app's data folder, ready to be indexed.

A file is kept only when its type is one the loader reads and its size is under the cap; it
is stored under `<data>/uploads/` with a sanitized name (no folders, no path traversal).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from qa.settings import SUPPORTED_SUFFIXES

DEFAULT_MAX_MB = 20.0
UPLOADS = "uploads"  # under the data folder; also a source the engine keeps indexed
MAX_NAME_CHARS = 120


@dataclass
class Stored:
    name: str  # the name the user gave the file
    path: Path  # where it is kept (its name is the document's doc_id unless another has it)
    backup: Path | None = None  # the file it replaced, until the new one is indexed

    def keep(self) -> None:
        if self.backup:
            self.backup.unlink(missing_ok=True)

    def undo(self) -> None:
        """Put back what was there before (the index still holds the old version)."""
        if self.backup:
            os.replace(self.backup, self.path)
        else:
            self.path.unlink(missing_ok=True)


@dataclass
class Rejected:
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


def uploads_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / UPLOADS


def safe_name(name: str) -> str:
    """A plain file name from whatever the browser sent: the last path part, only letters,
    digits, '.', '-', '_' and spaces, no leading dot, at most MAX_NAME_CHARS."""
    name = unicodedata.normalize("NFKC", name).replace("\\", "/").split("/")[-1]
    name = re.sub(r"[^\w.\- ]", "_", name, flags=re.ASCII)
    name = re.sub(r"\s+", " ", name).strip(" .")
    stem, suffix = os.path.splitext(name)
    stem = stem[: MAX_NAME_CHARS - len(suffix)].strip(" .")
    return f"{stem or 'upload'}{suffix.lower()}"


def check(name: str, size: int, max_bytes: int) -> str | None:
    """Why a file cannot be uploaded, or None when it can."""
    if name.startswith("."):  # `qa index` skips hidden files too
        return "a hidden file (its name starts with '.'); rename it to add it"
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in SUPPORTED_SUFFIXES:
        allowed = ", ".join(SUPPORTED_SUFFIXES)
        shown = f"'{suffix}'" if suffix else "without an extension"
        return f"file type {shown} is not allowed (allowed: {allowed})"
    if size > max_bytes:
        return f"too large ({_size(size)}; the limit is {_size(max_bytes)})"
    if size == 0:
        return "empty file"
    return None


def _size(n: int) -> str:
    """Rounded up, so a file just over the limit never reads as the limit itself."""
    if n < 2**20 // 10:
        return f"{math.ceil(n / 1024)} KB"
    return f"{math.ceil(n / 2**20 * 10) / 10:g} MB"


def store(
    files: list[str | Path], folder: Path, max_bytes: int
) -> tuple[list[Stored], list[Rejected]]:
    """Copy the acceptable files into `folder`; say why each other one was refused."""
    folder.mkdir(parents=True, exist_ok=True)
    stored: list[Stored] = []
    rejected: list[Rejected] = []
    taken: set[str] = set()
    for file in files:
        file = Path(file)
        shown = file.name
        try:
            size = file.stat().st_size
        except OSError:
            rejected.append(Rejected(shown, "the upload did not arrive; try again"))
            continue
        reason = check(shown, size, max_bytes)
        name = safe_name(shown)
        if reason is None and name in taken:
            reason = f"another file in this upload is also named {name}"
        if reason:
            rejected.append(Rejected(shown, reason))
            continue
        taken.add(name)
        target = folder / name
        backup = folder / f".previous-{name}" if target.exists() else None
        # Written beside the target and swapped in, so a failed copy never leaves half a file.
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-")
        os.close(fd)
        try:
            shutil.copyfile(file, tmp)
            if backup:
                os.replace(target, backup)
            os.replace(tmp, target)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            rejected.append(Rejected(shown, f"could not be saved ({exc.strerror or exc})"))
            continue
        stored.append(Stored(shown, target, backup))
    return stored, rejected


def discard(folder: Path, origin: str) -> bool:
    """Delete the uploaded file a removed document came from (its `origin`), when that file
    is in `folder`; files anywhere else (a `--source` folder) are never touched."""
    if not origin:
        return False
    path = Path(origin)
    if path.parent.resolve() != folder.resolve() or not path.is_file():
        return False
    path.unlink()
    return True
