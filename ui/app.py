"""The browser app: a chat whose answers cite their sources, a sources panel beside it, and a
documents tab for uploads. Layout and event wiring only; answers come from `Engine.ask`.

Whether the page may change the index is the choice of whoever starts the server: when it may
not, the upload and remove events are never registered, so no request of any kind reaches them."""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware
from starlette.routing import Mount

from qa.engine import Engine
from qa.errors import QAError
from qa.faces.service import ASK_DOC, DOCUMENTS_DOC, MAX_K, SEARCH_DOC, WHERE_DOC, Service
from qa.schema import Answer
from qa.ui import render, scripts
from qa.ui.http_api import GradioCalls, make_api
from qa.ui.library import FileResult, Library
from qa.ui.sessions import keep_busy_sessions
from qa.ui.uploads import DEFAULT_MAX_MB

EXAMPLES = (
    "What did Russia demand?",
    "How many troops has Russia deployed to the region?",
    "What did NATO countries send to Eastern Europe?",
)
STYLE = Path(__file__).with_name("style.css")
API_ARITY = {"ask": 3, "search": 3, "list_documents": 0}  # the Gradio API's arguments
HISTORY_ARG = "the conversation's earlier questions, oldest first (may be omitted)"
READ_ONLY_NOTE = (
    "The index is read-only from this page; whoever starts the server can allow uploads and "
    "removals with `qa serve --allow-changes`."
)
log = logging.getLogger("qa.ui")


def one_line_errors(fn: Callable) -> Callable:
    """A handler's failure reaches the page as one line, never a traceback. A user's error
    (an empty question, a locked index) is one line in the server log too; only an unexpected
    failure logs its traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except QAError as exc:
            log.warning("qa: %s: %s", fn.__name__, exc)
            # Gradio's queue prints the traceback of every gr.Error unless told not to.
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception as exc:
            log.exception("handler %s failed", fn.__name__)
            raise gr.Error(f"Something went wrong: {exc.__class__.__name__}: {exc}") from None

    return wrapper


def quiet_refusals(preprocess: Callable) -> Callable:
    """A component's own refusal of a value (a removal sent from a stale page or a script
    naming a document outside the list) reaches the page as one line, not a traceback in the
    server log: Gradio prints the traceback of every `gr.Error` raised with the default."""

    @functools.wraps(preprocess)
    def wrapper(payload):
        try:
            return preprocess(payload)
        except gr.Error as exc:
            log.info("refused: %s", exc.message)
            raise gr.Error(exc.message, print_exception=False) from None

    return wrapper


def build_app(
    engine: Engine,
    data_dir: str | Path = "data",
    max_upload_mb: float = DEFAULT_MAX_MB,
    examples: Sequence[str] = EXAMPLES,
    allow_changes: bool = False,
) -> gr.Blocks:
    """`allow_changes`: the Documents tab uploads and removes documents; otherwise it only
    lists them."""
    lib = Library(engine, data_dir, max_upload_mb)
    service = Service(engine)

    # ---- handlers ----------------------------------------------------------------------
    def conversation(questions: list[str], answers: list[Answer], shown: Answer | None):
        chat = render.chat_messages(questions, answers)
        panel = render.sources_html(shown, lib.doc_text, lib.byline)
        return chat, questions, answers, panel, render.sources_link(shown)

    @one_line_errors
    def respond(question: str, questions: list[str], answers: list[Answer],
                scope: list[str] | None = None):
        question = (question or "").strip()
        if not question:
            gr.Warning("Type a question first.")
            return question, *conversation(questions, answers, answers[-1] if answers else None)
        where = {"doc_ids": scope} if scope else None  # the documents picked, else all
        answer = lib.ask(question, answers, where)  # earlier answers resolve "he", "it"
        questions, answers = [*questions, question], [*answers, answer]
        return "", *conversation(questions, answers, answer)

    def respond_example(evt: gr.SelectData, questions: list[str], answers: list[Answer],
                        scope: list[str] | None):
        return respond(evt.value["text"], questions, answers, scope)

    def new_conversation():
        return "", *conversation([], [], None)

    @one_line_errors
    def show_sources(evt: gr.SelectData, answers: list[Answer]) -> tuple[str, str]:
        """Clicking a message shows the sources of its answer."""
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        shown = answers[min(index // 2, len(answers) - 1)] if answers else None
        return render.sources_html(shown, lib.doc_text, lib.byline), render.sources_link(shown)

    @one_line_errors
    def document_rows():
        return [[d["title"], d["doc_id"], lib.byline(d["doc_id"]), d["passages"]]
                for d in lib.documents()]

    @one_line_errors
    def scope_choices(picked: list[str] | None):
        """The documents a question may be scoped to; those still indexed stay picked."""
        choices = [(d["source"] + (f": {d['title'][:60]}" if d["title"] else ""), d["doc_id"])
                   for d in lib.documents()]
        held = {value for _, value in choices}
        return gr.Dropdown(choices=choices, value=[v for v in picked or [] if v in held])

    @one_line_errors
    def document_list():
        return document_rows(), gr.Dropdown(choices=lib.removable(), value=[])

    @one_line_errors
    def add_files(files: list[str] | None, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        if not files:
            return gr.skip(), *document_list(), None
        results = lib.add(files, lambda done, desc: progress(done, desc=desc))
        return _status(results), *document_list(), None

    @one_line_errors
    def remove_documents(doc_ids: list[str] | None):
        if not doc_ids:
            gr.Warning("Pick the documents to remove first.")
            return gr.skip(), *document_list()
        return _status(lib.remove(doc_ids)), *document_list()

    # The Gradio API's (and `qa serve --mcp`'s) tools; their docstrings are what a client
    # reads (qa/faces/service.py holds the text, shared with `qa mcp` and /api).
    @one_line_errors
    def ask(question: str, history: list[str] | None = None,
            where: dict | str | None = None, request: gr.Request = None) -> dict:
        return _as_json_for_mcp(service.ask(question, history, where), request)

    @one_line_errors
    def search(query: str, k: int = 5, where: dict | str | None = None,
               request: gr.Request = None) -> dict:
        return _as_json_for_mcp(service.search(query, k, where), request)

    @one_line_errors
    def list_documents(request: gr.Request = None) -> list[dict]:
        return _as_json_for_mcp(service.documents(), request)

    ask.__doc__ = _tool_doc(ASK_DOC, question="the question", history=HISTORY_ARG,
                            where=WHERE_DOC)
    search.__doc__ = _tool_doc(SEARCH_DOC, query="what to look for",
                               k=f"passages to return, 1 to {MAX_K}", where=WHERE_DOC)
    list_documents.__doc__ = DOCUMENTS_DOC

    # ---- layout ------------------------------------------------------------------------
    with gr.Blocks(
        title="qa: answers from your documents", analytics_enabled=False, delete_cache=(3600, 3600)
    ) as app:
        questions = gr.State([])
        answers = gr.State([])
        gr.Markdown(
            "## qa: answers from your documents\n"
            "Every answer is made of your documents' own sentences, each with a numbered "
            "citation. When the documents do not answer, it says so.",
            elem_id="qa-intro",
        )
        with gr.Tab("Ask", elem_id="qa-tab-ask"):
            with gr.Row(equal_height=False, elem_id="qa-ask-row"):
                with gr.Column(scale=3):
                    chat = gr.Chatbot(
                        label="Conversation",
                        elem_id="qa-chat",
                        height=500,
                        examples=[{"text": q} for q in examples],
                        placeholder="Ask a question about your documents, or pick an example.",
                        latex_delimiters=[],
                        feedback_options=None,
                        buttons=["copy"],
                    )
                    to_sources = gr.HTML("", elem_id="qa-to-sources", container=False,
                                         padding=False)  # shown on narrow screens (style.css)
                    with gr.Row():
                        box = gr.Textbox(
                            show_label=False,
                            placeholder="Ask about your documents…",
                            elem_id="qa-question",
                            scale=5,
                            max_length=engine.settings.chat.max_question_chars,
                        )
                        ask_button = gr.Button("Ask", variant="primary", elem_id="qa-ask", scale=1)
                    with gr.Row():
                        scope = gr.Dropdown(label="Ask only in", multiselect=True, choices=[],
                                            info="the documents picked; none: all of them",
                                            elem_id="qa-scope", scale=4)
                        scope.preprocess = quiet_refusals(scope.preprocess)
                        new = gr.Button("New conversation", elem_id="qa-new", size="sm",
                                        scale=1)
                with gr.Column(scale=2):
                    sources = gr.HTML(
                        render.EMPTY_SOURCES,
                        elem_id="qa-sources-panel",
                        label="Sources",
                        max_height=640,
                        js_on_load=scripts.ON_LOAD,
                    )
        with gr.Tab("Documents", elem_id="qa-tab-documents"):
            if allow_changes:
                upload = gr.File(
                    label=f"Add documents: .txt .md .html .pdf .jsonl, up to {max_upload_mb:g} MB "
                    "each",
                    file_count="multiple",
                    elem_id="qa-upload",
                )
                status = gr.HTML(elem_id="qa-upload-status")
            else:
                gr.Markdown(READ_ONLY_NOTE, elem_id="qa-read-only")
            table = gr.Dataframe(
                headers=["title", "doc_id", "published", "passages"],
                datatype=["str", "str", "str", "number"],
                interactive=False,
                label="Indexed documents",
                elem_id="qa-documents",
                max_height=420,
            )
            if allow_changes:
                with gr.Row():
                    pick = gr.Dropdown(
                        label="Uploaded documents to remove",
                        multiselect=True,
                        choices=[],
                        elem_id="qa-remove-pick",
                        scale=4,
                    )
                    pick.preprocess = quiet_refusals(pick.preprocess)
                    remove = gr.Button("Remove", variant="stop", elem_id="qa-remove", scale=1)

        # ---- events --------------------------------------------------------------------
        private = {"api_visibility": "private"}
        turn = [box, chat, questions, answers, sources, to_sources]
        box.submit(respond, [box, questions, answers, scope], turn, **private)
        ask_button.click(respond, [box, questions, answers, scope], turn, **private)
        chat.example_select(respond_example, [questions, answers, scope], turn, **private)
        table.change(scope_choices, scope, scope, **private)  # loaded, uploaded, removed
        chat.select(show_sources, [answers], [sources, to_sources], **private)
        new.click(new_conversation, None, turn, **private)
        chat.clear(new_conversation, None, turn, **private)
        if allow_changes:
            upload.upload(
                add_files, upload, [status, table, pick, upload], show_progress_on=status,
                **private,
            )
            remove.click(
                remove_documents, pick, [status, table, pick], show_progress_on=status, **private
            )
            app.load(document_list, None, [table, pick], **private)
        else:
            app.load(document_rows, None, table, **private)
        gr.api(ask, api_name="ask")
        gr.api(search, api_name="search")
        gr.api(list_documents, api_name="list_documents")
    return app


def _as_json_for_mcp(result: dict | list, request: gr.Request | None) -> dict | list | str:
    """The result as JSON text when an MCP client called (Gradio's MCP server hands a tool's
    result to the agent as `str(result)`, a Python repr); as it is for the Gradio API. An
    MCP call carries the protocol's headers, which Gradio passes on to the function."""
    headers = getattr(request, "headers", None) or {}
    if "mcp-protocol-version" in headers or "mcp-session-id" in headers:
        return json.dumps(result, ensure_ascii=False)
    return result


def _tool_doc(text: str, **args: str) -> str:
    """A docstring in the layout Gradio reads for its API page and MCP tools."""
    return text + "\n\nArgs:\n" + "".join(f"    {name}: {doc}\n" for name, doc in args.items())


def _status(results: list[FileResult]) -> str:
    return render.status_html([(r.ok, r.message) for r in results])


def _first_call(url: str, question: str = "What is this about?") -> None:
    """Ask the app one question over its own HTTP API before anyone else does: Gradio's first
    call of an endpoint took 0.4-1.2 s more than later ones (bench/cold_start.py), with the
    engine already warm. A failure here only leaves the first question slower."""
    import json
    import urllib.request

    api = url.rstrip("/") + "/gradio_api/call/ask"
    body = json.dumps({"data": [question, None]}).encode()
    request = urllib.request.Request(api, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            event = json.load(reply)["event_id"]
        with urllib.request.urlopen(f"{api}/{event}", timeout=60) as stream:
            stream.read()
    except (OSError, ValueError, KeyError):
        pass


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server to this machine (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def serve(
    engine: Engine,
    host: str = "127.0.0.1",
    port: int = 7860,
    data_dir: str | Path = "data",
    max_upload_mb: float = DEFAULT_MAX_MB,
    block: bool = True,
    allow_changes: bool | None = None,
    mcp: bool = False,
) -> gr.Blocks:
    """Launch the app on host:port: no share link, no analytics, uploads under `data_dir`,
    the JSON API under /api. `allow_changes`: whether the page may upload and remove
    documents; by default only when `host` is a loopback address. `mcp`: also serve the
    API's tools (ask, search, list_documents) over MCP at /gradio_api/mcp/."""
    allow_changes = is_loopback(host) if allow_changes is None else allow_changes
    data_dir = Path(data_dir).resolve()
    # Gradio's own upload cache goes under the data folder too, not the system temp folder.
    cache = Path(os.environ.setdefault("GRADIO_TEMP_DIR", str(data_dir / "tmp")))
    app = build_app(engine, data_dir, max_upload_mb, allow_changes=allow_changes)
    app.queue(default_concurrency_limit=2)
    keep_busy_sessions(app._queue)
    app.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=True,
        quiet=True,
        show_error=False,
        ssr_mode=False,
        enable_monitoring=False,
        mcp_server=mcp,
        run_history=False,
        # the JSON API (ui/http_api.py), mounted ahead of Gradio's own routes
        app_kwargs={"routes": [Mount("/api", make_api(Service(engine)))],
                    "middleware": [Middleware(GradioCalls, blocks=app, arity=API_ARITY)]},
        footer_links=["api"],
        # The route refuses anything far past the cap, so a huge file never fills the disk;
        # files between the two get the app's own one-line message. A read-only page takes none.
        max_file_size=int(max_upload_mb * 2**20 * 4) + 2**20 if allow_changes else 0,
        # Gradio fails a whole upload batch holding a dot-named file when its cache lies under
        # the working folder; let such a file through to `uploads.check`, which refuses it.
        allowed_paths=[str(cache)] if allow_changes else [],
        css_paths=[STYLE],
    )
    _first_call(app.local_url)
    mode = "" if allow_changes else "; read-only: uploads and removals are off"
    print(f"qa: the app is at {app.local_url} (Ctrl+C stops it{mode})", flush=True)
    print(f"qa: JSON API at {app.local_url}api/ (described at {app.local_url}api/docs)"
          + (f"; MCP at {app.local_url}gradio_api/mcp/" if mcp else ""), flush=True)
    if block:
        app.block_thread()
    return app
