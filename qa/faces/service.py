"""The engine's three calls as JSON for the faces that speak it: the HTTP API (`/api`), the
MCP tools (`qa mcp`, `qa serve --mcp`) and the app's Gradio API. One place checks what a
client sent and says in one line what is wrong with it; the records are `qa ask --json`'s.

The tool descriptions below are what an agent reads to choose a tool: every face shows the
same ones.
"""

from __future__ import annotations

from typing import Any

from qa.answering.questions import clean_question
from qa.answering.scope import Where
from qa.engine import Engine
from qa.errors import BadQuestion

MAX_K = 50  # passages one search returns at most

SEARCH_DOC = (
    "Search the user's indexed documents (notes, reports, articles) for the passages that "
    "best match a query, best first. Each passage has its document's doc_id, source file, "
    "title, text, the character offsets of that text in the document (start, end) and a "
    "relevance score. Use it to find where something is written; use `ask` for an answer."
)
ASK_DOC = (
    "Answer a question from the user's indexed documents only. The answer is made of the "
    "documents' own sentences, each followed by a citation marker [n]; `citations` give each "
    "quote with its document, source and exact character offsets. When the documents do not "
    "answer, `answered` is false and the text says so (never a guess); `passages` still "
    "holds the nearest passages. `history` takes the conversation's earlier questions, "
    "oldest first, so that a follow-up such as 'why?' or 'what did he say?' is understood."
)
DOCUMENTS_DOC = (
    "List the indexed documents: doc_id, title, source file and passage count. A doc_id or "
    "a file pattern from here can scope `search` and `ask` (their `where`)."
)
WHERE_DOC = (
    "Only from some documents: a file pattern such as '*.md' or 'notes/*', or an object "
    "{\"folders\": [...], \"patterns\": [...], \"doc_ids\": [...]}; any entry matching "
    "names a document. Omit it to search everything."
)


class Service:
    """The engine behind the JSON faces; each call checks its input first."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def max_question_chars(self) -> int:
        return self.engine.settings.chat.max_question_chars

    def ask(self, question: Any, history: Any = None, where: Any = None) -> dict[str, Any]:
        question = self._question(question, "question")
        # a history is checked and cut to its last turns by the engine, as for every face
        history = [] if history is None else history
        return self.engine.ask(question, history, where=Where.of(where)).to_dict()

    def search(self, query: Any, k: Any = 5, where: Any = None) -> dict[str, Any]:
        query = self._question(query, "query")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise BadQuestion(f"k must be a whole number from 1 to {MAX_K}, got {k!r}")
        passages = self.engine.retrieve(query, k, where=Where.of(where))
        return {"question": query, "passages": [p.to_dict() for p in passages]}

    def documents(self) -> list[dict[str, Any]]:
        return self.engine.documents()

    def _question(self, text: Any, name: str) -> str:
        if name == "question":
            clean_question(text, self.max_question_chars)  # empty: the engine's own message
        elif not isinstance(text, str) or not text.strip():
            raise BadQuestion("the query is empty; type what to look for")
        if len(text) > self.max_question_chars:
            raise BadQuestion(f"the {name} is {len(text):,} characters long; at most "
                              f"{self.max_question_chars:,}")
        return text
