"""The app's one door to the engine: asking, reading documents, adding and removing files.

Gradio runs handlers on worker threads and several browser sessions share one engine. Questions
and reads go straight to it: each is answered from the index generation live when it starts,
while an upload or a removal builds the next one. Writes wait for each other, one at a time.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.engine import Engine
from qa.errors import QAError
from qa.ingest.records import DocumentRecord
from qa.schema import Answer, one_line
from qa.ui import uploads

TEXTS_KEPT = 32  # document texts kept in memory for the sources panel
log = logging.getLogger("qa.ui")
Progress = Callable[[float, str], None]  # (fraction done, what is happening)


@dataclass
class FileResult:
    name: str
    ok: bool
    message: str


class Library:
    def __init__(self, engine: Engine, data_dir: str | Path, max_upload_mb: float) -> None:
        self.engine = engine
        self.uploads = uploads.uploads_dir(data_dir).resolve()
        self.max_bytes = int(max_upload_mb * 2**20)
        self._writing = threading.Lock()  # one upload or removal at a time
        # recently shown documents, of the engine snapshot they were read from (a write, this
        # process's or another's, makes a new snapshot and so empties them)
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._texts_of: object = None
        self._texts_lock = threading.Lock()

    # ---- reading -----------------------------------------------------------------------
    def ask(self, question: str, history: Sequence[str | Answer] = (), where: Any = None
            ) -> Answer:
        """`history`: the conversation's earlier questions, or its earlier Answers; `where`:
        only from some documents (qa/answering/scope.py)."""
        return self.engine.ask(question, history=list(history), where=where)

    def doc_text(self, doc_id: str) -> str:
        snapshot = self.engine.snapshot()
        with self._texts_lock:
            if snapshot is not self._texts_of:
                self._texts.clear()
                self._texts_of = snapshot
            if doc_id in self._texts:
                self._texts.move_to_end(doc_id)
                return self._texts[doc_id]
        text = snapshot.index.document_text(doc_id)
        with self._texts_lock:
            if snapshot is self._texts_of:  # no newer snapshot's texts kept meanwhile
                self._texts[doc_id] = text
                if len(self._texts) > TEXTS_KEPT:
                    self._texts.popitem(last=False)
        return text

    def documents(self) -> list[dict]:
        return self.engine.documents()

    def byline(self, doc_id: str) -> str:
        """Who published a document and when, as its sidecar says ("CNN, 2022-01-24"); ""
        when it says neither, or the document is no longer indexed."""
        record = self.engine.snapshot().index.documents.get(doc_id)
        return ", ".join(x for x in (record.publisher, record.date) if x) if record else ""

    # ---- changing ----------------------------------------------------------------------
    def add(self, files: Sequence[str | Path], progress: Progress) -> list[FileResult]:
        """Store and index uploaded files, one at a time; one result line per file (and per
        bad line of a JSONL file)."""
        stored, rejected = uploads.store(list(files), self.uploads, self.max_bytes)
        results = [FileResult(r.name, False, str(r)) for r in rejected]
        with self._writing:
            for i, item in enumerate(stored):
                progress(i / len(stored), f"Indexing {item.name} ({i + 1}/{len(stored)})")
                try:
                    results += self._index(item)
                except Exception as exc:  # one file's failure is its own line; the rest go on
                    item.undo()
                    if not isinstance(exc, QAError):
                        log.exception("indexing %s failed", item.name)
                    why = one_line(str(exc)) or exc.__class__.__name__
                    line = f"{item.name}: not indexed ({why})"
                    results.append(FileResult(item.name, False, line))
        progress(1.0, "Done")
        order = {Path(f).name: i for i, f in enumerate(files)}
        return sorted(results, key=lambda r: order.get(r.name, len(order)))

    def _index(self, item: uploads.Stored) -> list[FileResult]:
        report = self.engine.add([item.path])
        where = str(item.path)
        own = [e for e in report.errors + report.notices if _belongs(e.path, where)]
        fatal = [e for e in report.errors if e.path == where]
        changed = report.added + report.updated
        if fatal or not (changed or report.unchanged):
            item.undo()
            reasons = [_where(e.path, where) + e.reason for e in fatal or own][:3]
            reason = "; ".join(reasons) or "nothing in it could be indexed"
            return [FileResult(item.name, False, f"{item.name}: {reason}")]
        item.keep()
        lines = [FileResult(item.name, True, f"{item.name}: {_summary(report, item.path)}")]
        for e in own:
            message = f"{item.name}: {_where(e.path, where)}{e.reason}"
            lines.append(FileResult(item.name, e not in report.errors, message))
        return lines

    def removable(self) -> list[str]:
        """The documents the page may remove: those uploaded through it."""
        documents = self.engine.index.documents
        return sorted(d for d in documents if _elsewhere(documents[d], self.uploads) is None)

    def remove(self, doc_ids: Sequence[str]) -> list[FileResult]:
        """Remove uploaded documents and their files. A document from any other folder (a
        --source folder, seeds/, `qa index`) is refused: it belongs to whoever keeps it there."""
        with self._writing:
            indexed = self.engine.index.documents
            refused = {d: f for d in doc_ids
                       if d in indexed and (f := _elsewhere(indexed[d], self.uploads))}
            origins = {d: indexed[d].origin for d in doc_ids if d in indexed}
            removed = self.engine.remove([d for d in doc_ids if d not in refused])
            for doc_id in removed:  # the file goes once no document of it is left
                if origins[doc_id] not in self.engine.index.files:
                    uploads.discard(self.uploads, origins[doc_id])
        results = []
        for d in dict.fromkeys(doc_ids):
            if d in removed:
                results.append(FileResult(d, True, f"{d}: removed from the index"))
            elif d in refused:
                why = f"{d}: comes from {refused[d]}; remove it there, not from the page"
                results.append(FileResult(d, False, why))
            else:
                results.append(FileResult(d, False, f"{d}: not in the index"))
        return results


def _elsewhere(document: DocumentRecord, uploads_folder: Path) -> str | None:
    """The folder an indexed document comes from when that is not the uploads folder."""
    origin = document.origin
    if origin and Path(origin).is_relative_to(uploads_folder):
        return None
    return str(Path(origin).parent) if origin else "a folder outside the app's uploads"


def _belongs(path: str, file: str) -> bool:
    """A load message about `file` itself or one of its lines."""
    return path == file or path.startswith(file + " line ")


def _where(path: str, file: str) -> str:
    """'line 3: ' for a message about one line of `file`, else ''."""
    return f"{path[len(file) :].strip()}: " if path != file else ""


def _summary(report, file: Path) -> str:
    changed = report.added + report.updated
    if len(changed) == 1 and file.suffix.lower() != ".jsonl":  # its one document, by its id
        verb = "indexed" if report.added else "updated"
        return f"{verb} as {changed[0]}"
    if not (report.added or report.updated):
        return "already indexed, unchanged"
    parts = []
    if report.added:
        parts.append(f"{len(report.added)} document(s) added")
    if report.updated:
        parts.append(f"{len(report.updated)} updated")
    return ", ".join(parts)
