"""Where qa keeps its index and data, and which documents it keeps indexed when none are named.

The home folder: `QA_HOME` if set; else the qa checkout when run from inside it (its `index/`
and `data/`, as the README's commands expect); else `$XDG_DATA_HOME/qa` or `~/.local/share/qa`.
The cache (`cache_dir`) holds what can be made again, such as the query model's ONNX export.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from qa.storage.store import IndexStore


def is_checkout(folder: Path) -> bool:
    """`folder` is the qa source checkout: a pyproject.toml naming the project "qa", and seeds/."""
    try:
        project = (folder / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, ValueError):
        return False
    # (a pattern, not a TOML parser: tomllib is Python 3.11+ and qa runs on 3.10)
    return bool(re.search(r'^name\s*=\s*"qa"\s*$', project, re.M)) and (folder / "seeds").is_dir()


def home() -> Path:
    if os.environ.get("QA_HOME"):
        return Path(os.environ["QA_HOME"]).expanduser()
    here = Path.cwd()
    if is_checkout(here):
        return here
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "qa"


def default_index() -> Path:
    return home() / "index"


def default_data() -> Path:
    return home() / "data"


def cache_dir() -> Path:
    """What qa derives once per machine and can make again (the embedding model's ONNX
    export): `QA_CACHE`, else `$XDG_CACHE_HOME/qa` or `~/.cache/qa`."""
    if os.environ.get("QA_CACHE"):
        return Path(os.environ["QA_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qa"


def seeds_dir() -> Path:
    """The seed article shipped with qa (in a checkout, its seeds/ folder)."""
    return Path(str(files("qa.seeds")))


def has_index(index_dir: str | Path) -> bool:
    """An index was built in `index_dir`: its CURRENT, or a generation when CURRENT is gone
    (it may still be damaged: opening it says so)."""
    return IndexStore(index_dir).built()


def indexed_sources(index_dir: str | Path) -> list[Path]:
    """The folders and files the index holds documents from, those that still exist: each
    folder that was indexed as a folder, and each file indexed by name."""
    entries = IndexStore(index_dir).indexed_files()  # (a damaged generation: its copy)
    sources: dict[str, Path] = {}
    for origin, record in entries.items():
        # files indexed before folders were told apart count as found in their root folder
        by_name = record.in_folder is False
        path = Path(origin if by_name else record.root or Path(origin).parent)
        if path.exists():
            sources.setdefault(str(path), path)
    return list(sources.values())


def sources_to_keep(
    index_dir: str | Path, named: Sequence[Path], extra: Sequence[Path], in_home: bool
) -> tuple[list[Path], bool]:
    """The sources to keep indexed: those named, `extra` ones, the folders and files the index
    already holds, and, when none were named and the home index (`in_home`) does not exist
    yet, the seed article; and whether the seed article was added."""
    sources = {str(p.resolve()): p for p in [*named, *extra]}
    for p in indexed_sources(index_dir):
        sources.setdefault(str(p.resolve()), p)
    # (never for an index that exists: a rebuild of a damaged one must not swap its
    # documents for the seed article)
    seeded = not has_index(index_dir) and in_home and not named
    if seeded:
        sources.setdefault(str(seeds_dir().resolve()), seeds_dir())
    return list(sources.values()), seeded
