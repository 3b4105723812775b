"""Shared fixtures: real model, real FAISS, real files; built once per test session."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# The query model's ONNX export (qa/storage/home.py cache_dir): written once for every test and the
# processes they start, never in the user's own cache.
os.environ.setdefault("QA_CACHE", os.path.join(tempfile.gettempdir(), "qa-test-cache"))

ROOT = Path(__file__).resolve().parent.parent
# The browser the page tests drive: QA_CHROMIUM, else chromium on the PATH, else Debian's path
CHROMIUM = Path(os.environ.get("QA_CHROMIUM") or shutil.which("chromium")
                or shutil.which("chromium-browser") or "/usr/bin/chromium")
NO_CHROMIUM = (f"the browser tests need Chromium (looked for QA_CHROMIUM, chromium on the PATH "
               f"and {CHROMIUM}); `bash scripts/setup --test` installs it as root, or "
               "`sudo apt-get install chromium`")


@pytest.fixture(scope="session")
def playwright_driver():
    """Playwright's sync driver, one per test process: its sync API refuses a second one while
    another runs, so every browser test starts its browser from this one."""
    need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


def need_chromium() -> None:
    """Skip a browser test loudly when there is no Chromium, and fail it under CI (CI=true),
    where a skipped face would pass unseen."""
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(NO_CHROMIUM)
    pytest.skip(NO_CHROMIUM)
SEEDS = ROOT / "seeds"
SEED_FILE = SEEDS / "000_56b9276ed6e05626.txt"


@pytest.fixture(scope="session")
def seed_index_dir(tmp_path_factory) -> Path:
    """An index of seeds/ built once; tests that only read share it."""
    from qa import Engine

    index_dir = tmp_path_factory.mktemp("seed-index")
    Engine.open(sources=[SEEDS], index_dir=index_dir)
    return index_dir


@pytest.fixture(scope="session")
def seed_engine(seed_index_dir):
    from qa import Engine

    return Engine.open(sources=[SEEDS], index_dir=seed_index_dir)


@pytest.fixture
def cache(tmp_path, seed_engine) -> Path:
    """A private copy of the test session's cache, holding what an index build exports there
    (the query model, the sentence scorer)."""
    seed_engine.ensure_query_model()
    copy = tmp_path / "cache"
    shutil.copytree(os.environ["QA_CACHE"], copy)
    return copy


@pytest.fixture
def seed_copy(tmp_path) -> Path:
    """A private copy of seeds/ that a test may change."""
    folder = tmp_path / "docs"
    shutil.copytree(SEEDS, folder)
    return folder


@pytest.fixture(scope="session")
def formats_dir(tmp_path_factory) -> Path:
    """A folder with one document of every supported format (see make_files.py)."""
    from make_files import write_formats

    return write_formats(tmp_path_factory.mktemp("formats") / "docs")


@pytest.fixture(scope="session")
def formats_engine(formats_dir, tmp_path_factory):
    """An engine over `formats_dir`, built once; tests that only read share it."""
    from qa import Engine

    return Engine.open(sources=[formats_dir], index_dir=tmp_path_factory.mktemp("formats-index"))
