"""The one Python API every face calls: open an index over sources, search it, ask it."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from llama_index.core.schema import Document

from qa.embed import Embedder
from qa.errors import BadQuestion, IndexDamaged, QAError
from qa.index import PassageIndex
from qa.load import LoadResult, content_hash, discover, load_file
from qa.retrieve import HybridRetriever
from qa.schema import Answer, LoadError, Passage
from qa.settings import Settings
from qa.store import IndexStore

if TYPE_CHECKING:
    from qa.answer import Answerer

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
        self._answerer: Answerer | None = None
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
        if not rebuild:  # a rebuild must work even when the index on disk is damaged
            engine._load()
        if rebuild or engine.stale:
            engine.last_report = engine.sync(sources or [], show_progress, rebuild=True)
        elif sources:
            engine.last_report = engine.sync(sources, show_progress)
        return engine

    @property
    def stale(self) -> bool:
        """The index on disk was built with other chunking, embedder or format: rebuild it."""
        return self._generation is not None and (
            self._manifest_fingerprint != self.settings.index_fingerprint()
        )

    def _load(self) -> None:
        for attempt in range(3):
            generation = self.store.current()
            try:
                return self._load_generation(generation)
            except IndexDamaged:
                # a writer may have swapped generations and removed this one mid-read
                if attempt == 2 or self.store.current() == generation:
                    raise

    def _load_generation(self, generation: Path | None) -> None:
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
        rebuild = rebuild or self.stale
        report = SyncReport(rebuilt=rebuild)
        missing = [s for s in sources if not s.exists()]
        report.errors += [LoadError(str(s), "no such file or folder") for s in missing]
        found = list(discover(s for s in sources if s.exists()))
        if not rebuild and not self._needs_work(found, sources, prune):
            report.unchanged = len(found)
            return report
        with self.store.lock(self.settings.lock_timeout):
            try:
                if rebuild:
                    found += self._indexed_files(exclude={f.resolve() for f, _ in found})
                    self.index = PassageIndex(self.settings)
                elif self.store.current() != self._generation:
                    self._load()  # another writer committed while we waited
                self._apply(found, sources if prune else [], report, show_progress)
                if report.changed:
                    self._commit()
            except BaseException:
                self._reload_after_failure()
                raise
        return report

    def _indexed_files(self, exclude: set[Path]) -> list[tuple[Path, Path]]:
        """(file, root) of every file the index on disk lists that still exists, so that a
        rebuild keeps all of them, not only the sources given. Empty when unreadable."""
        try:
            generation = self.store.current()
            files = self.store.read_manifest(generation)["files"] if generation else {}
        except (QAError, KeyError, TypeError):
            return []
        pairs = []
        for origin, entry in files.items():
            file = Path(origin)
            root = Path(entry.get("root") or file.parent)
            if file in exclude or not file.is_file():
                continue
            pairs.append((file, root if file.is_relative_to(root) else file.parent))
        return pairs

    def _reload_after_failure(self) -> None:
        """After a failed update, the engine holds the index on disk again, not a half-changed
        copy of it."""
        try:
            self._load()
        except QAError:
            self.index = PassageIndex(self.settings)
            self._generation = None
            self._retriever = None

    def add(self, paths: Sequence[str | Path], show_progress: bool = False) -> SyncReport:
        """Index files or folders (incremental: unchanged content is skipped)."""
        self.last_report = self.sync(paths, show_progress, prune=False)
        return self.last_report

    def remove(self, doc_ids: Sequence[str]) -> list[str]:
        """Remove documents by doc_id; returns the ones that were indexed."""
        with self.store.lock(self.settings.lock_timeout):
            try:
                if self.store.current() != self._generation:
                    self._load()
                removed = self.index.remove_documents(doc_ids)
                for entry in self.index.files.values():
                    entry["doc_ids"] = [d for d in entry["doc_ids"] if d not in removed]
                self.index.files = {k: v for k, v in self.index.files.items() if v["doc_ids"]}
                if removed:
                    self._commit()
            except BaseException:
                self._reload_after_failure()
                raise
        return removed

    def _needs_work(self, found: list[tuple[Path, Path]], sources: list[Path], prune: bool) -> bool:
        seen = set()
        for file, _ in found:
            origin = str(file.resolve())
            seen.add(origin)
            entry = self.index.files.get(origin)
            if not (_same_stat(entry, file) and self._twins_intact(entry)):
                return True
        return prune and any(self._pruned(sources, seen))

    def _twins_intact(self, entry: dict) -> bool:
        """The documents a file was found to copy are still indexed with that same text."""
        documents = self.index.documents
        twins = entry.get("twins", {})
        return all(documents.get(d, {}).get("text_hash") == h for d, h in twins.items())

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
        seen = {str(file.resolve()) for file, _ in found}
        for origin in self._pruned(prune_sources, seen):
            report.removed += index.remove_documents(index.files.pop(origin)["doc_ids"])
        changed = self._read_changed(found, report, show_progress)
        # a file being re-read cannot be the original that another file copies
        replaced = {d for *_, entry, _ in changed for d in (entry or {}).get("doc_ids", [])}
        # (records of a JSONL corpus are its own to name: they are never taken for copies)
        owners = {e.get("text_hash"): d for d, e in index.documents.items()
                  if d not in replaced and not e.get("origin", "").endswith(".jsonl")}
        to_embed: list[Document] = []
        for file, root, data_hash, entry, loaded in changed:
            origin = str(file.resolve())
            kept, twins = [], {}
            for doc in loaded.documents:
                old = index.documents.get(doc.doc_id)
                if old and old.get("origin") not in ("", origin):
                    report.errors.append(
                        LoadError(str(file), f'doc_id "{doc.doc_id}" is already taken by '
                                  f'{old["origin"]}; skipped')
                    )
                    continue
                text_hash = doc.metadata["text_hash"]
                twin = owners.get(text_hash) if file.suffix.lower() != ".jsonl" else None
                if twin and twin != doc.doc_id:
                    report.notices.append(
                        LoadError(str(file), f'same text as "{twin}"; not indexed twice')
                    )
                    twins[twin] = text_hash
                    continue
                kept.append(doc.doc_id)
                if file.suffix.lower() != ".jsonl":
                    owners[text_hash] = doc.doc_id
                if old and old["hash"] == doc.metadata["hash"]:
                    continue
                (report.updated if old else report.added).append(doc.doc_id)
                to_embed.append(doc)
            gone = [d for d in (entry or {}).get("doc_ids", []) if d not in kept]
            if loaded.errors:  # a rejected line may have held one of them: keep those
                kept += [d for d in gone if d in index.documents]
                gone = []
            report.removed += index.remove_documents(gone)
            index.files[origin] = {**_stat(file), "sha": data_hash, "doc_ids": kept,
                                   "root": str(root.resolve())}
            if twins:
                index.files[origin]["twins"] = twins
        if to_embed:
            report.passages_embedded = index.add_documents(to_embed, self.embedder, show_progress)

    def _read_changed(
        self, found: list[tuple[Path, Path]], report: SyncReport, show_progress: bool
    ) -> list[tuple[Path, Path, str, dict | None, LoadResult]]:
        """Load the files that differ from what is indexed: (file, root, content hash, the
        file's entry in the index, what was loaded). A file that loads no document is left out, so
        a rejected file changes nothing in the index."""
        changed = []
        for file, root in _progress(found, show_progress, "reading"):
            entry = self.index.files.get(str(file.resolve()))
            if _same_stat(entry, file) and self._twins_intact(entry):
                report.unchanged += 1
                continue
            try:
                data_hash = content_hash(file.read_bytes())
            except OSError as exc:
                report.errors.append(LoadError(str(file), f"cannot be read ({exc})"))
                continue
            if entry and entry["sha"] == data_hash and self._twins_intact(entry):
                entry.update(_stat(file))
                report.unchanged += 1
                continue
            loaded = load_file(file, root)
            report.errors += loaded.errors
            report.notices += loaded.notices
            if loaded.documents:
                changed.append((file, root, data_hash, entry, loaded))
        return changed

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

    @property
    def answerer(self) -> Answerer:
        """Sentence scoring over the current index (sentence vectors outlive index updates)."""
        retriever = self.retriever
        if self._answerer is None or self._answerer.terms.lexical is not retriever.lexical:
            from qa.answer import Answerer

            vectors = self._answerer.vectors if self._answerer else None
            self._answerer = Answerer(
                self.index, self.embedder, retriever.lexical, self.settings.answer, vectors
            )
        return self._answerer

    def ask(self, question: str, history: Sequence[str | Answer] = ()) -> Answer:
        """The answer to a question, after the earlier questions (or Answers) of a chat:
        quoted sentences with citations, or a plain decline with the nearest passages."""
        from qa.chat import ask

        return ask(self, clean_question(question), history)

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



