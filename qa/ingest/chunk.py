"""Documents -> sentences with character offsets -> passages of whole sentences.

A passage is a run of consecutive sentences of one document, closed at a paragraph end once
it has `min_words`, never longer than `max_words`, never across two PDF pages, and never longer
than the embedder's window together with the title prepended to it, so nothing is silently
truncated. A heading after prose opens a passage; short paragraphs in a row join into one, so
the passages of a page grow with its words, not with its markup. Offsets index the document's
text: `document.text[p.start:p.end] == p.text`.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from llama_index.core.schema import Document, NodeRelationship, RelatedNodeInfo, TextNode

from qa.settings import ChunkSettings
from qa.text.english import MARKDOWN_BLOCK, is_heading_paragraph

TokenCounter = Callable[[Sequence[str]], list[int]]

_BLOCK_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")  # a blank line ends a paragraph
_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.?!]")  # Punkt's sentence end characters for English
_MD_HEADING = re.compile(r"[ \t]*#{1,6}[ \t]")
_MD_MARKER = re.compile(r"[ \t]*" + MARKDOWN_BLOCK.pattern)


@dataclass(frozen=True)
class Sentence:
    start: int
    end: int
    paragraph_end: bool  # the last sentence of its paragraph


@lru_cache(maxsize=1)
def _punkt():
    """NLTK's Punkt model from llama-index-core's bundled cache (no download at run time)."""
    import nltk
    from nltk.tokenize.punkt import PunktTokenizer

    spec = importlib.util.find_spec("llama_index.core")
    cache = os.path.join(list(spec.submodule_search_locations)[0], "_static", "nltk_cache")
    if cache not in nltk.data.path:
        nltk.data.path.insert(0, cache)
    return PunktTokenizer("english")


def _lines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Split a paragraph at line breaks, except where the next line continues a sentence
    (starts lowercase, or the line ends with a hyphen or comma), as in hard-wrapped text; a
    Markdown heading line, or a line opening a list item, is never joined."""
    spans, cur = [], start
    for match in re.finditer(r"\n", text[start:end]):
        cut = start + match.start()
        before = text[cur:cut].rstrip()
        after = text[cut + 1 : end].lstrip()
        line = text[text.rfind("\n", start, cut) + 1 : cut]
        marked = _MD_HEADING.match(line) or MARKDOWN_BLOCK.match(after)
        if before and after and (marked or not (after[0].islower() or before[-1] in "-,;")):
            spans.append((cur, cut))
            cur = cut + 1
    spans.append((cur, end))
    return spans


def split_sentences(text: str) -> list[Sentence]:
    """Sentences of a text as stripped character spans, in order."""
    punkt = _punkt()
    sentences: list[Sentence] = []
    blocks, cur = [], 0
    for match in _BLOCK_BREAK.finditer(text):
        blocks.append((cur, match.start()))
        cur = match.end()
    blocks.append((cur, len(text)))
    for b_start, b_end in blocks:
        found: list[Sentence] = []
        for l_start, l_end in _lines(text, b_start, b_end):
            line = text[l_start:l_end]
            # Punkt ends sentences only at . ? !: a line without them is one (a short
            # paragraph, a list item) and costs no Punkt run
            # a list marker ("1.") opens the item's first sentence, not one of its own
            m = marker.end() if (marker := _MD_MARKER.match(line)) else 0
            spans = (punkt.span_tokenize(line[m:]) if _SENTENCE_END.search(line)
                     else [(0, len(line) - m)])
            spans = [(0 if i == 0 else s + m, e + m) for i, (s, e) in enumerate(spans)]
            for s, e in spans:
                s, e = _strip(text, l_start + s, l_start + e)
                if e > s:
                    found.append(Sentence(s, e, False))
        if found:
            last = found[-1]
            found[-1] = Sentence(last.start, last.end, True)
            sentences.extend(found)
    return sentences


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _split_long(
    text: str, sent: Sentence, max_words: int, budget: int, count: TokenCounter
) -> list[Sentence]:
    """Cut a sentence longer than a passage may be into word runs that fit."""
    words = [m.span() for m in _WORD.finditer(text, sent.start, sent.end)]
    pieces: list[Sentence] = []
    i = 0
    while i < len(words):
        n = min(max_words, len(words) - i)
        while n > 1 and count([text[words[i][0] : words[i + n - 1][1]]])[0] > budget:
            n = max(1, n * 3 // 4)
        pieces.append(Sentence(words[i][0], words[i + n - 1][1], False))
        i += n
    last = pieces[-1]
    pieces[-1] = Sentence(last.start, last.end, sent.paragraph_end)
    return pieces


def clip_title(title: str, settings: ChunkSettings, count: TokenCounter) -> str:
    """The title as prepended to passages for embedding, cut to `max_title_tokens`."""
    words = title.split()
    while words and count([" ".join(words)])[0] > settings.max_title_tokens:
        words = words[: max(1, len(words) * 3 // 4)] if len(words) > 1 else []
    return " ".join(words)


def embed_text(title: str, text: str) -> str:
    """What the embedder sees for a passage: its (clipped) title, then its text."""
    return f"{title}\n{text}" if title else text


def chunk_document(doc: Document, settings: ChunkSettings, count: TokenCounter) -> list[TextNode]:
    """One document -> passage nodes carrying offsets and sentence spans in their metadata."""
    text = doc.text
    meta = doc.metadata
    # embedded with the title its content gives, also when a sidecar shows another
    # (qa/ingest/load.py)
    title = clip_title(meta.get("content_title", meta.get("title", "")), settings, count)
    budget = settings.max_tokens - (count([title])[0] + 1 if title else 0)
    sentences = split_sentences(text)
    tokens = count([text[s.start : s.end] for s in sentences]) if sentences else []
    units: list[tuple[Sentence, int, int]] = []  # sentence, words, tokens
    for sent, n_tok in zip(sentences, tokens):
        n_words = len(_WORD.findall(text, sent.start, sent.end))
        if n_tok <= budget and n_words <= settings.max_words:
            units.append((sent, n_words, n_tok))
            continue
        for piece in _split_long(text, sent, settings.max_words, budget, count):
            piece_text = text[piece.start : piece.end]
            units.append((piece, len(_WORD.findall(piece_text)), count([piece_text])[0]))

    page_starts = meta.get("page_starts")
    groups: list[list[Sentence]] = []
    cur: list[Sentence] = []
    words = toks = 0
    paragraph = 0  # words of the paragraph read so far
    prose = False  # `cur` holds a paragraph longer than a heading
    for sent, n_words, n_tok in units:
        full = words + n_words > settings.max_words or toks + n_tok > budget
        # A PDF passage stays on one page, so its page number holds for all of its text.
        new_page = page_starts and cur and (
            page_of(sent.start, page_starts) != page_of(cur[0].start, page_starts)
        )
        # A heading (a short paragraph of its own, no closing punctuation) opens a passage
        # after prose; short paragraphs in a row (a list, a page of `<p>x</p>`) stay together.
        heading = prose and cur[-1].paragraph_end and sent.paragraph_end and (
            is_heading_paragraph(text[sent.end - 1], n_words, settings.heading_words))
        if cur and (full or new_page or heading):
            groups.append(cur)
            cur, words, toks, prose = [], 0, 0, False
        cur.append(sent)
        words += n_words
        toks += n_tok
        paragraph += n_words
        if sent.paragraph_end:
            prose, paragraph = prose or paragraph > settings.heading_words, 0
        if sent.paragraph_end and words >= settings.min_words:
            groups.append(cur)
            cur, words, toks, prose = [], 0, 0, False
    if cur:
        groups.append(cur)
    return [_node(doc, title, group) for group in groups]


def page_of(offset: int, page_starts: Sequence[int] | None) -> int | None:
    """1-based page holding a character offset, for PDFs."""
    if not page_starts:
        return None
    page = 1
    for i, start in enumerate(page_starts, start=1):
        if start <= offset:
            page = i
    return page


def _node(doc: Document, embed_title: str, group: list[Sentence]) -> TextNode:
    meta = doc.metadata
    start, end = group[0].start, group[-1].end
    doc_id = meta["doc_id"]
    metadata = {
        "doc_id": doc_id,
        "title": meta.get("title", ""),
        "source": meta.get("source", doc_id),
        "start": start,
        "end": end,
        "page": page_of(start, meta.get("page_starts")),
        "embed_title": embed_title,
        "sentences": [[s.start - start, s.end - start] for s in group],
    }
    return passage_node(f"{doc_id}#{start}", doc.text[start:end], metadata)


def passage_node(passage_id: str, text: str, metadata: dict) -> TextNode:
    """A passage as a LlamaIndex node, its chunker metadata hidden from embedder and LLM."""
    hidden = ["doc_id", "start", "end", "page", "embed_title", "sentences"]
    node = TextNode(
        id_=passage_id,
        text=text,
        metadata=metadata,
        excluded_embed_metadata_keys=[*hidden, "title", "source"],
        excluded_llm_metadata_keys=hidden,
    )
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=metadata["doc_id"])
    return node
