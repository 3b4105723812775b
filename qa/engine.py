"""The one Python API every face calls: open an index over sources, search it, ask it."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llama_index.core.schema import Document

from qa.embed import Embedder
from qa.errors import BadQuestion
from qa.index import PassageIndex
from qa.load import LoadResult, content_hash, discover, load_file
from qa.retrieve import HybridRetriever
from qa.schema import LoadError, Passage
from qa.settings import Settings
from qa.store import IndexStore

MAX_QUESTION_CHARS = 2000  # longer questions are cut; the embedder sees 256 word pieces anyway


@dataclass
class SyncReport:
    """What an index update did."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    passages_embedded: int = 0
    rebuilt: bool = False
    errors: list[LoadError] = field(default_factory=list)
    notices: list[LoadError] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.rebuilt)


class Engine:
    def __init__(self, index_dir: str | Path, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.store = IndexStore(index_dir)
        self.embedder = Embedder(self.settings.embed)
        self.index = PassageIndex(self.settings)
        self._generation: Path | None = None
        self._retriever: HybridRetriever | None = None
        self.last_report = SyncReport()

    # ---- opening -----------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        sources: Sequence[str | Path] | None = ("seeds",),
        index_dir: str | Path = "index",
        settings: Settings | None = None,
        show_progress: bool = False,
        rebuild: bool = False,
    ) -> Engine:
        """Load `index_dir`; build it when missing, update it when a source changed, and
        rebuild it when the embedder or chunking settings changed (or `rebuild` is set)."""
        engine = cls(index_dir, settings)
        engine._load()
        stale = engine._generation is not None and (
            engine._manifest_fingerprint != engine.settings.index_fingerprint()
        )
        if rebuild or stale:
            engine.last_report = engine.sync(sources or [], show_progress, rebuild=True)
        elif sources:
            engine.last_report = engine.sync(sources, show_progress)
        return engine

    def _load(self) -> None:
        generation = self.store.current()
        self._generation = generation
        self._retriever = None
        self._manifest_fingerprint = None
        if generation is None:
            self.index = PassageIndex(self.settings)
            return
        manifest = self.store.read_manifest(generation)
        self._manifest_fingerprint = manifest.get("fingerprint")
        if self._manifest_fingerprint != self.settings.index_fingerprint():
            self.index = PassageIndex(self.settings)  # to be rebuilt by the caller
            return
        self.index = PassageIndex.load(generation, manifest, self.settings)

    # ---- updating ----------------------------------------------------------------------
    def sync(
        self,
        sources: Iterable[str | Path],
        show_progress: bool = False,
        rebuild: bool = False,
        prune: bool = True,
    ) -> SyncReport:
        """Bring the index in line with the files under `sources`.

        Unchanged files (same size and mtime, or same content hash) are not read again and
        nothing of them is re-embedded; a changed file's documents are re-embedded alone; a
        file that disappeared from a source folder has its documents removed (`prune`).
        """
        sources = [Path(s) for s in sources]
        report = SyncReport(rebuilt=rebuild)
        missing = [s for s in sources if not s.exists()]
        report.errors += [LoadError(str(s), "no such file or folder") for s in missing]
        found = list(discover(s for s in sources if s.exists()))
        if not rebuild and not self._needs_work(found, sources, prune):
            report.unchanged = len(found)
            return report
        with self.store.lock(self.settings.lock_timeout):
            if rebuild:
                self.index = PassageIndex(self.settings)
            elif self.store.current() != self._generation:
                self._load()  # another writer committed while we waited
            self._apply(found, sources if prune else [], report, show_progress)
            if report.changed:
                self._commit()
        return report

    def add(self, paths: Sequence[str | Path], show_progress: bool = False) -> SyncReport:
        """Index files or folders (incremental: unchanged content is skipped)."""
        self.last_report = self.sync(paths, show_progress, prune=False)
        return self.last_report

    def remove(self, doc_ids: Sequence[str]) -> list[str]:
        """Remove documents by doc_id; returns the ones that were indexed."""
        with self.store.lock(self.settings.lock_timeout):
            if self.store.current() != self._generation:
                self._load()
            removed = self.index.remove_documents(doc_ids)
            for entry in self.index.files.values():
                entry["doc_ids"] = [d for d in entry["doc_ids"] if d not in removed]
            self.index.files = {k: v for k, v in self.index.files.items() if v["doc_ids"]}
            if removed:
                self._commit()
        return removed

    def _needs_work(self, found: list[tuple[Path, Path]], sources: list[Path], prune: bool) -> bool:
        seen = set()
        for file, _ in found:
            origin = str(file.resolve())
            seen.add(origin)
            if not _same_stat(self.index.files.get(origin), file):
                return True
        return prune and any(self._pruned(sources, seen))

    def _pruned(self, sources: list[Path], seen: set[str]) -> list[str]:
        """Indexed files that were under a source folder and are gone."""
        folders = [str(s.resolve()) + os.sep for s in sources if s.is_dir()]
        return [
            origin
            for origin in self.index.files
            if origin not in seen and any(origin.startswith(f) for f in folders)
        ]

    def _apply(
        self,
        found: list[tuple[Path, Path]],
        prune_sources: list[Path],
        report: SyncReport,
        show_progress: bool,
    ) -> None:
        index = self.index
        to_embed: list[Document] = []
        seen: set[str] = set()
        owners = {h["hash"]: d for d, h in index.documents.items()}
        for file, root in _progress(found, show_progress, "reading"):
            origin = str(file.resolve())
            seen.add(origin)
            entry = index.files.get(origin)
            if _same_stat(entry, file):
                report.unchanged += 1
                continue
            try:
                data_hash = content_hash(file.read_bytes())
            except OSError as exc:
                report.errors.append(LoadError(str(file), f"cannot be read ({exc})"))
                continue
            if entry and entry["sha"] == data_hash:
                entry.update(_stat(file))
                report.unchanged += 1
                continue
            loaded: LoadResult = load_file(file, root)
            report.errors += loaded.errors
            report.notices += loaded.notices
            if not loaded.documents:
                continue  # a rejected file changes nothing in the index
            kept = []
            for doc in loaded.documents:
                old = index.documents.get(doc.doc_id)
                if old and old.get("origin") not in ("", origin):
                    report.errors.append(
                        LoadError(str(file), f'doc_id "{doc.doc_id}" is already taken by '
                                  f'{old["origin"]}; skipped')
                    )
                    continue
                twin = owners.get(doc.metadata["hash"])
                if twin and twin != doc.doc_id:
                    report.notices.append(
                        LoadError(str(file), f'same text as "{twin}"; not indexed twice')
                    )
                    continue
                kept.append(doc.doc_id)
                if old and old["hash"] == doc.metadata["hash"]:
                    continue
                (report.updated if old else report.added).append(doc.doc_id)
                owners[doc.metadata["hash"]] = doc.doc_id
                to_embed.append(doc)
            previous = entry["doc_ids"] if entry else []
            gone = [d for d in previous if d not in kept]
            report.removed += index.remove_documents(gone)
            index.files[origin] = {**_stat(file), "sha": data_hash, "doc_ids": kept}
        for origin in self._pruned(prune_sources, seen):
            report.removed += index.remove_documents(index.files.pop(origin)["doc_ids"])
        if to_embed:
            report.passages_embedded = index.add_documents(to_embed, self.embedder, show_progress)
        report.unchanged = max(0, report.unchanged)

    def _commit(self) -> None:
        with self.store.new_generation() as folder:
            self.index.save(folder)
        self._generation = self.store.current()
        self._manifest_fingerprint = self.settings.index_fingerprint()
        self._retriever = None

    # ---- reading -----------------------------------------------------------------------
    @property
    def retriever(self) -> HybridRetriever:
        if self._retriever is None:
            self._retriever = HybridRetriever(
                self.index, self.embedder, self.settings.retrieve
            )
        return self._retriever

    def retrieve(self, question: str, k: int = 5) -> list[Passage]:
        """The k passages that best answer the question, best first."""
        question = clean_question(question)
        return [
            self.passage(hit.passage_id, hit.score) for hit in self.retriever.search(question, k)
        ]

    def as_retriever(self, k: int = 5) -> HybridRetriever:
        """A `llama_index.core` `BaseRetriever` returning `NodeWithScore`s."""
        return HybridRetriever(self.index, self.embedder, self.settings.retrieve, k=k)

    def passage(self, passage_id: str, score: float = 0.0) -> Passage:
        node = self.index.node(passage_id)
        meta = node.metadata
        return Passage(
            id=passage_id,
            doc_id=meta["doc_id"],
            source=meta["source"],
            title=meta["title"],
            text=node.text,
            start=meta["start"],
            end=meta["end"],
            score=score,
            page=meta.get("page"),
        )

    def document_text(self, doc_id: str) -> str:
        return self.index.document_text(doc_id)

    def documents(self) -> list[dict]:
        """Indexed documents: doc_id, title, source, passage count."""
        docs = sorted(self.index.documents.items())
        return [
            {"doc_id": d, "title": e["title"], "source": e["source"],
             "passages": len(e["passages"])}
            for d, e in docs
        ]

    def sentences(self, passage: Passage) -> list[tuple[int, int]]:
        """The passage's sentences as document offsets (from the chunker)."""
        spans = self.index.node(passage.id).metadata["sentences"]
        return [(passage.start + s, passage.start + e) for s, e in spans]


def clean_question(question: str) -> str:
    if not isinstance(question, str) or not question.strip():
        raise BadQuestion("the question is empty; type a question")
    return " ".join(question.split())[:MAX_QUESTION_CHARS]


def _stat(file: Path) -> dict:
    st = file.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _same_stat(entry: dict | None, file: Path) -> bool:
    if not entry:
        return False
    try:
        return _stat(file) == {"size": entry["size"], "mtime_ns": entry["mtime_ns"]}
    except OSError:
        return False


def _progress(items: list, show: bool, desc: str) -> Iterable:
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="file")



