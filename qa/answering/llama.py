"""The engine as a LlamaIndex retriever, for any LlamaIndex query engine or pipeline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from qa.settings import RetrieveSettings

# (question, k, retrieval settings or None for the engine's, scope) -> (node, score), best first
NodeSearch = Callable[[str, int, RetrieveSettings | None, Any], list[tuple[TextNode, float]]]


class LiveRetriever(BaseRetriever):
    """Searches through `Engine.nodes` at each call, so it reads the generation live then and
    sees documents added after it was made."""

    def __init__(self, search: NodeSearch, k: int = 5,
                 settings: RetrieveSettings | None = None, where: Any = None) -> None:
        super().__init__()
        self.search = search
        self.k = k
        self.settings = settings  # the engine's when None
        self.where = where  # only from these documents (qa/answering/scope.py); None: all

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        found = self.search(query_bundle.query_str, self.k, self.settings, self.where)
        return [NodeWithScore(node=node, score=score) for node, score in found]
