"""What a document is called: the title its text gives (its first line; a Markdown page's
front matter or first heading), and what a sidecar file beside it says of it (`NAME.meta.json`:
its title, date and publisher)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from qa.schema import LoadError

META_SUFFIX = ".meta.json"  # NAME.meta.json beside a file describes it (`read_sidecar`)
DESCRIBED = ("title", "date", "publisher")  # what a sidecar may say of its file


def sidecar_of(file: Path) -> Path:
    """The file that describes `file`: `NAME.meta.json` beside it."""
    return file.with_name(file.name + META_SUFFIX)


def read_sidecar(file: Path, notices: list[LoadError]) -> dict[str, str]:
    """What `file`'s sidecar says of it: its `title`, `date` and `publisher`, those that are
    non-empty strings (other keys are ignored). A sidecar that cannot be read is a notice and
    is ignored; none at all is nothing."""
    path = sidecar_of(file)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not valid JSON"
        notices.append(LoadError(str(path), f"{why or exc}; its title, date and publisher "
                                 "are ignored"))
        return {}
    if not isinstance(data, dict):
        notices.append(LoadError(str(path), "not a JSON object; ignored"))
        return {}
    return {key: " ".join(value.split()) for key in DESCRIBED
            if isinstance(value := data.get(key), str) and value.strip()}


def first_line(text: str, limit: int) -> str:
    """The first line as a title, unless it is longer than `limit` characters."""
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            return line if len(line) <= limit else ""
    return ""


# Each pattern reads a line once (no lazy run before an optional tail), so a line of a million
# spaces costs what its length does.
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*$", re.M | re.S)
_FRONT_TITLE = re.compile(r"^title:([^\n]*)", re.M)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?(?:^ {0,3}\1[ \t]*$|\Z)", re.M | re.S)
_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+([^\n]+)", re.M)
_SETEXT = re.compile(r"^ {0,3}([^\s#>\-=*+|][^\n]*)\n {0,3}(=+|-+)[ \t]*$", re.M)


def markdown_title(text: str, limit: int) -> str:
    """A Markdown page's title: its front matter's `title:`, else its first top-level heading
    (`# T`, or T underlined with `===`), else its first heading of any level, else its first
    line; headings inside fenced code (a `# comment` in a shell block) are not headings."""
    front = _FRONT_MATTER.match(text)
    named = _FRONT_TITLE.search(front.group(1)) if front else None
    if named and (title := named.group(1).strip().strip("\"'").strip()):
        return title
    body = text[front.end():] if front else text
    unfenced = _FENCE.sub("", body.replace("\r\n", "\n"))
    headings = [(m.start(), len(m.group(1)), _closed(m.group(2))) for m in _ATX.finditer(unfenced)]
    headings += [(m.start(), 1 if m.group(2)[0] == "=" else 2, m.group(1))
                 for m in _SETEXT.finditer(unfenced)]
    for level in (1, 6):  # the first of level 1, else the first of any level
        found = sorted((at, heading) for at, depth, heading in headings if depth <= level)
        if found and (title := " ".join(found[0][1].split())):
            return title
    return first_line(body, limit)


def _closed(heading: str) -> str:
    """An ATX heading without its closing run of `#` (`## Title ##`)."""
    heading = heading.rstrip()
    bare = heading.rstrip("#")
    return bare if bare != heading and (not bare or bare[-1] in " \t") else heading
