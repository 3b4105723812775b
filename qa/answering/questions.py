"""A question and its history as the engine takes them: checked, and cut to a bound."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from qa.errors import BadQuestion
from qa.schema import Answer


def clean_question(question: str, limit: int) -> str:
    if not isinstance(question, str) or not question.strip():
        raise BadQuestion("the question is empty; type a question")
    return _cut(question, limit)


def clean_history(history: Sequence[str | Answer], turns: int, limit: int) -> list[str | Answer]:
    """The last `turns` earlier turns that hold a question, each cut like the question: the
    chat reads only the last few, so a long or huge history costs what a short one does."""
    if isinstance(history, str) or not isinstance(history, Sequence):
        raise BadQuestion("the history must be a list of earlier questions, oldest first")
    for n, item in enumerate(history, 1):
        if not isinstance(item, (str, Answer)):
            raise BadQuestion(
                f"history item {n} is a {type(item).__name__}, not a question; the history is "
                "a list of earlier questions, oldest first"
            )
    kept: list[str | Answer] = []
    for item in reversed(history):
        if len(kept) == turns:
            break
        if isinstance(item, Answer):
            if item.question.strip():
                cut = item.question[:limit]
                kept.append(item if cut == item.question else replace(item, question=cut))
        elif text := _cut(item, limit):
            kept.append(text)
    return kept[::-1]


def _cut(text: str, limit: int) -> str:
    """Whitespace runs made one space, cut to `limit` characters; a word has at least one
    character, so no more words than that are split off, however long the text."""
    words = text.split(maxsplit=limit)[:limit]
    return " ".join(words)[:limit]
