"""The app's pieces without a server: escaping, locations, highlighting, upload checks."""

from __future__ import annotations

import re

from conftest import SEED_FILE

from qa.schema import Answer, Citation, Passage
from qa.ui import render, uploads

HOSTILE = 'Festival <script>alert(1)</script> <img src=x onerror="alert(2)"> **b** [x](y) $$z$$'


def _passage(text: str, start: int = 0, page: int | None = None) -> Passage:
    return Passage("p1", "doc.txt", "doc.txt", "Doc", text, start, start + len(text), 0.5, page)


def test_sources_panel_escapes_document_text():
    text = HOSTILE
    quote_start = text.index("<script>")
    citation = Citation(
        1,
        _passage(text),
        "<script>alert(1)</script>",
        quote_start,
        quote_start + len("<script>alert(1)</script>"),
    )
    answer = Answer("q", "q", True, "<script>alert(1)</script> [1]", [citation], [], 0.9)
    html = render.sources_html(answer, lambda doc_id: text)
    assert "<script" not in html and "<img" not in html
    assert '<mark class="qa-quote">&lt;script&gt;alert(1)&lt;/script&gt;</mark>' in html
    assert "onerror=&quot;alert(2)&quot;" in html


def test_chat_message_is_text_not_markup():
    answer = Answer("q", "q", True, f"{HOSTILE} [1] Then more. [2]", [], [], 0.9)
    md = render.answer_markdown(answer)
    assert "<script" not in md and "<img" not in md
    assert "\\*\\*b\\*\\*" in md and "\\$\\$z\\$\\$" in md
    assert md.count('<sup class="qa-marker">') == 2
    declined = render.answer_markdown(Answer("q", "q", False, "Not in the documents.", [], [], 0))
    assert "qa-declined-label" in declined
    messages = render.chat_messages(["<b>hi</b>"], [answer])
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["content"] == "&lt;b&gt;hi&lt;/b&gt;"


def test_declined_panel_lists_closest_passages_without_highlight():
    passages = [_passage("One passage."), _passage("Another passage.")]
    answer = Answer("q", "q", False, "The documents do not answer this.", [], passages, 0.1)
    html = render.sources_html(answer, lambda doc_id: "One passage.Another passage.")
    assert 'class="qa-sources qa-declined"' in html
    assert html.count('<article class="qa-source"') == 2 and "qa-quote" not in html


def test_location_is_page_for_pdf_else_paragraph():
    text = SEED_FILE.read_text(encoding="utf-8")
    offset = text.index("Russia said the United States and NATO must commit")
    paragraph = render.paragraph_number(text, offset)
    blocks = [b for b in re.split(r"\n\s*\n", text) if b.strip()]
    assert "Russia said the United States and NATO must commit" in blocks[paragraph - 1]
    assert render.paragraph_number(text, 0) == 1
    assert render.location(_passage("x", page=3), text) == "page 3"
    lines = "first line\nsecond line\nthird line"
    assert render.paragraph_number(lines, lines.index("third")) == 3


def test_context_marks_passage_and_quote_inside_the_document():
    text = "Intro line.\n\nBefore it. The passage here. After it.\n\nOutro."
    start = text.index("The passage")
    passage = _passage("The passage here.", start)
    spans = [(start + 4, start + 11, "<mark>", "</mark>")]
    html = render.context_html(passage, text, spans)
    assert '<span class="qa-here">The <mark>passage</mark> here.</span>' in html
    assert "Intro line." in html and "Outro." in html


def test_safe_names_stay_inside_the_uploads_folder():
    assert uploads.safe_name("../../etc/passwd.txt") == "passwd.txt"
    assert uploads.safe_name("..\\..\\boot.ini.md") == "boot.ini.md"
    assert uploads.safe_name(".hidden.txt") == "hidden.txt"
    hostile = "<img src=x onerror=alert(1)>.TXT"
    assert uploads.safe_name(hostile) == "_img src_x onerror_alert_1__.txt"
    assert uploads.safe_name("...") == "upload"
    assert len(uploads.safe_name("a" * 500 + ".pdf")) == uploads.MAX_NAME_CHARS


def test_store_keeps_allowed_files_and_says_why_others_are_refused(tmp_path):
    incoming = tmp_path / "in"
    incoming.mkdir()
    (incoming / "notes.md").write_text("# Notes\n\nSome text.", encoding="utf-8")
    (incoming / "run.sh").write_text("echo hi", encoding="utf-8")
    (incoming / "big.txt").write_text("x" * 3000, encoding="utf-8")
    folder = tmp_path / "data" / "uploads"
    stored, rejected = uploads.store(sorted(incoming.iterdir()), folder, max_bytes=2000)
    assert [s.path for s in stored] == [folder / "notes.md"]
    assert {r.name: r.reason for r in rejected} == {
        "big.txt": "too large (3 KB; the limit is 2 KB)",
        "run.sh": "file type '.sh' is not allowed "
        "(allowed: .txt, .md, .markdown, .html, .htm, .pdf, .jsonl)",
    }
    assert sorted(p.name for p in folder.iterdir()) == ["notes.md"]


def test_store_over_an_existing_upload_can_be_undone(tmp_path):
    folder = tmp_path / "uploads"
    folder.mkdir()
    (folder / "a.txt").write_text("old", encoding="utf-8")
    new = tmp_path / "a.txt"
    new.write_text("new", encoding="utf-8")
    (item,), _ = uploads.store([new], folder, max_bytes=100)
    assert (folder / "a.txt").read_text() == "new"
    item.undo()
    assert (folder / "a.txt").read_text() == "old"
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt"]


# ---- what a card and its numbers say -----------------------------------------------------
def _titled(score: float) -> Passage:
    return Passage("p1", "a/cnn.txt", "a/cnn.txt", "NATO strengthens presence", "Troops moved.",
                   0, 13, score)


def test_a_card_shows_the_title_first_then_the_file_publisher_and_date():
    citation = Citation(1, _titled(0.41), "Troops moved.", 0, 13)
    answer = Answer("q", "q", True, "Troops moved. [1]", [citation], [citation.passage], 0.8)
    html = render.sources_html(answer, lambda doc_id: "Troops moved.", lambda doc_id: "CNN, 2022")
    header = re.search(r"<header>(.*?)</header>", html).group(1)
    assert header.endswith('<span class="qa-title">NATO strengthens presence</span>')
    origin = re.search(r'<div class="qa-origin">(.*?)</div>', html).group(1)
    assert origin == ('<span class="qa-doc" title="a/cnn.txt">a/cnn.txt</span> · '
                      '<span class="qa-byline">CNN, 2022</span>')
    untitled = Passage("p2", "notes.txt", "notes.txt", "notes.txt", "Hi.", 0, 3, 0.3)
    html = render.sources_html(Answer("q", "q", False, "No.", [], [untitled], 0.1),
                               lambda doc_id: "Hi.")
    assert '<header><span class="qa-doc" title="notes.txt">notes.txt</span></header>' in html
    assert "qa-origin" not in html  # the file once, as the heading


def _numbers(html: str) -> list[tuple[str, str]]:
    """(text, hover text) of every number the panel shows."""
    return re.findall(r'<span class="[^"]*" title="([^"]*)">([a-z\' ]*\d\.\d+)</span>', html)


def test_each_number_is_named_explained_on_hover_and_shown_only_when_it_applies():
    searched = Citation(1, _titled(0.41), "Troops moved.", 0, 13)
    answer = Answer("q", "q", True, "Troops moved. [1]", [searched], [searched.passage], 0.8)
    shown = _numbers(render.sources_html(answer, lambda doc_id: "Troops moved."))
    assert [text for _, text in shown] == ["confidence 0.80", "match 0.41"]
    assert all(len(hover) > 40 for hover, _ in shown) and shown[0][0] != shown[1][0]
    # quotes a rule picked (a summary's opening, the sentence introducing a name): read from
    # the document, not found by the search, with no confidence computed; so neither number
    lead = Citation(1, _titled(0.0), "Troops moved.", 0, 13)
    by_rule = Answer("Summarize it", "Summarize it", True, "Troops moved. [1]", [lead],
                     [_titled(0.02)], 1.0, basis="opening")
    html = render.sources_html(by_rule, lambda doc_id: "Troops moved.")
    visible = re.sub(r"<[^>]*>", "", html)
    assert _numbers(html) == [] and "score" not in visible and "confidence" not in visible
    assert re.search(r'class="qa-confidence qa-rule" title="[^"]{40,}">from the document\'s '
                     r"opening</span>", html)
    declined = Answer("q", "q", False, "No.", [], [_titled(0.12), _titled(-0.008)], 0.1)
    shown = _numbers(render.sources_html(declined, lambda doc_id: "Troops moved."))
    assert [text for _, text in shown] == ["match 0.12", "match 0.00"]  # 0 to 1, as on hover


def test_the_rule_named_is_the_rule_that_picked_the_quotes():
    """A summary quotes a document's opening even when caption and dateline lines (never
    quoted) come before it; "Who is X?" quotes the sentence introducing X wherever it is."""
    text = "date 2022-01-24 Title 0:58\nTroops moved."
    lead = Citation(1, Passage("p1", "a", "a", "T", text, 0, len(text), 0.0), "Troops moved.",
                    27, 40)
    for basis, said in [("opening", "from the document's opening"),
                        ("introduction", "from the sentence introducing the name")]:
        answer = Answer("q", "q", True, "Troops moved. [1]", [lead], [], 1.0, basis=basis)
        assert f">{said}</span>" in render.sources_html(answer, lambda doc_id: text)


def test_a_markdown_card_shows_the_words_without_their_markers_and_the_quote_exact():
    text = "# Weekly notes\n\n## Projects\n\n1. **CI migration.** Priya owns the migration.\n"
    start = text.index("Priya")
    end = text.index(".\n", start) + 1
    passage = Passage("p1", "notes.md", "notes.md", "Weekly notes", text, 0, len(text), 0.4)
    citation = Citation(1, passage, text[start:end], start, end)
    answer = Answer("q", "q", True, "Priya owns the migration. [1]", [citation], [passage], 0.9)
    card = render.sources_html(answer, lambda doc_id: text)
    body = re.search(r'<p class="qa-passage">(.*?)</p>', card, re.S).group(1)
    assert "#" not in body and "**" not in body
    assert body.startswith("Weekly notes\n\nProjects\n\n1. CI migration. ")
    assert '<mark class="qa-quote">Priya owns the migration.</mark>' in body
    as_text = Passage("p1", "notes.txt", "notes.txt", "Weekly notes", text, 0, len(text), 0.4)
    kept = render.sources_html(Answer("q", "q", False, "No.", [], [as_text], 0.1),
                               lambda doc_id: text)
    assert "## Projects" in kept  # only a Markdown file's markers are structure


def test_the_link_to_the_sources_says_what_is_there():
    searched = Citation(1, _titled(0.41), "Troops moved.", 0, 13)
    answer = Answer("q", "q", True, "Troops moved. [1]", [searched, searched], [], 0.8)
    assert render.sources_link(None) == ""
    link = render.sources_link(answer)
    assert link.startswith('<a class="qa-to-sources" href="#qa-sources-panel">Sources: the 2')
    declined = Answer("q", "q", False, "No.", [], [_titled(0.12)], 0.1)
    assert "closest passages" in render.sources_link(declined)


def test_the_key_phrase_is_set_off_in_the_bubble_and_the_card_inside_its_quote():
    text = "Tires. Both tires are Continental Grand Prix 5000, 28 mm wide. Next."
    start, end = text.index("Both"), text.index("wide.") + 5
    key = (text.index("Continental"), text.index(", 28"))
    passage = Passage("p1", "n.txt", "n.txt", "Notes", text, 0, len(text), 0.5)
    cited = Citation(1, passage, text[start:end], start, end, *key)
    answer = Answer("q", "q", True, f"{text[start:end]} [1]", [cited], [passage], 0.9,
                    key_phrase=text[key[0]:key[1]])
    assert render.answer_markdown(answer).startswith(
        'Both tires are <strong class="qa-key">Continental Grand Prix 5000</strong>, 28 mm')
    card = render.sources_html(answer, lambda doc_id: text)
    assert ('<mark class="qa-quote">Both tires are <strong class="qa-key">Continental Grand '
            'Prix 5000</strong>, 28 mm wide.</mark>') in card
    plain = Answer("q", "q", True, f"{text[start:end]} [1]",
                   [Citation(1, passage, text[start:end], start, end)], [passage], 0.9)
    assert "qa-key" not in render.answer_markdown(plain) + render.sources_html(
        plain, lambda doc_id: text)
