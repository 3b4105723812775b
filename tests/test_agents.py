"""qa where agents and scripts are: the JSON HTTP API and MCP over HTTP of a running
`qa serve --mcp`, and `qa mcp` on stdio as a desktop agent starts it, each driven by a real
client (raw HTTP, the MCP SDK's `ClientSession`)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import CHROMIUM, ROOT, SEED_FILE, SEEDS
from test_ui import CHROMIUM_FLAGS, ask, open_app, qa_serve

RUSSIA = "What did Russia demand?"
NOTE = "The garden shed was painted green in June; Russia is never mentioned in these notes.\n"


@pytest.fixture(scope="module")
def served(seed_index_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("agents")
    shutil.copytree(seed_index_dir, work / "index")
    (work / "notes").mkdir()
    (work / "notes" / "shed.txt").write_text(NOTE, encoding="utf-8")
    options = {"--data": "data", "--index": "index", "--source": SEEDS}
    with qa_serve(work, options, env={"PYTHONPATH": str(ROOT)},
                  flags=["--source", "notes", "--mcp", "--read-only"]) as server:
        yield server


def post(url: str, body: object, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def in_a_thread(run) -> dict:
    """`asyncio.run(run())` on a thread of its own: the browser tests' Playwright driver keeps
    an event loop running on this one."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(run())).result(timeout=600)


def quotes_match_the_article(answer: dict) -> None:
    """Each citation's quote is the seed article's text at its offsets."""
    text = SEED_FILE.read_text(encoding="utf-8")
    assert answer["citations"]
    for c in answer["citations"]:
        assert text[c["quote_start"]:c["quote_end"]] == c["quote"]


# ---- JSON over HTTP ----------------------------------------------------------------------
def test_post_api_ask_returns_the_cited_answer(served):
    status, answer = post(served.url + "api/ask", {"question": RUSSIA})
    assert status == 200 and answer["answered"] and "never admit Ukraine" in answer["text"]
    quotes_match_the_article(answer)
    status, follow = post(served.url + "api/ask", {"question": "How did the US respond to them?",
                                                    "history": [RUSSIA]})
    assert status == 200 and follow["standalone_question"] != follow["question"]


def test_post_api_search_is_scoped_inside_the_search(served):
    status, found = post(served.url + "api/search", {"query": RUSSIA, "k": 3})
    assert status == 200 and found["passages"][0]["source"] == SEED_FILE.name
    status, found = post(served.url + "api/search", {"query": RUSSIA, "k": 3,
                                                     "where": "notes/*"})
    assert status == 200 and [p["source"] for p in found["passages"]] == ["shed.txt"]


def test_get_api_documents_and_the_openapi_page(served):
    with urllib.request.urlopen(served.url + "api/documents", timeout=30) as response:
        docs = json.load(response)
    assert {d["source"] for d in docs} == {SEED_FILE.name, "shed.txt"}
    with urllib.request.urlopen(served.url + "api/openapi.json", timeout=30) as response:
        spec = json.load(response)
    assert set(spec["paths"]) == {"/ask", "/search", "/documents"}


@pytest.mark.parametrize("path, body, status, error", [
    ("api/ask", {"question": "  "}, 400, "the question is empty; type a question"),
    ("api/search", {"query": ""}, 400, "the query is empty"),
    ("api/ask", {"question": "x" * 2001}, 400, "at most 2,000"),
    ("api/ask", {"question": "x", "history": [{"q": 1}]}, 422, "history.0"),
    ("api/ask", {"question": "x", "history": "q"}, 422, "history"),
    ("api/ask", {"questoin": "x"}, 422, "question is missing"),
    ("api/search", {"query": "x", "where": "no-such-file*"}, 400, "no indexed document"),
    ("api/search", {"query": "x", "where": {"folder": "x"}}, 400, "unknown filter key"),
    ("api/search", {"query": "x", "k": 0}, 400, "k must be"),
    ("api/ask", None, 422, "not valid JSON"),
])
def test_bad_input_is_a_4xx_with_one_line_of_json(served, path, body, status, error):
    before = served.log.read_text()
    code, reply = post(served.url + path, body, raw=b"{not json" if body is None else None)
    assert code == status and list(reply) == ["error"] and error in reply["error"]
    assert "\n" not in reply["error"]
    assert "Traceback" not in served.log.read_text()[len(before):]


def test_an_oversized_body_is_refused_before_it_is_read(served):
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    connection.putrequest("POST", "/api/ask")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(2**21))
    connection.endheaders(b'{"question": "')  # the rest never comes: the answer comes first
    response = connection.getresponse()
    assert response.status == 413 and "over" in json.load(response)["error"]
    connection.close()


def test_gradio_call_with_only_the_question_uses_the_defaults(served):
    """Gradio's own raw API: `history` and `where` left out are their defaults."""
    before = served.log.read_text()
    request = urllib.request.Request(served.url + "gradio_api/call/ask",
                                     data=json.dumps({"data": [RUSSIA]}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        event = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{served.url}gradio_api/call/ask/{event}", timeout=60) as r:
        stream = r.read().decode()
    assert "event: complete" in stream
    answer = json.loads(stream.split("data: ", 1)[1].splitlines()[0])[0]
    assert answer["answered"] and "never admit Ukraine" in answer["text"]
    assert "Traceback" not in served.log.read_text()[len(before):]


@pytest.mark.parametrize("path, body, error", [
    ("gradio_api/queue/join", {"data": ["x"], "fn_index": 999, "session_hash": "s"},
     "no function with fn_index 999"),
    ("gradio_api/call/nope", {"data": ["x"]}, "no API function named 'nope'"),
])
def test_an_unknown_gradio_function_is_a_404_in_one_line(served, path, body, error):
    before = served.log.read_text()
    code, reply = post(served.url + path, body)
    assert (code, reply) == (404, {"error": error})
    assert "Traceback" not in served.log.read_text()[len(before):]


# ---- MCP ---------------------------------------------------------------------------------
async def _use_tools(session, scope: str) -> dict:
    await session.initialize()
    tools = {t.name: t for t in (await session.list_tools()).tools}
    answer = await session.call_tool("ask", {"question": RUSSIA})
    scoped = await session.call_tool("search", {"query": RUSSIA, "k": 3, "where": scope})
    refused = await session.call_tool("search", {"query": RUSSIA, "where": "no-such*"})
    documents = await session.call_tool("list_documents", {})
    return {"tools": tools, "answer": json.loads(answer.content[0].text),
            "scoped": json.loads(scoped.content[0].text), "refused": refused,
            "documents": [json.loads(c.text) for c in documents.content]}


def check_tools(seen: dict, scoped_source: str, sources: set[str]) -> None:
    assert set(seen["tools"]) == {"ask", "search", "list_documents"}
    assert all(len(t.description or "") > 100 for t in seen["tools"].values())
    assert "where" in seen["tools"]["search"].inputSchema["properties"]
    assert seen["answer"]["answered"]
    quotes_match_the_article(seen["answer"])
    assert seen["scoped"]["passages"]
    assert {p["source"] for p in seen["scoped"]["passages"]} == {scoped_source}
    assert seen["refused"].isError and "no indexed document" in seen["refused"].content[0].text
    # one text item holding the list (Gradio), or one item per document (FastMCP)
    documents = seen["documents"][0] if isinstance(seen["documents"][0], list) else \
        seen["documents"]
    assert {d["source"] for d in documents} == sources


def test_mcp_over_http_beside_the_app(served):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def run() -> dict:
        async with streamable_http_client(served.url + "gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                return await _use_tools(session, "notes/*")

    seen = in_a_thread(run)
    check_tools(seen, "shed.txt", {SEED_FILE.name, "shed.txt"})


def readme_mcp_config() -> dict:
    """The desktop-agent snippet in the README, as a user copies it."""
    block = re.search(r"```json\n(\{\s*\"mcpServers\".*?)```", (ROOT / "README.md").read_text(),
                      re.S)
    assert block, "the README shows an mcpServers snippet"
    return json.loads(block.group(1))["mcpServers"]["qa"]


def test_qa_mcp_on_stdio_as_the_readme_configures_it(seed_index_dir, tmp_path):
    """The README's configuration, started by the MCP SDK's stdio client with a QA_HOME whose
    index is a copy of the seed index."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    config = readme_mcp_config()
    home = tmp_path / "home"
    shutil.copytree(seed_index_dir, home / "index")
    bin_dir = str(Path(sys.executable).parent)  # where pip put the `qa` command
    env = {**os.environ, "QA_HOME": str(home), "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    params = StdioServerParameters(command=config["command"], args=config["args"], env=env,
                                   cwd=str(tmp_path))

    async def run() -> dict:
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                return await _use_tools(session, "*.txt")

    seen = in_a_thread(run)
    check_tools(seen, SEED_FILE.name, {SEED_FILE.name})


# ---- the page: asking about some documents ------------------------------------------------
def test_the_page_asks_only_in_the_documents_picked(served, playwright_driver):
    browser = playwright_driver.chromium.launch(executable_path=str(CHROMIUM),
                                                args=CHROMIUM_FLAGS)
    page = open_app(browser, served.url)
    page.click("#qa-scope input")
    page.click("ul[role=listbox] li:has-text('shed.txt')")
    page.keyboard.press("Escape")
    ask(page, RUSSIA)
    sources = page.inner_text("#qa-sources-panel")
    browser.close()
    assert "shed.txt" in sources and SEED_FILE.name not in sources
