"""Time HTML -> text (`qa.ingest.load._html_to_text`) on pages of many shapes, small and about 1 MB.

One run prints, per shape, the page size, the median of 3 conversions in seconds, and the
length of the text it gave. Name shapes to time only those (`--list` shows them).

    python -m bench.html_to_text [SHAPE ...] [--runs 3]     (from the checkout root)

Reproduces: the speed of qa's HTML loader; none of its figures is recorded in eval/RESULTS.md or
README.md today. Takes: not recorded.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from qa.ingest.load import _html_to_text

MB = 2**20


def realistic(size: int = MB) -> str:
    """An article page as sites serve them: head, scripts, styles, navigation, paragraphs full
    of inline markup, attributes and entities, tables, lists, a footer."""
    head = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>The Orchard &amp; Cider Almanac</title>"
        "<link rel='stylesheet' href='/site.css'><style>body{margin:0}.a{color:red}</style>"
        "<script>window.dataLayer=[];function g(){dataLayer.push(arguments)}</script></head>"
        "<body><nav class='top'><ul>" + "".join(
            f"<li><a href='/s/{i}' class='nav-link' data-i='{i}'>Section {i}</a></li>"
            for i in range(30)
        ) + "</ul></nav><main><article>"
    )
    section = (
        "<h2 id='s{i}'>Part {i}: pressing &mdash; and fermenting</h2>"
        "<p class='lead' data-track='p{i}'>The <a href='/kb'>Kingston&nbsp;Black</a> apple "
        "gives a <em>bittersharp</em> juice; pick it <strong>fully ripe</strong>.\n"
        "The juice ferments for &#8203;six weeks at 12&#176;C in oak casks.</p>"
        "<figure><img src='/i/{i}.jpg' alt='cask {i}'><figcaption>Cask {i}</figcaption></figure>"
        "<table class='t'><tr><th>Apple</th><th>Sugar</th></tr>"
        "<tr><td>Dabinett</td><td>11.2%</td></tr><tr><td>Yarlington Mill</td><td>12.0%</td></tr>"
        "</table><ul><li>Wash the fruit.</li><li>Mill it coarse.</li><li>Press slowly.</li></ul>"
        "<div class='ad'><script>render_ad({i})</script><noscript>ads</noscript></div>"
    )
    tail = "</article></main><footer><p>&copy; 2026 The Almanac</p></footer></body></html>"
    parts, total, i = [head], len(head) + len(tail), 0
    while total < size:
        piece = section.format(i=i)
        parts.append(piece)
        total += len(piece)
        i += 1
    return "".join(parts) + tail


def _fill(unit: str, size: int = MB) -> str:
    return unit * (size // len(unit))


SHAPES: dict[str, Callable[[], str]] = {
    "20,000 <p>x</p>": lambda: "<p>x</p>" * 20_000,
    "40,000 <p>x</p>": lambda: "<p>x</p>" * 40_000,
    "100,000 nested <div>": lambda: "<div>" * 100_000 + "x" + "</div>" * 100_000,
    "1 MB realistic page": realistic,
    "1 MB tiny blocks <p>x</p>": lambda: _fill("<p>x</p>"),
    "1 MB deep nesting, never closed": lambda: _fill("<div>") + "x",
    "1 MB one text node": lambda: "<p>" + _fill("word &amp; ") + "</p>",
    "1 MB many attributes": lambda: "<p " + _fill("data-a='1' ") + ">x</p>",
    "1 MB tags with attributes": lambda: _fill("<span class='c' id='i' title='t'>w</span> "),
    "1 MB unclosed tags": lambda: _fill("<p><span><li>x "),
    "1 MB stray end tags": lambda: _fill("</p></div>x "),
    "1 MB '<' in text": lambda: "<p>" + _fill("a < b ") + "</p>",
    "1 MB unclosed comment": lambda: "<p>x</p><!--" + _fill("y "),
    "1 MB tags never ended": lambda: "<p>x</p>" + _fill("<a "),
    "1 MB unclosed script": lambda: "<p>x</p><script>" + _fill("y "),
    "1 MB skipped in skipped": lambda: _fill("<svg><noscript>") + "x",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shapes", nargs="*", help="shapes to time (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="conversions per shape")
    parser.add_argument("--list", action="store_true", help="list the shapes and stop")
    args = parser.parse_args()
    if args.list:
        print("\n".join(SHAPES))
        return
    for name in args.shapes or SHAPES:
        html = SHAPES[name]()
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            text, _title = _html_to_text(html)
            times.append(time.perf_counter() - start)
        print(f"{name:34s} {len(html) / MB:5.2f} MB  {statistics.median(times):7.2f} s"
              f"  ({len(text):,} chars of text)", flush=True)


if __name__ == "__main__":
    main()
