"""The data objects passed between steps: defined once, used by every face."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def one_line(text: str) -> str:
    """`text` with control and other unprintable characters escaped as Python writes them
    (a newline in a file name becomes `\\n`), so a message is always one printable line."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


@dataclass
class Passage:
    """A run of whole sentences of one document; `document.text[start:end] == text`."""

    id: str
    doc_id: str
    source: str
    title: str
    text: str
    start: int
    end: int
    score: float = 0.0
    page: int | None = None  # 1-based PDF page where the passage starts

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Citation:
    n: int
    passage: Passage
    quote: str
    quote_start: int
    quote_end: int
    # the answer's key phrase when it lies in this quote (document offsets), else -1
    phrase_start: int = -1
    phrase_end: int = -1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    question: str
    standalone_question: str
    answered: bool
    text: str
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)  # the nearest passages, always
    confidence: float = 0.0
    # what the quotes rest on: "confidence" (scored against the question), or the rule that
    # picked them: "opening" (a document's lead, for "Summarize ..."), "introduction" (the
    # sentence introducing X, for "Who is X?")
    basis: str = "confidence"
    # the words of the quotes that answer (a number, a name, a date, a short phrase), as the
    # learned reader finds them; "" when it is off or finds none (offsets: on its citation)
    key_phrase: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadError:
    """A file (or a line of one) that could not be read, and why, in words for the user."""

    path: str
    reason: str

    def __str__(self) -> str:
        return one_line(f"{self.path}: {self.reason}")
