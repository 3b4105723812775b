"""Plain JSON over HTTP beside the app, for scripts: `POST /api/ask`, `POST /api/search`,
`GET /api/documents`, described at `/api/openapi.json` and `/api/docs`.

A FastAPI app of its own, mounted on the one Gradio runs (Gradio's own API speaks a two-step
queue protocol); it calls `qa.faces.service.Service`, as the MCP tools do. Every refusal is a 4xx
with one line of JSON, `{"error": "..."}`; nothing here changes the index.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from qa.errors import IndexLocked, QAError
from qa.faces.service import ASK_DOC, DOCUMENTS_DOC, MAX_K, SEARCH_DOC, WHERE_DOC, Service
from qa.schema import one_line

MAX_BODY = 1 << 20  # bytes a request body may hold
log = logging.getLogger("qa.api")

Filter = str | list[str] | dict[str, Any] | None


class AskRequest(BaseModel):
    question: str = Field(description="the question")
    history: list[str] = Field(default_factory=list,
                               description="the conversation's earlier questions, oldest first")
    where: Filter = Field(default=None, description=WHERE_DOC)


class SearchRequest(BaseModel):
    query: str = Field(description="what to look for")
    k: int = Field(default=5, description=f"passages to return, 1 to {MAX_K}")
    where: Filter = Field(default=None, description=WHERE_DOC)


def make_api(service: Service) -> FastAPI:
    api = FastAPI(title="qa", summary="Answers from your own documents, quoted and cited",
                  version="1", docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")

    @api.middleware("http")
    async def bounded_body(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > MAX_BODY):
            return _error(413, f"the request body is over {MAX_BODY:,} bytes")
        return await call_next(request)

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _first_problem(exc))

    @api.exception_handler(QAError)
    async def refused(request: Request, exc: QAError) -> JSONResponse:
        log.warning("qa: %s %s: %s", request.method, request.url.path, one_line(str(exc)))
        return _error(503 if isinstance(exc, IndexLocked) else 400, str(exc))

    @api.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return _error(500, f"something went wrong: {exc.__class__.__name__}")

    @api.post("/ask", summary="Answer a question, with citations", description=ASK_DOC)
    def ask(body: AskRequest) -> dict[str, Any]:
        return service.ask(body.question, body.history, body.where)

    @api.post("/search", summary="Ranked passages for a query", description=SEARCH_DOC)
    def search(body: SearchRequest) -> dict[str, Any]:
        return service.search(body.query, body.k, body.where)

    @api.get("/documents", summary="The indexed documents", description=DOCUMENTS_DOC)
    def documents() -> list[dict[str, Any]]:
        return service.documents()

    return api


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": one_line(message)}, status_code=status)


def _first_problem(exc: RequestValidationError) -> str:
    """FastAPI's list of validation errors as one line: the first, with where it is."""
    errors = exc.errors()
    if not errors:
        return "the request is not valid"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    message = str(first.get("msg", "is not valid"))
    if first.get("type") == "json_invalid":
        return "the body is not valid JSON"
    if first.get("type") == "missing":
        return f"{where} is missing" if where else "the body is missing"
    return f"{where}: {message}" if where else message


class GradioCalls:
    """ASGI middleware in front of Gradio's own API routes, for raw HTTP clients:
    - a call of a function the app does not have (`POST /gradio_api/call/NAME`,
      `/gradio_api/run/NAME`, or `/gradio_api/queue/join` with an unknown `fn_index`) is
      refused with 404 and one line of JSON (Gradio answers it with a 500 and a traceback);
    - a call of one of the app's API functions that leaves out trailing arguments gets them as
      null, which the functions read as their defaults (Gradio's own client fills them in;
      Gradio's server refuses the call with a traceback in its log)."""

    def __init__(self, app, blocks, arity: dict[str, int]) -> None:
        self.app = app
        self.blocks = blocks  # the gr.Blocks whose functions are served
        self.arity = arity

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        prefix, _, name = path.rstrip("/").rpartition("/")
        called = prefix.endswith(("/gradio_api/call", "/gradio_api/run"))
        joined = path.rstrip("/").endswith("/gradio_api/queue/join")
        if scope.get("method") != "POST" or not (called or joined):
            return await self.app(scope, receive, send)
        fns = self.blocks.fns
        if called and name not in {f.api_name for f in fns.values() if f.api_name}:
            return await _refuse(send, f"no API function named {name!r}")
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return await self.app(scope, _replay([message]), send)
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY:  # not ours to read whole: Gradio answers it as it is
                return await self.app(scope, _replay([{**message, "body": body}], receive),
                                      send)
        request = _json(body)
        if joined:
            fn_index = request.get("fn_index") if isinstance(request, dict) else None
            if isinstance(fn_index, int) and fn_index not in fns:
                return await _refuse(send, f"no function with fn_index {fn_index}")
        elif name in self.arity:
            body = _padded(request, self.arity[name], body)
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self.app({**scope, "headers": headers},
                       _replay([{"type": "http.request", "body": body, "more_body": False}],
                               receive), send)


async def _refuse(send, message: str) -> None:
    log.info("refused: %s", message)
    await _error(404, message)({"type": "http"}, _replay([]), send)


def _json(body: bytes) -> Any:
    import json

    try:
        return json.loads(body)
    except ValueError:
        return None


def _padded(request: Any, arity: int, body: bytes) -> bytes:
    """The body with `data` padded with nulls to `arity` values (as it was otherwise)."""
    import json

    data = request.get("data") if isinstance(request, dict) else None
    if isinstance(data, list) and len(data) < arity:
        return json.dumps({**request, "data": data + [None] * (arity - len(data))}).encode()
    return body


def _replay(messages: list[dict], then=None):
    """An ASGI `receive` that gives `messages` first, then what `then` gives."""
    pending = list(messages)

    async def receive() -> dict:
        if pending:
            return pending.pop(0)
        if then is None:
            return {"type": "http.disconnect"}
        return await then()

    return receive
