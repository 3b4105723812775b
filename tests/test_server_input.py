"""Odd input to a running `qa serve`: each mistake is one line, for the user and in the log.

The server runs as a user starts it, from their own folder with its data folder under it, on
a copy of the seed index (nothing is re-embedded).
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request

import pytest
from conftest import CHROMIUM, ROOT, SEEDS
from test_ui import CHROMIUM_FLAGS, Server, open_app, qa_serve

EMPTY = "the question is empty; type a question"


@pytest.fixture(scope="module")
def server(seed_index_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("serve-input")
    shutil.copytree(seed_index_dir, work / "index")
    options = {"--data": "data", "--index": "index", "--source": SEEDS}
    with qa_serve(work, options, env={"PYTHONPATH": str(ROOT)}) as served:
        yield served


def log_since(server: Server, offset: int, lines_about: str, count: int) -> str:
    """The server log written after `offset`, once `count` lines mention `lines_about`."""
    deadline = time.monotonic() + 20
    while True:
        text = server.log.read_text()[offset:]
        if text.count(lines_about) >= count or time.monotonic() > deadline:
            time.sleep(0.5)  # anything printed right after the line, such as a traceback
            return server.log.read_text()[offset:]
        time.sleep(0.2)


def test_empty_question_is_one_line_for_the_client_and_in_the_log(server):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    offset = len(server.log.read_text())
    with pytest.raises(AppError, match=EMPTY):
        Client(server.url, verbose=False).predict("", api_name="/ask")
    request = urllib.request.Request(
        server.url + "gradio_api/call/ask",
        data=json.dumps({"data": ["  ", None]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        event_id = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{server.url}gradio_api/call/ask/{event_id}", timeout=60) as r:
        events = r.read().decode()
    assert "event: error" in events and EMPTY in events
    log = log_since(server, offset, EMPTY, 2)
    assert "Traceback" not in log
    assert [line for line in log.splitlines() if line.strip()] == [f"qa: ask: {EMPTY}"] * 2


@pytest.fixture(scope="module")
def page(server, playwright_driver):
    browser = playwright_driver.chromium.launch(executable_path=str(CHROMIUM),
                                                args=CHROMIUM_FLAGS)
    yield open_app(browser, server.url)
    browser.close()


def test_upload_batch_with_dot_named_files_indexes_the_others(page, server, tmp_path):
    from gradio_client import Client

    files = {
        "kite.txt": "The red kite nests in tall oak trees beside the Varnholm river.\n",
        ".hidden.txt": "The barn owl hunts voles at night.\n",
        "..\\..\\x.txt": "The grey heron fishes at dawn.\n",  # Gradio names it '....x.txt'
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    offset = len(server.log.read_text())
    page.click("#qa-tab-documents-button")
    page.set_input_files("#qa-upload input[type=file]", [str(tmp_path / n) for n in files])
    page.wait_for_function(
        "n => document.querySelectorAll('#qa-upload-status li').length >= n"
        " || document.querySelector('#qa-upload-status').innerText.trim() === 'Error'",
        arg=len(files),
    )
    status = page.inner_text("#qa-upload-status").splitlines()
    hidden = ": a hidden file (its name starts with '.'); rename it to add it"
    assert status == ["kite.txt: indexed as kite.txt", ".hidden.txt" + hidden, "....x.txt" + hidden]
    assert [p.name for p in (server.data / "uploads").iterdir()] == ["kite.txt"]
    answer = Client(server.url, verbose=False).predict(
        "Where does the red kite nest?", api_name="/ask"
    )
    assert answer["citations"][0]["passage"]["doc_id"] == "kite.txt"
    assert "Traceback" not in server.log.read_text()[offset:]


def test_check_names_hidden_files():
    from qa.ui.uploads import check

    assert check(".notes.md", 10, 100).startswith("a hidden file")
    assert check("notes.md", 10, 100) is None
