"""HTML page -> its visible text, one block a paragraph, and its title; in one linear pass.

Not BeautifulSoup: building its tree and marking every block in it took minutes on a page of
tens of thousands of paragraphs. Not `html.parser` either: before Python 3.13.4 it rescans the
rest of the page for every unclosed tag (30 KB of `<a ` took 25 s). This tokenizer never looks
back: every construct ends at its closing mark or at the end of the page, as in a browser.
"""

from __future__ import annotations

import re
from collections import Counter
from html import unescape

BLOCK_TAGS = frozenset({
    "p", "div", "br", "li", "ul", "ol", "tr", "td", "th", "table", "section", "article",
    "header", "footer", "nav", "aside", "main", "blockquote", "pre", "h1", "h2", "h3", "h4",
    "h5", "h6", "dt", "dd", "figcaption", "hr",
})  # fmt: skip
HIDDEN_TAGS = frozenset({"script", "style", "noscript", "template", "head", "svg", "iframe"})
RAW_TEXT_TAGS = ("script", "style")  # their content is not markup: it runs to the closing tag
VOID_TAGS = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "menuitem",
    "meta", "param", "source", "track", "wbr", "basefont", "bgsound", "command", "frame",
    "image", "isindex", "nextid", "spacer",
})  # fmt: skip
HEAD_TAGS = frozenset({"title", "meta", "link", "style", "script", "noscript", "base", "template"})

# Every alternative ends at its closing mark or at the end of the page and none can fail after
# its first two characters, so no stretch of the page is read twice.
_MARKUP = re.compile(
    r"""<!--.*?(?:--!?>|\Z)                             # comment
      | <[!?][^>]*>?                                    # doctype, CDATA, processing instruction
      | </([a-zA-Z][^\s/>]*)?[^>]*>?                    # end tag (</ x> is a bogus comment)
      | <([a-zA-Z][^\s/>]*)((?:[^>=]|=\s*(?:"[^"]*"?|'[^']*'?)?)*)>?  # start tag, attributes
    """,
    re.DOTALL | re.VERBOSE,
)
_RAW_TEXT_END = {tag: re.compile(rf"</{tag}[\s/>]|\Z", re.IGNORECASE) for tag in RAW_TEXT_TAGS}


def html_to_text(html: str) -> tuple[str, str]:
    """(visible text, text of the first <title> or ''). Scripts, styles and other non-content
    are dropped; each block element starts a paragraph; whitespace inside a block is one space,
    as a browser shows it; entities are decoded."""
    page = _Page()
    html = html.replace("\x00", " ")
    pos = 0
    while match := _MARKUP.search(html, pos):
        if match.start() > pos:
            page.text(unescape(html[pos : match.start()]))
        pos = match.end()
        end_tag, start_tag, _attrs = match.groups()
        if end_tag:
            page.end(end_tag.lower())
        elif start_tag:
            tag = start_tag.lower()
            closed = match.group().endswith("/>")
            page.start(tag, closed)
            if tag in RAW_TEXT_TAGS and not closed:  # hidden: skip to its end tag
                pos = _RAW_TEXT_END[tag].search(html, pos).start()
    if pos < len(html):
        page.text(unescape(html[pos:]))
    return page.finish()


class _Page:
    """The open elements and the text gathered so far; a stack, as a browser keeps one."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self._block: list[str] = []  # text pieces of the paragraph being read
        self._open: list[str] = []
        self._count: Counter[str] = Counter()  # open elements by name: a stray end tag is O(1)
        self._hidden = 0  # open elements whose content is not shown
        self._title: list[str] | None = None
        self._title_depth = 0  # stack depth of the first <title> while it is open

    def text(self, data: str) -> None:
        if self._title_depth:
            self._title.append(data)
        if not self._hidden:
            self._block.append(data)

    def start(self, tag: str, closed: bool) -> None:
        if self._count["head"] == self._hidden > 0 and tag not in HEAD_TAGS:
            self.end("head")  # <body> or any content ends an unclosed <head>, as in a browser
        if tag in BLOCK_TAGS and not self._hidden:
            self._break()
        if closed or tag in VOID_TAGS:
            return
        self._open.append(tag)
        self._count[tag] += 1
        self._hidden += tag in HIDDEN_TAGS
        if tag == "title" and self._title is None:
            self._title, self._title_depth = [], len(self._open)

    def end(self, tag: str) -> None:
        """Close `tag` and every element opened inside it; an end tag with nothing open of
        that name is ignored."""
        if not self._count[tag]:
            return
        while True:
            name = self._open.pop()
            self._count[name] -= 1
            self._hidden -= name in HIDDEN_TAGS
            if len(self._open) < self._title_depth:
                self._title_depth = 0
            if name in BLOCK_TAGS and not self._hidden:
                self._break()
            if name == tag:
                return

    def finish(self) -> tuple[str, str]:
        self._break()
        title = " ".join("".join(self._title).split()) if self._title else ""
        return "\n\n".join(self.blocks), title

    def _break(self) -> None:
        block = " ".join("".join(self._block).split())
        if block:
            self.blocks.append(block)
        self._block = []
