"""Which files changed since they were indexed, and bringing the index in line with them.

Unchanged files (same size and mtime, or same content hash) are not read again and nothing of
them is re-embedded; a changed file's documents are re-embedded alone; a rejected file changes
nothing in the index.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from qa.ingest.ids import DocIds, rename
from qa.ingest.load import content_hash, load_file
from qa.ingest.records import FileRecord
from qa.models.embed import Embedder
from qa.progress import progress_bar
from qa.schema import LoadError
from qa.storage.index import PassageIndex

EMBED_BATCH = 2000  # documents read before they are embedded and stored

if TYPE_CHECKING:  # LlamaIndex is imported where a Document is made, not by a question
    from llama_index.core.schema import Document


@dataclass
class SyncReport:
    """What an index update did."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    read: int = 0  # files read that gave at least one document (indexed, or a copy of one)
    passages_embedded: int = 0
    rebuilt: bool = False
    errors: list[LoadError] = field(default_factory=list)
    notices: list[LoadError] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.rebuilt)

    def to_dict(self) -> dict:
        """What `qa index --json` prints."""
        return {
            "added": self.added, "updated": self.updated, "removed": self.removed,
            "unchanged": self.unchanged, "read": self.read,
            "passages_embedded": self.passages_embedded, "rebuilt": self.rebuilt,
            "errors": [str(e) for e in self.errors], "notices": [str(n) for n in self.notices],
        }


def indexed_files(files: dict[str, FileRecord], exclude: set[Path]) -> list[tuple[Path, Path]]:
    """(file, root) of every file of a manifest's `files` that still exists, so that a
    rebuild keeps all of them, not only the sources given."""
    pairs = []
    for origin, record in files.items():
        file = Path(origin)
        root = Path(record.root or file.parent)
        if file in exclude or not file.is_file():
            continue
        pairs.append((file, root if file.is_relative_to(root) else file.parent))
    return pairs


def needs_work(
    index: PassageIndex, found: list[tuple[Path, Path]], sources: list[Path], prune: bool
) -> bool:
    """Whether any file is new, changed or gone, without reading any file."""
    seen = set()
    for file, _ in found:
        origin = str(file.resolve())
        seen.add(origin)
        entry = index.files.get(origin)
        if not (_same_stat(entry, file) and twins_intact(index, entry)):
            return True
    return prune and any(pruned(index, sources, seen))


def twins_intact(index: PassageIndex, record: FileRecord) -> bool:
    """The documents a file was found to copy are still indexed with that same text."""
    documents = index.documents
    return all(d in documents and documents[d].text_hash == h for d, h in record.twins.items())


def pruned(index: PassageIndex, sources: list[Path], seen: set[str]) -> list[str]:
    """Indexed files that were under a source folder and are gone."""
    folders = [str(s.resolve()) + os.sep for s in sources if s.is_dir()]
    if not folders:
        return []
    return [
        origin
        for origin in index.files
        if origin not in seen and any(origin.startswith(f) for f in folders)
    ]


def apply_changes(
    index: PassageIndex,
    found: list[tuple[Path, Path]],
    sources: list[Path],
    report: SyncReport,
    embedder: Embedder,
    show_progress: bool,
    previous: dict[str, FileRecord] | None = None,
    prune: bool = True,
) -> None:
    """Bring `index` in line with the files found under `sources`: prune the gone (`prune`),
    load the changed, and embed only the documents whose content changed. `previous`: the
    `files` of the index a rebuild replaces, so that each file keeps its doc_ids."""
    seen = {str(file.resolve()) for file, _ in found}
    folders = {s.resolve() for s in sources if s.is_dir()}
    for origin in pruned(index, sources if prune else [], seen):
        report.removed += index.remove_documents(index.files.pop(origin).doc_ids)
    held = {o: r.doc_ids for o, r in (previous or {}).items() if o in seen}
    ids = DocIds(index.documents, held)
    changed = _changed_files(index, found, report, show_progress)
    # a file being re-read cannot be the original that another file copies
    replaced = {d for *_, record in changed for d in (record.doc_ids if record else [])}
    owners = Owners(index, replaced)
    to_embed: list[Document] = []
    for file, root, data_hash, record in changed:
        loaded = load_file(file, root, index.settings.load)
        report.errors += loaded.errors
        report.notices += loaded.notices
        if not loaded.documents:  # a rejected file changes nothing in the index
            continue
        report.read += 1
        origin = str(file.resolve())
        kept, twins = [], {}
        for doc in loaded.documents:
            doc = rename(doc, ids.choose(doc, file, root, origin, set(kept)))
            old = index.documents.get(doc.doc_id)
            text_hash = doc.metadata["text_hash"]
            twin = owners.get(text_hash) if file.suffix.lower() != ".jsonl" else None
            if twin and twin != doc.doc_id:
                report.notices.append(
                    LoadError(str(file), f'same text as "{twin}"; not indexed twice')
                )
                twins[twin] = text_hash
                continue
            kept.append(doc.doc_id)
            ids.claim(doc.doc_id, origin)
            if file.suffix.lower() != ".jsonl":
                owners[text_hash] = doc.doc_id
            if old and old.hash == doc.metadata["hash"]:
                continue
            (report.updated if old else report.added).append(doc.doc_id)
            to_embed.append(doc)
        # (an id another file took in this update is that file's now)
        gone = [d for d in (record.doc_ids if record else [])
                if d not in kept and ids.claimed_by(d) in (None, origin)]
        if loaded.errors:  # a rejected line may have held one of them: keep those
            kept += [d for d in gone if d in index.documents]
            gone = []
        report.removed += index.remove_documents(gone)
        # in_folder: found in a folder given as a source (kept in sync as a whole), now or
        # when it was first indexed; else a file given by name
        was = record or (previous or {}).get(origin)
        in_folder = root.resolve() in folders or (was is not None and was.in_folder is True)
        size, mtime_ns = _stat(file)
        index.files[origin] = FileRecord(size, mtime_ns, data_hash, kept, str(root.resolve()),
                                         in_folder, twins)
        if len(to_embed) >= EMBED_BATCH:  # memory holds a batch, not a whole corpus
            report.passages_embedded += index.add_documents(to_embed, embedder, show_progress)
            to_embed = []
    if to_embed:
        report.passages_embedded += index.add_documents(to_embed, embedder, show_progress)


def remove_documents(index: PassageIndex, doc_ids: Sequence[str]) -> list[str]:
    """Remove documents by doc_id, and from the records of the files that held them; the
    ones that were indexed."""
    origins = {d: r.origin for d in doc_ids if (r := index.documents.get(d))}
    removed = index.remove_documents(doc_ids)
    gone = set(removed)
    held = {origins[d] for d in removed}
    if not all(origin in index.files for origin in held):  # look through all files
        held = set(index.files)
    for origin in held:
        record = index.files[origin]
        if gone.intersection(record.doc_ids):
            record.doc_ids = [d for d in record.doc_ids if d not in gone]
            if record.doc_ids:
                index.files[origin] = record
            else:
                del index.files[origin]
    return removed


class Owners:
    """text hash -> the indexed document with that text, which a file with the same text
    copies. Records of a JSONL corpus are its own to name: they are never taken for copies;
    nor are the documents of a file being re-read."""

    def __init__(self, index: PassageIndex, replaced: set[str]) -> None:
        self._index = index
        self._replaced = replaced
        self._set: dict[str, str] = {}

    def get(self, text_hash: str) -> str | None:
        if text_hash in self._set:
            return self._set[text_hash]
        documents = self._index.documents
        found = [d for d in documents.with_text(text_hash) if d not in self._replaced
                 and not documents[d].origin.endswith(".jsonl")]
        return found[-1] if found else None

    def __setitem__(self, text_hash: str, doc_id: str) -> None:
        self._set[text_hash] = doc_id


def _changed_files(
    index: PassageIndex, found: list[tuple[Path, Path]], report: SyncReport, show_progress: bool
) -> list[tuple[Path, Path, str, FileRecord | None]]:
    """The files whose content differs from what is indexed: (file, root, content hash, the
    file's entry in the index)."""
    changed = []
    for file, root in progress_bar(found, "reading" if show_progress else None, "file"):
        record = index.files.get(str(file.resolve()))
        if _same_stat(record, file) and twins_intact(index, record):
            report.unchanged += 1
            continue
        try:
            data_hash = content_hash(file.read_bytes())
        except OSError as exc:
            report.errors.append(LoadError(str(file), f"cannot be read ({exc})"))
            continue
        if record and record.sha == data_hash and twins_intact(index, record):
            record.size, record.mtime_ns = _stat(file)
            report.unchanged += 1
            continue
        changed.append((file, root, data_hash, record))
    return changed


def _stat(file: Path) -> tuple[int, int]:
    st = file.stat()
    return st.st_size, st.st_mtime_ns


def _same_stat(record: FileRecord | None, file: Path) -> bool:
    if record is None:
        return False
    try:
        return _stat(file) == (record.size, record.mtime_ns)
    except OSError:
        return False
