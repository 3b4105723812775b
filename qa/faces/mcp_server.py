"""`qa mcp`: the engine's tools for desktop agents (Claude Desktop, Cursor, Cline, ...) over
MCP on stdio, on the official SDK's `FastMCP` server.

    {"mcpServers": {"qa": {"command": "qa", "args": ["mcp"]}}}

Tools: `search`, `ask`, `list_documents` (qa/faces/service.py: the same checks, records and
descriptions as the HTTP API and `qa serve --mcp`). None of them changes the index. Standard
output carries the protocol alone: whatever else is printed, by qa or a library, goes to
standard error.
"""

from __future__ import annotations

import io
import os
import sys
from typing import Any

from qa.faces.service import ASK_DOC, DOCUMENTS_DOC, SEARCH_DOC, WHERE_DOC, Service

INSTRUCTIONS = (
    "qa answers questions from the user's own indexed documents, quoting their sentences with "
    "exact citations, and says plainly when the documents do not answer. Use `ask` for an "
    "answer, `search` for passages, `list_documents` to see what is indexed."
)


def build_server(service: Service):
    """The FastMCP server with qa's three tools, read-only."""
    import anyio
    from mcp.server.fastmcp import FastMCP
    from mcp.types import ToolAnnotations

    server = FastMCP("qa", instructions=INSTRUCTIONS, log_level="WARNING")
    read_only = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True,
                                openWorldHint=False)
    where_doc = f"where: {WHERE_DOC}"

    @server.tool(name="search", description=f"{SEARCH_DOC}\n{where_doc}",
                 annotations=read_only)
    async def search(query: str, k: int = 5, where: dict | str | None = None
                     ) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(service.search, query, k, where)

    @server.tool(name="ask", description=f"{ASK_DOC}\n{where_doc}", annotations=read_only)
    async def ask(question: str, history: list[str] | None = None,
                  where: dict | str | None = None) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(service.ask, question, history, where)

    @server.tool(name="list_documents", description=DOCUMENTS_DOC, annotations=read_only)
    async def list_documents() -> list[dict[str, Any]]:
        return await anyio.to_thread.run_sync(service.documents)

    return server


def protocol_stdout() -> io.TextIOWrapper:
    """The process's standard output for the protocol alone; file descriptor 1 (print, a
    library's progress bar, C code) is pointed at standard error from here on."""
    sys.stdout.flush()
    protocol = io.TextIOWrapper(os.fdopen(os.dup(1), "wb"), encoding="utf-8",
                                line_buffering=True)
    os.dup2(2, 1)
    return protocol


def run_stdio(service: Service, stdout: io.TextIOWrapper) -> None:
    """Serve MCP on standard input and `stdout` until the client closes standard input."""
    import anyio
    from mcp.server.stdio import stdio_server

    server = build_server(service)

    async def serve() -> None:
        # FastMCP.run_stdio_async, with the protocol's own copy of standard output
        async with stdio_server(stdout=anyio.wrap_file(stdout)) as (read, write):
            low = server._mcp_server  # FastMCP's protocol server; it offers no public handle
            await low.run(read, write, low.create_initialization_options())

    anyio.run(serve)
