"""Who may change the index from the page: the person who starts the server. Driven the way
anyone who can reach the port could drive it: raw HTTP to Gradio's queue, not gradio_client."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from conftest import SEED_FILE, SEEDS
from test_ui import _free_port, _wait_until_up

SEED_DOC = SEED_FILE.name
LIGHTHOUSE = (
    "# Varnholm lighthouse\n\nThe Varnholm lighthouse is kept by Ingrid Solberg, who lights "
    "the lamp every evening at dusk.\n"
)


# ---- raw HTTP, as a browser or a script speaks to the queue --------------------------------
def config(base: str) -> dict:
    return httpx.get(f"{base}/config", timeout=30).json()


def fn_index(cfg: dict, elem_id: str, event: str) -> int | None:
    """The fn_index of the event `event` of the component with `elem_id`, if registered."""
    ids = {c["id"]: c.get("props", {}).get("elem_id") for c in cfg["components"]}
    for i, dep in enumerate(cfg["dependencies"]):
        if any(ids.get(target) == elem_id and name == event for target, name in dep["targets"]):
            return i
    return None


def join(base: str, session: str, fn: int, data: list) -> dict:
    """POST /gradio_api/queue/join, then read /gradio_api/queue/data (server-sent events)
    until the event completes; the completion message, or the refusal at the door."""
    body = {"data": data, "fn_index": fn, "session_hash": session}
    joined = httpx.post(f"{base}/gradio_api/queue/join", json=body, timeout=30)
    if joined.status_code != 200:
        return {"msg": "refused", "status": joined.status_code, "success": False}
    event_id = joined.json()["event_id"]
    url = f"{base}/gradio_api/queue/data?session_hash={session}"
    with httpx.stream("GET", url, timeout=60) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("event_id") == event_id and message["msg"] == "process_completed":
                return message
    raise AssertionError(f"fn_index {fn} never completed")


def load_page(base: str, session: str, cfg: dict) -> None:
    """What opening the page does: run the load events (they fill the dropdown's choices)."""
    for i, dep in enumerate(cfg["dependencies"]):
        if any(name == "load" for _, name in dep["targets"]):
            assert join(base, session, i, [])["success"]


def upload_through_page(base: str, cfg: dict, file: Path) -> dict:
    """The page's upload: the file to /gradio_api/upload, then the upload event with it."""
    with open(file, "rb") as f:
        sent = httpx.post(f"{base}/gradio_api/upload", files={"files": (file.name, f)}, timeout=30)
    path = sent.json()[0]
    data = {"path": path, "orig_name": file.name, "meta": {"_type": "gradio.FileData"}}
    session = uuid.uuid4().hex
    load_page(base, session, cfg)
    return join(base, session, fn_index(cfg, "qa-upload", "upload"), [[data]])


def indexed(index_dir: Path) -> list[str]:
    """The documents in the index on disk, read by a fresh engine."""
    from qa import Engine

    return [d["doc_id"] for d in Engine.open(sources=None, index_dir=index_dir).documents()]


# ---- servers -------------------------------------------------------------------------------
@pytest.fixture
def start(seed_index_dir, tmp_path):
    """Start `ui.app.serve` on 127.0.0.1 over a copy of the seed index, as `qa serve` does
    (seeds/ and the uploads folder as sources); every server is closed afterwards."""
    from qa import Engine
    from qa.ui.app import serve

    apps = []
    temp_dir = os.environ.get("GRADIO_TEMP_DIR")

    def _start(allow_changes: bool):
        index, data = tmp_path / "index", tmp_path / "data"
        shutil.copytree(seed_index_dir, index)
        (data / "uploads").mkdir(parents=True)
        engine = Engine.open(sources=[SEEDS, data / "uploads"], index_dir=index)
        port = _free_port()
        apps.append(serve(engine, port=port, data_dir=data, block=False,
                          allow_changes=allow_changes))
        return f"http://127.0.0.1:{port}", index, data

    yield _start
    for app in apps:
        app.close()
    if temp_dir is None:  # serve() sets it for its own process; later subprocesses pick theirs
        os.environ.pop("GRADIO_TEMP_DIR", None)


# ---- tests ---------------------------------------------------------------------------------
def test_a_read_only_server_has_no_event_that_changes_the_index(start):
    from gradio_client import Client

    base, index, _ = start(allow_changes=False)
    cfg = config(base)
    assert fn_index(cfg, "qa-remove", "click") is None
    assert fn_index(cfg, "qa-upload", "upload") is None
    page = httpx.get(base, timeout=30).text + json.dumps(cfg)
    assert "read-only" in page and "--allow-changes" in page
    sent = httpx.post(f"{base}/gradio_api/upload", files={"files": ("a.txt", b"text")}, timeout=30)
    assert sent.status_code == 413  # not even Gradio's upload cache takes a file
    # Every fn_index there is (and a few past the end), aimed at the seed document.
    session = uuid.uuid4().hex
    load_page(base, session, cfg)
    for fn in range(len(cfg["dependencies"]) + 3):
        join(base, session, fn, [[SEED_DOC]])
    assert indexed(index) == [SEED_DOC]
    answer = Client(base + "/", verbose=False).predict("What did Russia demand?", api_name="/ask")
    assert answer["answered"] and answer["citations"]


def test_the_page_removes_uploads_but_never_a_source_document(start, tmp_path):
    base, index, data = start(allow_changes=True)
    cfg = config(base)
    remove = fn_index(cfg, "qa-remove", "click")
    assert remove is not None
    session = uuid.uuid4().hex
    load_page(base, session, cfg)
    done = join(base, session, remove, [[SEED_DOC]])
    assert not done["success"]
    assert indexed(index) == [SEED_DOC]
    assert SEED_FILE.is_file()

    doc = tmp_path / "Lighthouse notes.md"
    doc.write_text(LIGHTHOUSE, encoding="utf-8")
    done = upload_through_page(base, cfg, doc)
    assert done["success"], done
    assert "indexed as Lighthouse notes.md" in done["output"]["data"][0]
    assert (data / "uploads" / doc.name).is_file()
    session = uuid.uuid4().hex
    load_page(base, session, cfg)
    done = join(base, session, remove, [[doc.name]])
    assert done["success"], done
    assert f"{doc.name}: removed from the index" in done["output"]["data"][0]
    assert not (data / "uploads" / doc.name).exists()
    assert indexed(index) == [SEED_DOC]


def test_library_refuses_a_source_document_and_lists_only_uploads(seed_index_dir, tmp_path):
    """The check lives in `Library.remove` itself, whatever route reaches it."""
    from qa import Engine
    from qa.ui.library import Library

    index, data = tmp_path / "index", tmp_path / "data"
    shutil.copytree(seed_index_dir, index)
    (data / "uploads").mkdir(parents=True)  # as `qa serve` makes it: a source must exist
    engine = Engine.open(sources=[SEEDS, data / "uploads"], index_dir=index)
    lib = Library(engine, data, 1)
    doc = tmp_path / "Lighthouse notes.md"
    doc.write_text(LIGHTHOUSE, encoding="utf-8")
    assert lib.add([doc], lambda done, desc: None)[0].ok
    assert lib.removable() == [doc.name]

    results = lib.remove([SEED_DOC, doc.name, "nothing.txt"])
    assert [r.message for r in results] == [
        f"{SEED_DOC}: comes from {SEEDS}; remove it there, not from the page",
        f"{doc.name}: removed from the index",
        "nothing.txt: not in the index",
    ]
    assert [d["doc_id"] for d in engine.documents()] == [SEED_DOC]
    assert indexed(index) == [SEED_DOC] and SEED_FILE.is_file()


def test_a_non_loopback_bind_is_read_only_unless_asked(seed_index_dir, tmp_path):
    """`qa serve --host 0.0.0.0`: no upload or remove event exists."""
    index = tmp_path / "index"
    shutil.copytree(seed_index_dir, index)
    port = _free_port()
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "qa.faces.cli", "serve", "--host", "0.0.0.0",
               "--port", str(port),
               "--index", str(index), "--source", str(SEEDS), "--data", str(tmp_path / "data")]
    env = {k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"}
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                env=env)
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/", proc, log)
        cfg = config(f"http://127.0.0.1:{port}")
        # the start-up line comes after the first warm question, a while after the page
        deadline = time.monotonic() + 120
        while "the app is at" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert fn_index(cfg, "qa-remove", "click") is None
    assert fn_index(cfg, "qa-upload", "upload") is None
    assert "read-only" in log.read_text()


def test_allow_changes_and_read_only_together_is_one_line_and_exit_2(capsys):
    from qa.faces.cli import main

    assert main(["serve", "--allow-changes", "--read-only"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--allow-changes" in err and "--read-only" in err


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("example.org", False),
])  # fmt: skip
def test_only_loopback_binds_allow_changes_by_default(host, loopback):
    from qa.ui.app import is_loopback

    assert is_loopback(host) is loopback


def test_a_refused_removal_leaves_no_traceback_in_the_log(start, capfd):
    """A page (or script) whose list of documents is stale is refused by Gradio's own check
    of the list: the document stays, and the server log holds no traceback."""
    base, index, _ = start(allow_changes=True)
    cfg = config(base)
    done = join(base, uuid.uuid4().hex, fn_index(cfg, "qa-remove", "click"), [[SEED_DOC]])
    assert not done["success"]
    assert "not in the list of choices" in str(done["output"])
    assert "Traceback" not in capfd.readouterr().err
    assert indexed(index) == [SEED_DOC]
