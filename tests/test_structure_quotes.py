"""A document's structure (headings, list markers, bold leads, captions, datelines) names or
frames its text: it is never quoted as, or as part of, an answer's sentence (issue 30, item 1)."""

from __future__ import annotations

import re

import pytest
from test_answers import check_citations

from qa import Engine
from qa.ingest.chunk import split_sentences

NOTE = """# Weekly notes

## Projects

1. **CI migration.** Priya owns the migration from Jenkins to GitHub Actions and plans to finish it by March.
2. **Design review.** Tom leads the design review of the new billing service.
3. **Hiring.** We are hiring two backend engineers this quarter.

## Tires
I run the front tire at 4.5 bar and the rear at 5 bar on the road bike. Both tires are Continental Grand Prix 5000, 28 mm wide.

## Groceries

- Buy coffee beans and oat milk.
- Pick up bread on Friday.
"""  # noqa: E501
MARKER = re.compile(r"(^|\n)[ \t]*(#{1,6}\s|[-*+]\s|\d{1,3}[.)]\s)|\*\*|__")
TIMESTAMP = re.compile(r"\b\d{1,2}:\d\d\s*$")  # a video caption's running time, "0:47"


@pytest.fixture(scope="module")
def note_engine(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notes")
    (folder / "notes.md").write_text(NOTE)
    return Engine.open(sources=[folder], index_dir=tmp_path_factory.mktemp("notes-index"))


def check_no_structure(engine, answer) -> None:
    """Quotes are exact, hold no Markdown marker, and no line of one is a heading, caption or
    dateline (each line ends as a sentence does)."""
    check_citations(engine, answer)
    for c in answer.citations:
        assert not MARKER.search(c.quote), c.quote
        for line in c.quote.splitlines():
            assert line.rstrip().endswith((".", "!", "?", "”", '"')), (line, c.quote)
            assert not TIMESTAMP.search(line), c.quote


@pytest.mark.parametrize("question,sentence", [
    ("Who owns the CI migration?", "Priya owns the migration from Jenkins to GitHub Actions"),
    ("What brand are my bike tires?", "Both tires are Continental Grand Prix 5000"),
    ("Who leads the design review?", "Tom leads the design review of the new billing service."),
])
def test_a_note_is_answered_by_its_sentence_not_its_structure(note_engine, question, sentence):
    answer = note_engine.ask(question)
    assert answer.answered, answer.confidence
    check_no_structure(note_engine, answer)
    assert sentence in answer.citations[0].quote
    assert "CI migration." not in answer.text and "Tires I run" not in answer.text


def test_list_items_are_quoted_apart_without_their_markers(note_engine):
    answer = note_engine.ask("What should I buy?")
    assert answer.answered
    check_no_structure(note_engine, answer)
    assert any(c.quote.startswith("Buy coffee beans") for c in answer.citations)


@pytest.mark.parametrize("question", ["Summarize the article", "What did Russia demand?"])
def test_the_seed_article_quotes_no_dateline_or_caption(seed_engine, question):
    answer = seed_engine.ask(question)
    assert answer.answered, answer.confidence
    check_no_structure(seed_engine, answer)
    quotes = " ".join(c.quote for c in answer.citations)
    assert "date 2022-01-24" not in quotes and "0:58" not in quotes and "0:47" not in quotes
    if question.startswith("Summarize"):
        assert answer.citations[0].quote.startswith("(CNN)")


def test_a_markdown_heading_or_list_marker_is_never_glued_to_a_sentence():
    text = "## Tires\nfront at 4.5 bar.\n1. **CI.** Priya owns it.\n2. Tom,\n3. Ana."
    found = [text[s.start : s.end] for s in split_sentences(text)]
    assert found[:2] == ["## Tires", "front at 4.5 bar."]
    assert "1. **CI." in found  # the list marker opens its item's first sentence
    assert "1." not in found and "2. Tom," in found and "3. Ana." in found
