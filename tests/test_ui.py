"""The browser app as a user meets it: `qa serve` on a free port, its `ask` API through
gradio_client, and the page itself in headless Chromium."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import CHROMIUM, ROOT, SEEDS, need_chromium

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]  # the user-data dir is Playwright's argument, a fresh temp folder
MAX_UPLOAD_MB = 1  # small, so the size check is tested without a 20 MB file
WAIT_MS = 60_000

needs_chromium = pytest.mark.usefixtures("chromium")


@dataclass
class Server:
    url: str
    port: int
    data: Path
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"qa serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (OSError, http.client.HTTPException):  # not up, or another server on the port
            time.sleep(0.5)
    raise RuntimeError(f"qa serve did not answer within {timeout} s:\n{log.read_text()}")


@contextmanager
def qa_serve(work: Path, options: dict, env: dict | None = None, flags: Sequence[str] = ()):
    """`qa serve` started from `work` in its own process, stopped when the block ends;
    `flags`: more arguments as they are."""
    log = work / "serve.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    # A free port can be taken before the server binds it (another test's Milvus Lite picks
    # ports too): then the server exits, and it starts again on another.
    for attempt in range(3):
        port = _free_port()
        command = [sys.executable, "-m", "qa.faces.cli", "serve", "--port", str(port),
                   *(str(x) for o in options.items() for x in o), *flags]  # fmt: skip
        with open(log, "w") as out:
            proc = subprocess.Popen(command, cwd=work, stdout=out, stderr=subprocess.STDOUT,
                                    env=env)
        url = f"http://127.0.0.1:{port}/"
        try:
            _wait_until_up(url, proc, log)
            break
        except RuntimeError:
            if proc.poll() is None or attempt == 2:
                proc.kill()
                raise
    try:
        deadline = time.monotonic() + 30  # up, and it has said so: its log starts after that
        while "the app is at" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        yield Server(url, port, work / str(options.get("--data", "data")), log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def server(seed_index_dir, tmp_path_factory):
    """`qa serve` in its own process, on a copy of the seed index (nothing is re-embedded)."""
    work = tmp_path_factory.mktemp("app")
    shutil.copytree(seed_index_dir, work / "index")
    options = {"--data": work / "data", "--index": work / "index", "--source": SEEDS,
               "--max-upload-mb": MAX_UPLOAD_MB}  # fmt: skip
    with qa_serve(work, options) as served:
        yield served


# ---- the server and its API ------------------------------------------------------------
def test_server_listens_on_loopback_only(server):
    """Bound to 127.0.0.1, not to every interface (read from the kernel's socket table)."""
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.rsplit(":", 1)
            if int(port, 16) == server.port and state == "0A":  # 0A: LISTEN
                listening.append(address)
    assert listening == ["0100007F"]  # 127.0.0.1, little-endian hex


def test_api_ask_returns_answer_and_citations(server):
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    result = client.predict("What did Russia demand?", api_name="/ask")
    assert result["question"] == "What did Russia demand?"
    assert result["answered"] is True
    assert result["citations"], result
    assert "[1]" in result["text"]
    article = SEEDS.joinpath("000_56b9276ed6e05626.txt").read_text(encoding="utf-8")
    for citation in result["citations"]:
        passage = citation["passage"]
        assert passage["source"] == "000_56b9276ed6e05626.txt"
        assert article[citation["quote_start"]:citation["quote_end"]] == citation["quote"]
        assert article[passage["start"]:passage["end"]] == passage["text"]
        assert citation["quote"] in result["text"]
        assert f"[{citation['n']}]" in result["text"]


def test_api_ask_takes_history(server):
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    result = client.predict("How did the US respond to them?", ["What did Russia demand?"],
                            api_name="/ask")
    assert result["question"] == "How did the US respond to them?"
    assert result["standalone_question"] != result["question"]  # "them": Russia's demands
    assert result["answered"] and "demands" in result["text"]


def test_api_rejects_an_empty_question_in_one_line(server):
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    with pytest.raises(Exception) as failure:
        client.predict("   ", api_name="/ask")
    message = str(failure.value)
    assert "empty" in message and "Traceback" not in message


def test_api_lists_only_ask(server):
    from gradio_client import Client

    endpoints = Client(server.url, verbose=False).view_api(print_info=False, return_format="dict")
    assert list(endpoints["named_endpoints"]) == ["/ask", "/search", "/list_documents"]


# ---- the page in a browser -------------------------------------------------------------
@pytest.fixture(scope="session")
def chromium():
    need_chromium()


@pytest.fixture(scope="session")
def browser(playwright_driver):
    profile = tempfile.mkdtemp(prefix="qa-chromium-")
    context = playwright_driver.chromium.launch_persistent_context(
        profile,
        executable_path=str(CHROMIUM),
        args=CHROMIUM_FLAGS,
        headless=True,
        viewport={"width": 1400, "height": 900},
    )
    yield context
    context.close()
    shutil.rmtree(profile, ignore_errors=True)


def open_app(browser, url: str):
    """A new page of `browser` (a browser or a context) on the app at `url`, loaded."""
    page = browser.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    page.wait_for_selector("#qa-question textarea")
    return page


@pytest.fixture
def page(browser, server):
    page = open_app(browser, server.url)
    yield page
    page.close()


def ask(page, question: str) -> None:
    before = page.locator("#qa-chat [data-testid=bot]").count()
    page.fill("#qa-question textarea", question)
    page.press("#qa-question textarea", "Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('#qa-chat [data-testid=bot]').length > n", arg=before
    )
    page.wait_for_selector("#qa-sources-panel .qa-source")


def upload(page, *files: Path) -> str:
    page.click("#qa-tab-documents-button")
    page.set_input_files("#qa-upload input[type=file]", [str(f) for f in files])
    page.wait_for_function(
        "n => document.querySelectorAll('#qa-upload-status li').length >= n", arg=len(files)
    )
    status = page.inner_text("#qa-upload-status")
    page.click("#qa-tab-ask-button")
    return status


def last_answer(page) -> str:
    return page.locator("#qa-chat [data-testid=bot]").last.inner_text()


@needs_chromium
def test_page_answers_with_a_highlighted_citation(page):
    assert page.get_by_text("What did Russia demand?").count() >= 1  # an example on first load
    ask(page, "What did Russia demand?")
    answer = last_answer(page)
    assert "[1]" in answer
    panel = page.locator("#qa-sources-panel")
    quote = panel.locator("article.qa-source mark.qa-quote").first
    quoted = " ".join(quote.inner_text().split())
    assert quoted and quoted in " ".join(answer.split())
    assert quote.evaluate("m => getComputedStyle(m).backgroundColor") == "rgb(253, 230, 138)"
    card = panel.locator("article.qa-source").first  # the title first, then the file
    assert card.locator("header").inner_text() == "[1] NATO strengthens presence in Eastern Europe"
    assert card.locator(".qa-origin").inner_text() == "000_56b9276ed6e05626.txt · CNN, 2022-01-24"
    assert re.fullmatch(r"paragraph \d+", panel.locator(".qa-loc").first.inner_text())
    assert re.fullmatch(r"match 0\.\d\d", panel.locator(".qa-score").first.inner_text())
    assert panel.locator(".qa-score").first.get_attribute("title").startswith("How closely")
    assert not page.locator("#qa-to-sources").is_visible()  # the panel is beside the chat
    context = panel.locator(".qa-context-text").first
    assert not context.is_visible()
    panel.locator(".qa-context summary").first.click()
    assert context.is_visible() and quoted in " ".join(context.inner_text().split())
    page.wait_for_timeout(200)
    in_view = """box => {
        const here = box.querySelector('.qa-here').getBoundingClientRect();
        const view = box.getBoundingClientRect();
        return here.top >= view.top && here.top < view.bottom;
    }"""
    assert context.evaluate(in_view), "the opened document is not scrolled to the passage"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "answer.png"), full_page=True)


@needs_chromium
def test_example_question_then_new_conversation(page):
    page.locator("#qa-chat button.example", has_text="What did Russia demand?").click()
    page.wait_for_selector("#qa-chat [data-testid=bot]")
    page.wait_for_selector("#qa-sources-panel mark.qa-quote")
    first_sources = page.inner_text("#qa-sources-panel")
    ask(page, "How did the US respond?")
    bots = page.locator("#qa-chat [data-testid=bot]")
    assert bots.count() == 2
    latest_sources = page.inner_text("#qa-sources-panel")
    assert latest_sources != first_sources, "the two answers should show different sources"
    bots.first.click()  # an earlier answer's sources come back
    page.wait_for_function(
        "text => document.querySelector('#qa-sources-panel').innerText === text", arg=first_sources
    )
    bots.last.click()
    page.wait_for_function(
        "text => document.querySelector('#qa-sources-panel').innerText === text", arg=latest_sources
    )
    page.click("#qa-new")
    page.wait_for_function("document.querySelectorAll('#qa-chat [data-testid=bot]').length === 0")
    page.wait_for_selector("#qa-sources-panel .qa-empty")


@needs_chromium
def test_declined_answer_looks_different_and_shows_closest_passages(page):
    ask(page, "What is the boiling point of mercury in kelvin?")
    assert page.locator("#qa-chat [data-testid=bot] .qa-declined-label").count() == 1
    panel = page.locator("#qa-sources-panel .qa-sources")
    assert "qa-declined" in panel.get_attribute("class")
    assert "do not answer" in page.inner_text("#qa-sources-panel .qa-status")
    assert page.locator("#qa-sources-panel .qa-source").count() >= 1
    assert page.locator("#qa-sources-panel mark.qa-quote").count() == 0


@needs_chromium
def test_upload_then_ask_then_remove(page, server, tmp_path):
    doc = tmp_path / "Lighthouse notes.md"
    doc.write_text(
        "# Varnholm lighthouse\n\nThe Varnholm lighthouse is kept by Ingrid Solberg, who "
        "lights the lamp every evening at dusk. It was built of granite in 1874 and its beam "
        "reaches thirty kilometres out to sea.\n",
        encoding="utf-8",
    )
    status = upload(page, doc)
    assert "Lighthouse notes.md: indexed as Lighthouse notes.md" in status
    assert (server.data / "uploads" / "Lighthouse notes.md").read_bytes() == doc.read_bytes()
    assert list((server.data / "tmp").rglob("Lighthouse notes.md"))  # Gradio's upload cache
    ask(page, "Who keeps the Varnholm lighthouse?")
    assert "Ingrid Solberg" in last_answer(page)
    sources = page.locator("#qa-sources-panel .qa-doc").all_inner_texts()
    assert "Lighthouse notes.md" in sources

    page.click("#qa-tab-documents-button")
    page.wait_for_selector("#qa-documents :text('Lighthouse notes.md')")
    page.click("#qa-remove-pick input")
    page.keyboard.type("Lighthouse")
    page.keyboard.press("Enter")
    page.click("#qa-remove")
    page.wait_for_selector("#qa-upload-status :text('removed from the index')")
    assert page.locator("#qa-documents :text('Lighthouse notes.md')").count() == 0
    assert not (server.data / "uploads" / "Lighthouse notes.md").exists()


@needs_chromium
def test_pdf_citation_shows_its_page_and_jsonl_adds_each_record(page, tmp_path):
    from make_files import write_jsonl, write_pdf

    pdf = write_pdf(
        tmp_path / "observatory.pdf",
        [
            "The Kessel observatory stands on a ridge above the village of Ormsund.",
            "The Kessel observatory telescope has a mirror of 2.4 metres, ground in Jena in 1931.",
        ],
        title="Kessel observatory",
    )
    corpus = write_jsonl(
        tmp_path / "orchards.jsonl",
        [
            {"_id": "orchard-1", "title": "Pear orchard", "text": "The pear orchard has 40 trees."},
            {"_id": "orchard-2", "title": "Plum orchard", "text": "The plum orchard is on a hill."},
        ],
    )
    status = upload(page, pdf, corpus)
    assert "observatory.pdf: indexed as observatory.pdf" in status
    assert "orchards.jsonl: 2 document(s) added" in status
    ask(page, "How large is the mirror of the Kessel observatory telescope?")
    first = page.locator("#qa-sources-panel .qa-source").first
    assert first.locator(".qa-doc").inner_text() == "observatory.pdf"
    assert first.locator(".qa-loc").inner_text() == "page 2"
    assert "2.4 metres" in first.locator(".qa-passage mark.qa-quote").inner_text()


@needs_chromium
def test_upload_rejects_bad_files_one_line_each(page, server, tmp_path):
    (tmp_path / "tool.exe").write_bytes(b"MZ\x90\x00")
    (tmp_path / "big.txt").write_text("word " * (MAX_UPLOAD_MB * 2**20 // 5 + 1000))
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "broken.jsonl").write_text('{"_id": "a", "text": \n', encoding="utf-8")
    (tmp_path / "scan.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    names = ["tool.exe", "big.txt", "empty.txt", "broken.jsonl", "scan.pdf"]
    status = upload(page, *(tmp_path / n for n in names)).splitlines()
    assert len(status) == len(names), status
    assert "tool.exe: file type '.exe' is not allowed" in status[0]
    assert re.fullmatch(
        rf"big\.txt: too large \(1\.\d MB; the limit is {MAX_UPLOAD_MB} MB\)", status[1]
    )
    assert status[2] == "empty.txt: empty file"
    assert status[3].startswith("broken.jsonl: line 1: not valid JSON")
    assert status[4].startswith("scan.pdf: not a readable PDF")
    assert page.locator("#qa-upload-status li.qa-rejected").count() == len(names)
    kept = sorted(p.name for p in (server.data / "uploads").iterdir())
    assert not set(names) & set(kept)


@needs_chromium
def test_script_in_a_document_runs_nothing(page, tmp_path):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    doc = tmp_path / "zorblax.txt"
    doc.write_text(
        "The Zorblax festival takes place every March in Quillton. "
        '<script>window.__qaInjected = 1; alert("script")</script> '
        'Visitors float lantern boats <img src=x onerror="window.__qaInjected = 2; '
        "alert('img')\"> on the river at midnight.\n\n"
        "The festival began in 1911. ${window.__qaInjected = 3} "
        "{{constructor.constructor('window.__qaInjected = 4')()}} "
        '<svg onload="window.__qaInjected = 5"></svg> [link](javascript:alert(1))\n',
        encoding="utf-8",
    )
    assert "zorblax.txt: indexed as zorblax.txt" in upload(page, doc)
    ask(page, "When does the Zorblax festival take place?")
    panel = page.locator("#qa-sources-panel")
    panel.locator(".qa-context summary").first.click()
    page.wait_for_timeout(500)  # give any injected handler time to fire
    assert "<script>" in panel.inner_text()  # shown as text
    assert "onerror=" in panel.inner_text()
    assert page.evaluate("window.__qaInjected") is None
    assert dialogs == []
    for selector in ("script", "img[src=x]", "svg[onload]", "a[href^=javascript]"):
        assert page.locator(f"#qa-sources-panel {selector}, #qa-chat {selector}").count() == 0


@needs_chromium
def test_a_phone_shows_the_question_with_its_answer_and_a_way_to_the_sources(browser, server):
    page = browser.new_page()
    page.set_default_timeout(WAIT_MS)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(server.url)
    page.wait_for_selector("#qa-question textarea")
    # (top, bottom) of an element and of the part of it on screen: inside the window and
    # inside every box around it that scrolls or clips
    shown = """e => { const r = e.getBoundingClientRect();
        let top = Math.max(r.top, 0), bottom = Math.min(r.bottom, innerHeight);
        for (let a = e.parentElement; a; a = a.parentElement) {
            if (getComputedStyle(a).overflowY === 'visible') continue;
            const c = a.getBoundingClientRect();
            top = Math.max(top, c.top); bottom = Math.min(bottom, c.bottom);
        }
        return [r.top, r.bottom, top, bottom]; }"""
    for question in ("What did Russia demand?", "How did the US respond?"):
        ask(page, question)
        page.wait_for_timeout(500)  # the answer laid out, the page scrolled
        asked = page.locator("#qa-chat [data-testid=user]").last
        top, bottom, seen_top, seen_bottom = asked.evaluate(shown)
        assert asked.inner_text() == question and (seen_top, seen_bottom) == (top, bottom), (
            question, top, bottom, seen_top, seen_bottom)  # all of the question
        *_, seen_top, seen_bottom = page.locator("#qa-chat [data-testid=bot]").last.evaluate(shown)
        assert seen_bottom - seen_top > 100, question  # and the answer below it
        link = page.locator("#qa-to-sources a")
        assert link.is_visible(), question
        top, bottom, seen_top, seen_bottom = link.evaluate(shown)
        assert (seen_top, seen_bottom) == (top, bottom), question
        assert link.inner_text().startswith(("Source", "The closest passages"))
    boxes = page.evaluate("""() => [...document.querySelectorAll('#qa-chat button')]
        .filter(b => ['Clear', 'Copy message'].includes(b.getAttribute('aria-label')))
        .map(b => (b.closest('.icon-button-wrapper') || b).getBoundingClientRect())
        .map(r => [r.left, r.top, r.right, r.bottom])""")
    overlapping = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:]
                   if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]
    assert len(boxes) >= 5 and overlapping == []  # the chat's clear and copy buttons
    page.locator("#qa-to-sources a").click()
    page.wait_for_function("""() => { const r = document.querySelector('#qa-sources-panel')
        .getBoundingClientRect(); return r.top >= 0 && r.top < innerHeight / 2; }""")
    assert page.locator("#qa-sources-panel .qa-source").first.is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "answer-phone.png"))
    page.close()
