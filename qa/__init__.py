"""qa: answers from your own documents, quoted and cited.

    from qa import Engine
    engine = Engine.open(sources=["seeds"], index_dir="index")
    engine.retrieve("What did Russia demand?", k=5)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qa.schema import Answer, Citation, Passage

if TYPE_CHECKING:
    from qa.engine import Engine

__all__ = ["Answer", "Citation", "Engine", "Passage"]


def __getattr__(name: str):
    # The engine pulls in torch and LlamaIndex; import it only when asked for.
    if name == "Engine":
        from qa.engine import Engine

        return Engine
    raise AttributeError(name)
