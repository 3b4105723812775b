"""Answers and passages -> the HTML and Markdown the page shows.

Everything that came from a document or a user is escaped here: the page shows document text
as text, never as markup, so a document holding `<script>` or `onerror=` runs nothing.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence

from qa.schema import Answer, Citation, Passage

CONTEXT_CHARS = 700  # document text shown on each side of a passage when it is opened
DocText = Callable[[str], str]  # doc_id -> the document's text
Byline = Callable[[str], str]  # doc_id -> who published it and when ("CNN, 2022-01-24"), or ""

# What each number means, shown on hover; each number means one thing wherever it appears.
CONFIDENCE_HELP = (
    "How likely the quoted sentences are to answer the question, from 0 to 1, as qa estimates "
    "it; below its threshold qa declines instead of answering."
)
MATCH_HELP = (
    "How closely the search matched this passage to the question, from 0 to 1 (meaning and "
    "shared words together). It ranks the passages; it is not the answer's confidence."
)
RULE_HELP = (
    "Quoted by a rule rather than scored against the question: a summary quotes the opening "
    "of the document, 'Who is X?' the sentence that introduces X. No confidence applies."
)

EMPTY_SOURCES = (
    '<div class="qa-sources qa-empty"><p>Ask a question: the passages its answer quotes appear '
    "here, with the quoted sentences highlighted.</p></div>"
)

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-!|~$.])")
_MARKER = re.compile(r"\\\[(\d+)\\\]")
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n\s*")
MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdx")
# A heading's hashes, a bullet, emphasis: shown as the words they mark, a bullet as "•".
_MD_MARKERS = re.compile(
    r"^[ \t]{0,3}#{1,6}[ \t]+|^[ \t]*(?P<bullet>[-*+])[ \t]+|\*\*|__|(?<![\w*])\*(?=\S)|"
    r"(?<=\S)\*(?![\w*])", re.M)


# ---- chat messages (Markdown) ----------------------------------------------------------
def md_text(text: str) -> str:
    """Plain text as Markdown that renders to exactly that text (no markup, no HTML)."""
    lines = []
    for line in text.splitlines():
        line = html.escape(line.strip(), quote=False)
        lines.append(_MD_SPECIAL.sub(r"\\\1", line))
    return "  \n".join(lines)


def answer_markdown(answer: Answer) -> str:
    """The chat bubble of an answer: its text with the [n] markers set off; a declined answer
    carries a label so it never passes for an answer."""
    before, phrase, after = phrase_parts(answer)
    body = md_text(before)
    if phrase:  # md_text trims each line: the spaces around the phrase are put back
        body += (" " if before.endswith(" ") else "") + (
            f'<strong class="qa-key">{md_text(phrase)}</strong>'
            + (" " if after.startswith(" ") else "") + md_text(after))
    body = _MARKER.sub(r'<sup class="qa-marker">[\1]</sup>', body)
    if answer.answered:
        return body
    return f'<span class="qa-declined-label">Not answered by your documents</span>\n\n{body}'


def phrase_parts(answer: Answer) -> tuple[str, str, str]:
    """The answer's text cut around its key phrase (in its quote, spaces as the text has
    them); ("text", "", "") when it has none."""
    text = answer.text
    cited = next((c for c in answer.citations if c.phrase_start >= 0), None)
    if not answer.answered or cited is None:
        return text, "", ""
    quote = " ".join(cited.quote.split())
    at = text.find(f"{quote} [{cited.n}]")
    lead = " ".join(cited.quote[: cited.phrase_start - cited.quote_start].split())
    phrase = " ".join(answer.key_phrase.split())
    found = quote.find(phrase, max(0, len(lead) - 1)) if at >= 0 and phrase else -1
    if found < 0:
        return text, "", ""
    start = at + found
    return text[:start], phrase, text[start + len(phrase):]


def chat_messages(questions: Sequence[str], answers: Sequence[Answer]) -> list[dict]:
    """The conversation as Chatbot messages: each question, then its answer."""
    messages = []
    for question, answer in zip(questions, answers):
        messages.append({"role": "user", "content": md_text(question)})
        messages.append({"role": "assistant", "content": answer_markdown(answer)})
    return messages


# ---- sources panel (HTML) --------------------------------------------------------------
def no_byline(doc_id: str) -> str:
    return ""


def sources_html(answer: Answer | None, doc_text: DocText, byline: Byline = no_byline) -> str:
    """The sources panel for one answer: each citation's passage with its quote highlighted;
    for a declined answer, the closest passages. A passage shows its search match when the
    search chose it: not when a rule picked the quotes."""
    if answer is None:
        return EMPTY_SOURCES
    if answer.answered and answer.citations:
        head = (
            '<div class="qa-status qa-status-answered">Sources for this answer '
            f"{basis_html(answer)}</div>"
        )
        rule = by_rule(answer)
        cards = [citation_card(c, doc_text, byline, None if rule else c.passage.score)
                 for c in answer.citations]
        kind = "qa-answered"
    else:
        head = (
            '<div class="qa-status qa-status-declined">The documents do not answer this. '
            "The closest passages:</div>"
        )
        cards = [passage_card(p, doc_text, byline) for p in answer.passages]
        if not cards:
            cards = ['<p class="qa-none">No passages: the index is empty.</p>']
        kind = "qa-declined"
    return f'<div class="qa-sources {kind}">{head}{"".join(cards)}</div>'


RULES = {"opening": "from the document's opening",
         "introduction": "from the sentence introducing the name"}


def basis_html(answer: Answer) -> str:
    """What an answer's quotes rest on: its confidence; or, when a rule picked them, which
    rule (no confidence is computed for those)."""
    if not by_rule(answer):
        return (f'<span class="qa-confidence" title="{html.escape(CONFIDENCE_HELP)}">'
                f"confidence {answer.confidence:.2f}</span>")
    rule = RULES.get(answer.basis, "by a rule")
    return f'<span class="qa-confidence qa-rule" title="{html.escape(RULE_HELP)}">{rule}</span>'


def by_rule(answer: Answer) -> bool:
    """Whether a rule picked the answer's quotes (a document's opening for "Summarize ...",
    the sentence introducing X for "Who is X?"): their passages are then read from the
    document rather than returned by the search, so none carries a search score."""
    return bool(answer.answered and answer.citations) and answer.basis != "confidence"


def citation_card(citation: Citation, doc_text: DocText, byline: Byline = no_byline,
                  match: float | None = None) -> str:
    """`match`: the passage's search score, when the search returned it."""
    quote = (citation.quote_start, citation.quote_end)
    phrase = ((citation.phrase_start, citation.phrase_end) if citation.phrase_start >= 0
              else None)
    return _card(citation.passage, doc_text, byline, label=f"[{citation.n}]", quote=quote,
                 anchor=f"qa-source-{citation.n}", match=match, phrase=phrase)


def passage_card(passage: Passage, doc_text: DocText, byline: Byline = no_byline) -> str:
    """A passage the search returned, with its match."""
    return _card(passage, doc_text, byline, label="", quote=None, anchor="", match=passage.score)


def _card(
    passage: Passage,
    doc_text: DocText,
    byline: Byline,
    label: str,
    quote: tuple[int, int] | None,
    anchor: str,
    match: float | None,
    phrase: tuple[int, int] | None = None,
) -> str:
    """A passage under its document's title, then its file, publisher and date, its place in
    the document and its search match."""
    text = doc_text(passage.doc_id)
    marks = [(quote[0], quote[1], '<mark class="qa-quote">', "</mark>")] if quote else []
    if quote and phrase:  # the words that answer, inside the quote
        marks.append((phrase[0], phrase[1], '<strong class="qa-key">', "</strong>"))
    plain = is_markdown(passage.source)
    body = marked(text, passage.start, passage.end, marks, plain)
    e = html.escape
    doc = f'<span class="qa-doc" title="{e(passage.doc_id)}">{e(passage.source)}</span>'
    titled = bool(passage.title) and passage.title != passage.source
    origin = [doc] if titled else []
    if published := byline(passage.doc_id):
        origin.append(f'<span class="qa-byline">{e(published)}</span>')
    meta = [f'<span class="qa-loc">{e(location(passage, text))}</span>']
    if match is not None:
        value = min(1.0, max(0.0, match))  # a fused score a hair below 0 is 0, as on hover
        meta.append(f'<span class="qa-score" title="{e(MATCH_HELP)}">match {value:.2f}</span>')
    n = f'<span class="qa-n">{e(label)}</span> ' if label else ""
    anchor_attr = f' id="{e(anchor)}"' if anchor else ""
    heading = f'<span class="qa-title">{e(passage.title)}</span>' if titled else doc
    return (
        f'<article class="qa-source"{anchor_attr}>'
        f"<header>{n}{heading}</header>"
        + (f'<div class="qa-origin">{" · ".join(origin)}</div>' if origin else "")
        + f'<div class="qa-meta">{" · ".join(meta)}</div>'
        f'<p class="qa-passage">{body}</p>'
        f"{context_html(passage, text, marks, plain)}"
        "</article>"
    )


def sources_link(answer: Answer | None) -> str:
    """A link down to the sources panel, for screens where it is below the chat."""
    if answer is None:
        return ""
    if answer.answered and answer.citations:
        n = len(answer.citations)
        what = f"Sources: the {n} passages quoted" if n > 1 else "Source: the passage quoted"
    else:
        what = "The closest passages"
    return f'<a class="qa-to-sources" href="#qa-sources-panel">{what} ↓</a>'


def context_html(passage: Passage, text: str, marks: Sequence[tuple], plain: bool = False) -> str:
    """A collapsed view of the document around the passage: opened, it shows the surrounding
    text with the passage set off and the quote highlighted."""
    start, end = context_bounds(text, passage.start, passage.end)
    spans = [(passage.start, passage.end, '<span class="qa-here">', "</span>"), *marks]
    before = "… " if start > 0 else ""
    after = " …" if end < len(text) else ""
    around = marked(text, start, end, spans, plain)
    return (
        '<details class="qa-context"><summary>Show in document</summary>'
        f'<div class="qa-context-text">{before}{around}{after}</div>'
        "</details>"
    )


def context_bounds(text: str, start: int, end: int, chars: int = CONTEXT_CHARS) -> tuple[int, int]:
    """A window of about `chars` on each side, widened or narrowed to line breaks."""
    lo = max(0, start - chars)
    if lo > 0:
        cut = text.find("\n", lo, start)
        lo = cut + 1 if cut != -1 else lo
    hi = min(len(text), end + chars)
    if hi < len(text):
        cut = text.rfind("\n", end, hi)
        hi = cut if cut != -1 else hi
    return lo, hi


def is_markdown(source: str) -> bool:
    return source.lower().endswith(MARKDOWN_SUFFIXES)


def shown(text: str, a: int, b: int, plain: bool) -> str:
    """`text[a:b]` escaped; with `plain`, without Markdown's markers (heading hashes, list
    bullets, emphasis), which are the document's structure rather than its words."""
    if not plain:
        return html.escape(text[a:b])
    line = text.rfind("\n", 0, a) + 1  # markers at a line's start are found from the line
    out, pos = [], a
    for m in _MD_MARKERS.finditer(text, line, b):
        s, t = max(m.start(), a), min(m.end(), b)
        if s >= t:
            continue
        out.append(html.escape(text[pos:s]))
        out.append("• " if m.group("bullet") and s == m.start("bullet") else "")
        pos = t
    out.append(html.escape(text[pos:b]))
    return "".join(out)


def marked(text: str, start: int, end: int, spans: Sequence[tuple[int, int, str, str]],
           plain: bool = False) -> str:
    """`text[start:end]` escaped (`plain`: without Markdown markers, see `shown`), each
    (span_start, span_end, open_tag, close_tag) span wrapped in its tags; spans are document
    offsets, each nested in (clipped to) the one before."""
    out: list[str] = []
    closes: list[tuple[int, str]] = []
    pos, lo, hi = start, start, end
    for s, t, open_tag, close_tag in spans:
        lo, hi = max(s, lo), min(t, hi)
        if lo >= hi:
            break
        out += [shown(text, pos, lo, plain), open_tag]
        closes.append((hi, close_tag))
        pos = lo
    for t, close_tag in reversed(closes):
        out += [shown(text, pos, t, plain), close_tag]
        pos = t
    out.append(shown(text, pos, end, plain))
    return "".join(out)


def location(passage: Passage, text: str) -> str:
    """Where the passage is: its PDF page, else its paragraph in the document."""
    if passage.page:
        return f"page {passage.page}"
    return f"paragraph {paragraph_number(text, passage.start)}"


def paragraph_number(text: str, offset: int) -> int:
    """1-based paragraph holding `offset`: paragraphs are split by blank lines, or by line
    breaks when the document has no blank line."""
    head = text[:offset]
    if _BLANK_LINE.search(text):
        breaks = _BLANK_LINE.findall(head)
    else:
        breaks = head.split("\n")[1:]
    return len(breaks) + 1


# ---- documents and uploads -------------------------------------------------------------
def status_html(lines: Sequence[tuple[bool, str]]) -> str:
    """One line per file: accepted (True) or rejected (False) with its message."""
    if not lines:
        return ""
    items = "".join(
        f'<li class="{"qa-ok" if ok else "qa-rejected"}">{html.escape(msg)}</li>'
        for ok, msg in lines
    )
    return f'<ul class="qa-upload-status">{items}</ul>'
