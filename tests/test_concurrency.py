"""Questions while the index is written, long histories, and retrievers that outlive a write:
a question is answered from the generation live when it starts, whole, while an upload builds
the next one; a chat's history is bounded like its question."""

from __future__ import annotations

import random
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import CHROMIUM
from test_hardening_cli import lock_is_held

from qa import Engine
from qa.errors import BadQuestion
from qa.settings import ChatSettings

MAX_QUESTION_CHARS = ChatSettings().max_question_chars

QUESTION = "What did Russia demand?"
RIGHT = "never admit Ukraine"
PORTS = range(7891, 7900)
WAIT_S = 120


def almanac(chars: int, seed: int = 13) -> str:
    """Varied sentences about nothing the seed article holds: about 70 passages for 40,000
    characters, so indexing them takes seconds."""
    rng = random.Random(seed)
    places = ["Lisbon", "Oslo", "Quito", "Hobart", "Dakar", "Perth", "Cusco", "Galway"]
    things = ["lighthouse", "orchard", "glacier", "ferry", "observatory", "vineyard", "canal"]
    acts = ["was repainted", "opened early", "closed for repairs", "hosted a fair",
            "won a prize", "gained a new roof", "welcomed visitors", "was photographed"]
    paragraphs, size = [], 0
    while size < chars:
        sentences = [
            f"The {rng.choice(things)} of {rng.choice(places)} {rng.choice(acts)} in "
            f"{rng.randint(1700, 2020)}, and {rng.randint(2, 900)} people came to see it."
            for _ in range(rng.randint(3, 6))
        ]
        paragraphs.append(" ".join(sentences))
        size += len(paragraphs[-1]) + 2
    return "\n\n".join(paragraphs)


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {WAIT_S} s for {what}")
        time.sleep(0.02)


class Writer(threading.Thread):
    def __init__(self, write, *args) -> None:
        super().__init__(daemon=True)
        self.write, self.args, self.error = write, args, None

    def run(self) -> None:
        try:
            self.write(*self.args)
        except BaseException as exc:  # reported by the test
            self.error = exc


@pytest.fixture
def index_copy(seed_index_dir, tmp_path) -> Path:
    copy = tmp_path / "index"
    shutil.copytree(seed_index_dir, copy)
    return copy


# ---- the engine ------------------------------------------------------------------------------
def test_questions_are_answered_from_one_generation_while_a_write_runs(index_copy, tmp_path):
    engine = Engine.open(sources=None, index_dir=index_copy)
    before = {d["doc_id"] for d in engine.documents()}
    reference = engine.ask(QUESTION)
    assert RIGHT in reference.text
    big = tmp_path / "almanac.txt"
    big.write_text(almanac(40_000), encoding="utf-8")
    writer = Writer(engine.add, [big])
    writer.start()
    wait_for(lambda: lock_is_held(index_copy) or not writer.is_alive(), "the write to start")
    seen = []  # (writer still running after the answer, answer, documents listed)
    while writer.is_alive():
        answer = engine.ask(QUESTION)
        running = writer.is_alive()
        docs = {d["doc_id"] for d in engine.documents()}
        texts = [engine.document_text(d) for d in docs]  # every listed document is there whole
        seen.append((running, answer.text, docs))
        assert all(texts)
    writer.join()
    assert writer.error is None
    assert seen and seen[0][0]  # the first answer came back while the write was running
    assert all(text == reference.text for _, text, _ in seen)
    assert all(docs in (before, before | {"almanac.txt"}) for *_, docs in seen)
    assert {d["doc_id"] for d in engine.documents()} == before | {"almanac.txt"}
    assert "Lisbon" in engine.retrieve("When was the lighthouse of Lisbon repainted?")[0].text


def test_an_old_retriever_sees_documents_added_later(index_copy, tmp_path):
    engine = Engine.open(sources=None, index_dir=index_copy)
    retriever = engine.as_retriever(k=3)
    assert retriever.retrieve(QUESTION)
    note = tmp_path / "beekeeping.txt"
    note.write_text("The beekeepers of Vrana moved their hives to the lavender fields in June.")
    engine.add([note])
    nodes = retriever.retrieve("Where did the beekeepers of Vrana move their hives?")
    assert nodes[0].node.metadata["doc_id"] == "beekeeping.txt"
    assert "lavender fields" in nodes[0].node.get_content()


# ---- history -----------------------------------------------------------------------------------
FOLLOW_UP = "What did he say?"
HUGE = [  # two 4 MB earlier turns
    "How many troops has Russia deployed? " + "Troops and tanks moved west in winter. " * 105_000,
    "Who is Peskov? " + "The spokesman spoke to reporters again. " * 105_000,
]


def test_a_huge_history_is_read_as_its_last_turns_cut_like_the_question(seed_engine):
    assert all(len(h) > 4_000_000 for h in HUGE)
    cut = [" ".join(h.split())[:MAX_QUESTION_CHARS] for h in HUGE]
    answer = seed_engine.ask(FOLLOW_UP, history=HUGE)
    # a follow-up is searched joined to the earlier questions: here, to their cut texts
    assert answer.standalone_question.startswith(cut[0])
    assert len(answer.standalone_question) <= 3 * (MAX_QUESTION_CHARS + 1)
    same = seed_engine.ask(FOLLOW_UP, history=cut)
    assert (answer.text, answer.standalone_question) == (same.text, same.standalone_question)


def test_only_the_last_turns_of_a_long_history_are_read(seed_engine):
    turns = ChatSettings().history_turns
    older = [f"What happened on day {i}?" for i in range(10_000)]
    recent = ["What did the Kremlin spokesman say about tensions?"] * turns
    assert seed_engine.ask("What did he say?", history=older + recent).text == (
        seed_engine.ask("What did he say?", history=recent).text
    )


@pytest.mark.parametrize("history", [[None], [{"question": QUESTION}], ["ok", 7], QUESTION])
def test_a_history_item_that_is_not_a_question_is_a_clear_error(seed_engine, history):
    with pytest.raises(BadQuestion, match="history"):
        seed_engine.ask(QUESTION, history=history)


# ---- the app -----------------------------------------------------------------------------------
def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


@pytest.fixture(scope="module")
def app(seed_index_dir, tmp_path_factory):
    """The app on a copy of the seed index, served in this process: (url, engine, index)."""
    from qa.ui.app import serve

    work = tmp_path_factory.mktemp("app")
    index = work / "index"
    shutil.copytree(seed_index_dir, index)
    engine = Engine.open(sources=None, index_dir=index)
    with pytest.MonkeyPatch.context() as env:  # serve() sets it for its own process
        env.setenv("GRADIO_TEMP_DIR", str(work / "data" / "tmp"))
        served = serve(engine, port=_free_port(), data_dir=work / "data", block=False)
        try:
            yield served.local_url, engine, index
        finally:
            served.close()


@pytest.fixture(scope="module")
def page(app, playwright_driver):
    profile = tempfile.mkdtemp(prefix="qa-chromium-")
    browser = playwright_driver.chromium.launch_persistent_context(
        profile, executable_path=str(CHROMIUM), headless=True,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
    )
    page = browser.new_page()
    page.set_default_timeout(WAIT_S * 1000)
    page.goto(app[0])
    yield page
    browser.close()
    shutil.rmtree(profile, ignore_errors=True)


def test_the_app_answers_while_an_upload_is_indexed(app, page, tmp_path):
    from gradio_client import Client

    url, engine, index = app
    client = Client(url, verbose=False)
    assert RIGHT in client.predict(QUESTION, api_name="/ask")["text"]
    big = tmp_path / "almanac.txt"
    big.write_text(almanac(40_000), encoding="utf-8")
    page.click("#qa-tab-documents-button")
    page.set_input_files("#qa-upload input[type=file]", [str(big)])
    wait_for(lambda: lock_is_held(index), "the upload to be indexed")
    answer = client.predict(QUESTION, api_name="/ask")
    assert lock_is_held(index)  # answered while the upload was still being indexed
    assert RIGHT in answer["text"]
    page.wait_for_selector("#qa-upload-status li")
    assert "almanac.txt: indexed as almanac.txt" in page.inner_text("#qa-upload-status")
    assert "almanac.txt" in {d["doc_id"] for d in engine.documents()}


def test_the_app_reads_a_huge_history_as_its_last_turns(app):
    from gradio_client import Client

    client = Client(app[0], verbose=False)
    answer = client.predict(FOLLOW_UP, HUGE, api_name="/ask")
    assert answer["standalone_question"].startswith("How many troops has Russia deployed?")
    assert len(answer["standalone_question"]) <= 3 * (MAX_QUESTION_CHARS + 1)
    with pytest.raises(Exception, match="history item 1 is a dict"):
        client.predict(QUESTION, [{"question": QUESTION}], api_name="/ask")


def test_an_upload_keeps_its_status_while_thousands_of_other_calls_arrive(app, page, tmp_path):
    """Gradio keeps the message queues of its last 2,000 sessions, and every raw
    /gradio_api/call is a session of its own: a flood of calls must not take away the queue of
    an upload that is still being indexed, or its uploader is never told how it went."""
    import httpx

    url, engine, index = app
    big = tmp_path / "gazetteer.txt"
    big.write_text(almanac(400_000, seed=29), encoding="utf-8")
    page.click("#qa-tab-documents-button")
    page.set_input_files("#qa-upload input[type=file]", [str(big)])
    wait_for(lambda: lock_is_held(index), "the upload to be indexed")
    with httpx.Client(base_url=url, timeout=60) as http:
        for _ in range(2_100):
            sent = http.post("/gradio_api/call/list_documents", json={"data": []})
            assert sent.status_code == 200
    assert lock_is_held(index), "the upload ended before the other calls did: make it longer"
    # the page's earlier uploads stay listed: wait for this one's own line
    page.wait_for_function("document.querySelector('#qa-upload-status')"
                           ".innerText.includes('gazetteer.txt: indexed as gazetteer.txt')",
                           timeout=600_000)
    assert "gazetteer.txt" in {d["doc_id"] for d in engine.documents()}
