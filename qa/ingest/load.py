"""Files and folders -> LlamaIndex `Document`s with a stable doc_id, plain text, title and source.

One reader per format; a file that cannot be read becomes a `LoadError` naming it and why,
and the other files are still loaded. A document's title comes from its content (an HTML
`<title>`, a Markdown page's front matter or heading, a PDF's metadata, else its first line),
unless a `NAME.meta.json` beside the file names it (with its date and publisher): that title
is shown and read, while passages are still embedded with the content's (`content_title`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from qa.ingest.titles import first_line, markdown_title, read_sidecar
from qa.schema import LoadError
from qa.settings import SUPPORTED_SUFFIXES, LoadSettings
from qa.text.html_text import html_to_text

if TYPE_CHECKING:  # LlamaIndex is imported where a Document is made, not by a question
    from llama_index.core.schema import Document

HASHED = ("content_title", "date", "publisher")  # metadata besides the title that a hash covers


@dataclass
class LoadResult:
    documents: list[Document] = field(default_factory=list)
    errors: list[LoadError] = field(default_factory=list)  # skipped, with the reason
    notices: list[LoadError] = field(default_factory=list)  # loaded, with a caveat


def content_hash(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:32]


def discover(
    paths: Iterable[str | Path], errors: list[LoadError] | None = None
) -> Iterator[tuple[Path, Path]]:
    """Yield (file, root) for every supported file under the given files and folders.

    `root` is the folder the file's doc_id is taken relative to: the folder given, or for a
    file given by name, its parent. Links are followed; a broken link, a link loop or a folder
    that cannot be listed is added to `errors`, and a file reached twice is yielded once.
    """
    errors = [] if errors is None else errors
    yielded: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        found = _walk(path, path, (), errors) if path.is_dir() else [(path, path.parent)]
        for file, root in found:
            real = Path(os.path.realpath(file))
            if real not in yielded:
                yielded.add(real)
                yield file, root


def _walk(
    folder: Path, root: Path, parents: tuple[tuple[int, int], ...], errors: list[LoadError]
) -> Iterator[tuple[Path, Path]]:
    """Depth first, names in order (the order `sorted(rglob)` gave), hidden names left out.
    Written out rather than `rglob` so that links are followed, loops found, and every
    entry that cannot be read is named."""
    try:
        info = folder.stat()
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError as exc:
        errors.append(LoadError(str(folder), f"folder cannot be read ({exc.strerror or exc})"))
        return
    parents = (*parents, (info.st_dev, info.st_ino))
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            st = entry.stat()  # follows links
        except OSError as exc:
            errors.append(LoadError(str(path), _broken_link(path, exc)))
            continue
        if stat.S_ISDIR(st.st_mode):
            if (st.st_dev, st.st_ino) in parents:
                errors.append(LoadError(str(path), "a link back to a folder that holds it "
                                        f"({os.path.realpath(path)}); not followed"))
                continue
            yield from _walk(path, root, parents, errors)
        elif stat.S_ISREG(st.st_mode) and path.suffix.lower() in SUPPORTED_SUFFIXES:
            yield path, root


def _broken_link(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a link in a loop (it leads back to itself)"
    if path.is_symlink() and exc.errno == errno.ENOENT:
        return f"a broken link (its target {os.readlink(path)} does not exist)"
    return f"cannot be read ({exc.strerror or exc})"


def doc_id_for(file: Path, root: Path) -> str:
    return file.relative_to(root).as_posix()


def load_file(file: Path, root: Path, settings: LoadSettings | None = None) -> LoadResult:
    """Read one file into documents (one, or one per JSONL line)."""
    settings = settings or LoadSettings()
    max_bytes, limit = settings.max_file_bytes, settings.max_title_chars
    result = LoadResult()
    name = str(file)
    suffix = file.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        allowed = ", ".join(SUPPORTED_SUFFIXES)
        result.errors.append(LoadError(name, f"unsupported file type '{suffix}' ({allowed})"))
        return result
    try:
        size = file.stat().st_size
        if suffix != ".jsonl" and size > max_bytes:
            mb = size / 2**20
            result.errors.append(
                LoadError(name, f"too large ({mb:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB)")
            )
            return result
        data = file.read_bytes()
    except FileNotFoundError:
        result.errors.append(LoadError(name, "no such file"))
        return result
    except OSError as exc:
        result.errors.append(LoadError(name, f"cannot be read ({exc.strerror or exc})"))
        return result
    doc_id = doc_id_for(file, root)
    try:
        if suffix == ".jsonl":
            return _read_jsonl(data, file, max_bytes)
        if suffix == ".pdf":
            text, title, meta = _read_pdf(data, limit)
        else:
            text, notice = _decode_text(data)
            if notice:
                result.notices.append(LoadError(name, notice))
            if suffix in (".html", ".htm"):
                text, title = _html_to_text(text, limit)
            elif suffix in (".md", ".markdown"):
                title = markdown_title(text, limit)
            else:
                title = first_line(text, limit)
            meta = {}
    except UnreadableError as exc:
        result.errors.append(LoadError(name, str(exc)))
        return result
    if not text.strip():
        reason = "no visible text in it (only markup, scripts or styles)" if data.strip() and (
            suffix in (".html", ".htm")) else "no text in it (empty or whitespace only)"
        result.errors.append(LoadError(name, reason))
        return result
    title = title or file.name
    described = read_sidecar(file, result.notices)
    shown = described.pop("title", title)
    if shown != title:  # shown and read; the passages are embedded with the content's title
        described["content_title"] = title
    result.documents.append(
        make_document(doc_id, text, shown, source=doc_id, origin=file, **meta, **described)
    )
    return result


def make_document(
    doc_id: str, text: str, title: str, source: str, origin: Path | None, **meta: object
) -> Document:
    from llama_index.core.schema import Document

    metadata = {"doc_id": doc_id, "title": title, "source": source, **meta}
    metadata["origin"] = str(origin.resolve()) if origin else ""
    about = "".join(f"\x00{key}={meta[key]}" for key in HASHED if meta.get(key))
    # what was indexed (a change re-embeds): the title, the text and what `HASHED` names
    metadata["hash"] = content_hash(title + "\x00" + text + about)
    metadata["text_hash"] = content_hash(text)  # the same text under another name is a copy
    return Document(id_=doc_id, text=text, metadata=metadata)


class UnreadableError(Exception):
    """A file's content cannot be turned into text; the message is shown to the user."""


def _decode_text(data: bytes) -> tuple[str, str | None]:
    head = data[:8192]
    utf16 = _utf16(head)
    if utf16:
        try:
            text = data.decode(utf16)
        except UnicodeDecodeError:
            raise UnreadableError("binary content, not text") from None
        if _controls(text) > 0.05 * max(1, min(len(text), 8192)):
            raise UnreadableError("binary content, not text")
        return text.removeprefix("\ufeff"), None
    if b"\x00" in head:
        raise UnreadableError("binary content, not text")
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    text = data.decode("cp1252", errors="replace")
    controls = _controls(text)
    if controls > 0.05 * max(1, min(len(text), 8192)) or text.count("\ufffd") > 0.05 * len(text):
        raise UnreadableError("binary content, not text")
    return text, "not UTF-8; read as Latin-1 (Windows-1252)"


def _controls(text: str) -> int:
    """Control characters other than whitespace in the first 8192 characters."""
    return sum(1 for ch in text[:8192] if ord(ch) < 32 and ch not in "\t\n\r\f")


def _utf16(head: bytes) -> str | None:
    """The codec of UTF-16 text: by its byte order mark, or, without one, by zero bytes in
    every other place (the high byte of Latin characters) and none in the others."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if len(head) < 16 or len(head) % 2:  # too little to tell from a binary file
        return None
    even, odd = head[0::2], head[1::2]
    for zeros, others, codec in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        if zeros.count(0) >= 0.5 * len(zeros) and others.count(0) == 0:
            return codec
    return None


def _html_to_text(html: str, limit: int = LoadSettings.max_title_chars) -> tuple[str, str]:
    """Visible text of a page: scripts, styles and other non-content dropped; one block a
    paragraph. Line breaks inside a block are spaces, as a browser shows them."""
    text, title = html_to_text(html)
    return text, title or first_line(text, limit)


_PLACEHOLDER_TITLES = {"untitled", "(anonymous)", "unknown"}  # set by PDF writers, not authors


def _read_pdf(data: bytes, limit: int) -> tuple[str, str, dict]:
    """Text of every page, pages separated by a blank line; `page_starts` maps offsets to pages."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        with _quiet_logger("pypdf"):  # its warnings on odd files; we report one line per file
            reader = PdfReader(io.BytesIO(data))
            texts, starts, title = _pdf_pages(reader)
    except UnreadableError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, AttributeError) as exc:
        raise UnreadableError(f"not a readable PDF ({exc.__class__.__name__}: {exc})") from exc
    except Exception as exc:  # pypdf raises many types on malformed input; none may escape
        raise UnreadableError(f"not a readable PDF ({exc.__class__.__name__})") from exc
    text = "\n\n".join(texts)
    if not text.strip():
        raise UnreadableError("PDF has no extractable text (scanned images?)")
    return text, title or first_line(text, limit), {"page_starts": starts}


def _pdf_pages(reader) -> tuple[list[str], list[int], str]:
    """Each page's text, the offset where each page starts in the joined text, the title."""
    if reader.is_encrypted and not reader.decrypt(""):
        raise UnreadableError("encrypted PDF; it needs a password")
    texts, starts, offset = [], [], 0
    for page in reader.pages:
        page_text = (page.extract_text() or "").strip()
        starts.append(offset)
        texts.append(page_text)
        offset += len(page_text) + 2
    title = str((reader.metadata or {}).get("/Title") or "").strip()
    return texts, starts, "" if title.lower() in _PLACEHOLDER_TITLES else title


@contextmanager
def _quiet_logger(name: str):
    """Raise a library logger's level to ERROR for the duration."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _read_jsonl(data: bytes, file: Path, max_bytes: int) -> LoadResult:
    """One document a line: {"_id" or "id", "title"?, "text"}; a bad line is reported alone."""
    result = LoadResult()
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        result.errors.append(LoadError(str(file), "JSONL file is not UTF-8"))
        return result
    seen: set[str] = set()
    for lineno, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{file} line {lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            result.errors.append(LoadError(where, f"not valid JSON ({exc.msg})"))
            continue
        if not isinstance(record, dict):
            result.errors.append(LoadError(where, "not a JSON object"))
            continue
        doc_id = str(record.get("_id", record.get("id", "")) or "").strip()
        text = record.get("text")
        if not doc_id:
            result.errors.append(LoadError(where, 'no "_id" or "id"'))
            continue
        if not isinstance(text, str) or not text.strip():
            result.errors.append(LoadError(where, f'document "{doc_id}" has no "text"'))
            continue
        if len(text) > max_bytes:  # one document, held to the limit of a single file
            mb = max_bytes / 2**20
            result.errors.append(LoadError(where, f'document "{doc_id}" is too large '
                                           f"({len(text) / 2**20:.1f} M characters; the limit "
                                           f"is {mb:.0f} M)"))
            continue
        if doc_id in seen:
            result.errors.append(LoadError(where, f'duplicate id "{doc_id}"; first one kept'))
            continue
        seen.add(doc_id)
        title = str(record.get("title") or "").strip()
        result.documents.append(
            make_document(doc_id, text, title, source=title or doc_id, origin=file)
        )
    if not result.documents and not result.errors:
        result.errors.append(LoadError(str(file), "no documents in it"))
    return result
