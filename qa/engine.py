"""The one Python API every face calls: open an index over sources, search it, ask it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from qa.embed import Embedder
from qa.errors import BadQuestion, IndexDamaged, QAError
from qa.index import PassageIndex
from qa.load import discover
from qa.retrieve import HybridRetriever
from qa.schema import Answer, LoadError, Passage
from qa.settings import Settings
from qa.store import IndexStore
from qa.sync import SyncReport, apply_changes, indexed_files, needs_work

if TYPE_CHECKING:
    from qa.answer import Answerer

MAX_QUESTION_CHARS = 2000  # longer questions are cut; the embedder sees 256 word pieces anyway


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
        found = list(discover((s for s in sources if s.exists()), report.errors))
        if not rebuild and not needs_work(self.index, found, sources, prune):
            report.unchanged = len(found)
            return report
        with self.store.lock(self.settings.lock_timeout):
            try:
                previous = self._indexed_files() if rebuild else {}
                if rebuild:
                    found += indexed_files(previous, exclude={f.resolve() for f, _ in found})
                    self.index = PassageIndex(self.settings)
                elif self.store.current() != self._generation:
                    self._load()  # another writer committed while we waited
                apply_changes(
                    self.index, found, sources if prune else [], report, self.embedder,
                    show_progress, previous,
                )
                if report.changed:
                    self._commit()
            except BaseException:
                self._reload_after_failure()
                raise
        return report

    def _indexed_files(self) -> dict[str, dict]:
        """The `files` of the index on disk (origin -> entry); empty when unreadable."""
        try:
            generation = self.store.current()
            files = self.store.read_manifest(generation)["files"] if generation else {}
        except (QAError, KeyError, TypeError):
            return {}
        return files if isinstance(files, dict) else {}

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

    def _commit(self) -> None:
        with self.store.new_generation() as folder:
            self.index.check()  # nothing is swapped in unless it holds together
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
