"""HTML pages become their visible text in linear time, whatever their shape."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT

from qa.ingest.load import _html_to_text, load_file

# Converted in a child process so that a slow conversion is stopped, not waited for; the bound
# is generous (the conversions take about a second together; quadratic code took minutes).
BIG_PAGES = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from qa.ingest.load import load_file
    folder = Path(sys.argv[1])
    pages = {
        "blocks.html": "<p>x</p>" * 40_000,
        "nested.html": "<div>" * 100_000 + "deep" + "</div>" * 100_000,
        "unclosed.html": "<p>text</p>" + "<a " * 20_000,
    }
    start = time.perf_counter()
    for name, html in pages.items():
        (folder / name).write_text(html)
        result = load_file(folder / name, folder)
        print(name, len(result.documents[0].text))
    print("seconds", time.perf_counter() - start)
    """
)


def test_large_pages_of_any_shape_convert_quickly(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", BIG_PAGES, str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=90, check=True,
    )  # fmt: skip
    lines = dict(line.split() for line in done.stdout.splitlines())
    assert lines["blocks.html"] == str(len("\n\n".join(["x"] * 40_000)))
    assert lines["nested.html"] == str(len("deep"))
    assert lines["unclosed.html"] == str(len("text"))
    assert float(lines["seconds"]) < 20


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>Fish &amp; chips&nbsp;for&#160;two &#x263A; &#9731; &copy 2026</p>",
         "Fish & chips for two \u263a \u2603 \u00a9 2026"),
        ("<p>One\n   two</p><p>Three</p>", "One two\n\nThree"),
        ("<p>unclosed <b>bold <i>italic<p>next<div>block", "unclosed bold italic\n\nnext\n\nblock"),
        ("<ul><li>one<li>two</ul>after", "one\n\ntwo\n\nafter"),
        ("a<br>b<br/>c<hr>d", "a\n\nb\n\nc\n\nd"),
        ("<span>in</span><b>line</b> words", "inline words"),
        ("<p title='x > y' data-a=\"<p>\">attribute</p>", "attribute"),
        ("<p>a < b and c > d</p>", "a < b and c > d"),
        ("<p>a</p></p></div></span><p>b", "a\n\nb"),
        ("<P CLASS=x>Upper</P><DIV>case</DIV>", "Upper\n\ncase"),
        ("<p>x</p><script>document.write('<p>no</p>')</script><noscript>nojs</noscript>"
         "<template>t</template><svg><text>s</text></svg><iframe>i</iframe><p>y</p>", "x\n\ny"),
        ("<p>a</p><!-- a <p>comment</p> --><p>b</p><!-- never closed <p>c</p>", "a\n\nb"),
        ("<p>x<script>never closed", "x"),
        ("<html><head><title>T</title><body><p>no end to the head", "no end to the head"),
    ],
)  # fmt: skip
def test_visible_text_block_by_block(html, text):
    assert _html_to_text(html)[0] == text


def test_title_is_the_title_element_or_else_the_first_line():
    page = "<html><head><title> Orchard\n Guide </title></head><body><p>Cider.</p></body></html>"
    assert _html_to_text(page) == ("Cider.", "Orchard Guide")
    assert _html_to_text("<h1>Heading</h1><p>Body.</p>") == ("Heading\n\nBody.", "Heading")


def test_a_page_of_markup_only_has_no_visible_text(tmp_path):
    page = tmp_path / "empty.html"
    page.write_text("<html><head><style>p {}</style></head><body><script>x()</script></body>")
    result = load_file(page, tmp_path)
    assert result.documents == []
    assert [e.reason for e in result.errors] == [
        "no visible text in it (only markup, scripts or styles)"
    ]


# ---- passages: short paragraphs join, so a page's passages grow with its words ------------------
SHORT = ("Harbour lights", "The ferry left at dawn.", "Market day", "Fresh bread and cheese.",
         "The council met", "Boats in the bay")


def passages(text: str) -> list[str]:
    from llama_index.core.schema import Document

    from qa.ingest.chunk import chunk_document
    from qa.models.embed import make_embedder
    from qa.settings import ChunkSettings

    doc = Document(text=text, metadata={"doc_id": "page.html", "title": "", "source": "page.html"})
    return [n.text for n in chunk_document(doc, ChunkSettings(), make_embedder().count_tokens)]


@pytest.mark.parametrize("html", ["<p>x</p>" * 30_000,
                                  "".join(f"<p>{SHORT[i % 6]}</p>\n" for i in range(12_000))])
def test_short_paragraphs_join_into_passages_of_normal_size(html):
    text = _html_to_text(html)[0]
    found = passages(text)
    words = [len(p.split()) for p in found]
    assert sum(words) == len(text.split())  # every word, once
    assert all(40 <= n <= 120 for n in words[:-1]), sorted(set(words))
    assert len(found) <= len(text.split()) // 40 + 1


def test_a_heading_after_prose_still_opens_a_passage():
    prose = "The lighthouse keeper climbed the tower every evening to light the lamp. "
    text = f"Coast Guide\n\n{prose * 2}\n\nThe Lighthouse\n\n{prose * 3}\n\nHarbours\n\nOne.\n\n"
    found = passages(text)
    assert [p.split("\n")[0] for p in found] == ["Coast Guide", "The Lighthouse", "Harbours"]


def test_a_page_of_tiny_paragraphs_indexes_as_few_passages(tmp_path):
    from qa import Engine

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "page.html").write_text("<p>x</p>" * 30_000)  # 240 KB
    engine = Engine.open(sources=[folder], index_dir=tmp_path / "index")
    assert len(engine.index) == 30_000 // 40  # was a passage per paragraph: 30,000
