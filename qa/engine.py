"""The one Python API every face calls: open an index over sources, search it, ask it.

Questions and writes run at the same time. What a question reads is one `Snapshot`: an index
generation with its retriever and answerer, never changed once made. A write (one at a time)
builds the next generation on its own copy, commits it, and only then points the engine at a
new snapshot; a question that already took the old one reads it to its end.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle

from qa.embed import Embedder, SentenceVectors
from qa.errors import BadQuestion, IndexDamaged, IndexLocked
from qa.home import default_index, seeds_dir
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


class Snapshot:
    """One index generation as questions read it: the index, its retriever and answerer (built
    on first use). Nothing changes it once made. The sentence-vector cache is the engine's,
    shared by every snapshot."""

    def __init__(
        self,
        index: PassageIndex,
        embedder: Embedder,
        settings: Settings,
        vectors: SentenceVectors,
        generation: Path | None = None,
        fingerprint: str | None = None,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self.vectors = vectors
        self.generation = generation  # the folder it was read from or written to
        self.fingerprint = fingerprint  # the settings it was built with

    @cached_property
    def retriever(self) -> HybridRetriever:
        return HybridRetriever(self.index, self.embedder, self.settings.retrieve)

    @cached_property
    def answerer(self) -> Answerer:
        from qa.answer import Answerer

        return Answerer(self.index, self.embedder, self.retriever.lexical, self.settings.answer,
                        self.vectors)

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


class Engine:
    def __init__(self, index_dir: str | Path, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.store = IndexStore(index_dir)
        self.embedder = Embedder(self.settings.embed)
        self._vectors = SentenceVectors(self.embedder, self.settings.answer.sentence_cache)
        self._snapshot = self._snapshot_of(PassageIndex(self.settings))
        self._writer = threading.Lock()  # writers of this process; other processes: the file lock
        self.last_report = SyncReport()

    # ---- opening -----------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        sources: Sequence[str | Path] | None = (seeds_dir(),),
        index_dir: str | Path | None = None,
        settings: Settings | None = None,
        show_progress: bool = False,
        rebuild: bool = False,
    ) -> Engine:
        """Load `index_dir` (default: the home's, see qa/home.py); build it when missing,
        update it when a source changed, and rebuild it when the embedder or chunking settings
        changed (or `rebuild` is set). `sources` defaults to the seed article shipped with qa."""
        engine = cls(index_dir if index_dir is not None else default_index(), settings)
        if not rebuild:  # a rebuild must work even when the index on disk is damaged
            engine._snapshot = engine._read_current()
        if rebuild or engine.stale:
            engine.last_report = engine.sync(sources or [], show_progress, rebuild=True)
        elif sources:
            engine.last_report = engine.sync(sources, show_progress)
        return engine

    @property
    def stale(self) -> bool:
        """The index on disk was built with other chunking, embedder or format: rebuild it."""
        snapshot = self._snapshot
        return snapshot.generation is not None and (
            snapshot.fingerprint != self.settings.index_fingerprint()
        )

    def _snapshot_of(
        self, index: PassageIndex, generation: Path | None = None, fingerprint: str | None = None
    ) -> Snapshot:
        return Snapshot(index, self.embedder, self.settings, self._vectors, generation, fingerprint)

    def _read_current(self) -> Snapshot:
        """The generation CURRENT names, read from disk."""
        for attempt in range(3):
            generation = self.store.current()
            try:
                return self._read(generation)
            except IndexDamaged:
                # a writer may have swapped generations and removed this one mid-read
                if attempt == 2 or self.store.current() == generation:
                    raise
        raise AssertionError("unreachable")

    def _read(self, generation: Path | None) -> Snapshot:
        if generation is None:
            return self._snapshot_of(PassageIndex(self.settings))
        manifest = self.store.read_manifest(generation)
        fingerprint = manifest.get("fingerprint")
        if fingerprint != self.settings.index_fingerprint():
            index = PassageIndex(self.settings)  # to be rebuilt by the caller
        else:
            index = PassageIndex.load(generation, manifest, self.settings)
        return self._snapshot_of(index, generation, fingerprint)

    # ---- updating ----------------------------------------------------------------------
    @property
    def writing(self) -> bool:
        """Whether a write (sync, add, remove) of this engine is in progress."""
        return self._writer.locked()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One write at a time: this process's writers wait here, other processes' at the
        index's file lock."""
        timeout = self.settings.lock_timeout
        if not self._writer.acquire(timeout=timeout):
            raise IndexLocked(
                f"another write to the index at {self.store.root} is in progress "
                f"(waited {timeout:.0f} s); try again when it is done"
            )
        try:
            with self.store.lock(timeout):
                yield
        finally:
            self._writer.release()

    def _working_copy(self) -> PassageIndex:
        """The live generation for a write to change, never the one questions are reading:
        read again from disk, which also takes in what another process committed. (Measured
        by bench/write_while_asking.py on 2,768 SciFact passages: 0.57 s, where a copy in
        memory takes 0.02 s, beside 1.9 s for the whole add of one small file.)"""
        return self._read_current().index

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
        Questions go on meanwhile, answered from the generation before; a failed update
        leaves that generation in place.
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
        with self._writing():
            previous = self._indexed_files() if rebuild else {}
            if rebuild:
                found += indexed_files(previous, exclude={f.resolve() for f, _ in found})
                index = PassageIndex(self.settings)
            else:
                index = self._working_copy()
            apply_changes(
                index, found, sources, report, self.embedder, show_progress, previous, prune
            )
            if report.changed:
                self._commit(index)
        return report

    def _indexed_files(self) -> dict[str, dict]:
        """The `files` of the index on disk (origin -> entry), from its copy beside the
        generations when the generation is damaged; empty when neither can be read."""
        return self.store.indexed_files()

    def add(self, paths: Sequence[str | Path], show_progress: bool = False) -> SyncReport:
        """Index files or folders (incremental: unchanged content is skipped)."""
        self.last_report = self.sync(paths, show_progress, prune=False)
        return self.last_report

    def remove(self, doc_ids: Sequence[str]) -> list[str]:
        """Remove documents by doc_id; returns the ones that were indexed."""
        with self._writing():
            index = self._working_copy()
            removed = index.remove_documents(doc_ids)
            for entry in index.files.values():
                entry["doc_ids"] = [d for d in entry["doc_ids"] if d not in removed]
            index.files = {k: v for k, v in index.files.items() if v["doc_ids"]}
            if removed:
                self._commit(index)
        return removed

    def _commit(self, index: PassageIndex) -> None:
        """Write `index` as the new generation, then let questions read it."""
        with self.store.new_generation() as folder:
            index.check()  # nothing is swapped in unless it holds together
            index.save(folder)
        self.store.write_files(index.files)
        fingerprint = self.settings.index_fingerprint()
        self._snapshot = self._snapshot_of(index, self.store.current(), fingerprint)

    # ---- reading -----------------------------------------------------------------------
    # Each read takes the current snapshot once and uses only it, so a write swapping in the
    # next generation meanwhile never mixes two generations in one answer.
    def snapshot(self) -> Snapshot:
        """The generation questions read now; it stays whole while later writes make others."""
        return self._snapshot

    @property
    def index(self) -> PassageIndex:
        """The index questions read now (read it, never change it)."""
        return self._snapshot.index

    @property
    def retriever(self) -> HybridRetriever:
        return self._snapshot.retriever

    @property
    def answerer(self) -> Answerer:
        """Sentence scoring over the current index (sentence vectors outlive index updates)."""
        return self._snapshot.answerer

    def retrieve(self, question: str, k: int = 5) -> list[Passage]:
        """The k passages that best answer the question, best first."""
        question = clean_question(question)
        snapshot = self._snapshot
        hits = snapshot.retriever.search(question, k)
        return [snapshot.passage(hit.passage_id, hit.score) for hit in hits]

    def ask(self, question: str, history: Sequence[str | Answer] = ()) -> Answer:
        """The answer to a question, after the earlier questions (or Answers) of a chat:
        quoted sentences with citations, or a plain decline with the nearest passages. Only
        the last few turns of `history` are read, each cut like the question."""
        from qa.chat import ask

        question = clean_question(question)
        history = clean_history(history, self.settings.chat.history_turns)
        return ask(self._snapshot, question, history)

    def as_retriever(self, k: int = 5) -> BaseRetriever:
        """A `llama_index.core` `BaseRetriever` returning `NodeWithScore`s; it searches the
        generation live at each call, so it sees documents added after it was made."""
        return LiveRetriever(self, k)

    def passage(self, passage_id: str, score: float = 0.0) -> Passage:
        return self._snapshot.passage(passage_id, score)

    def document_text(self, doc_id: str) -> str:
        return self._snapshot.index.document_text(doc_id)

    def documents(self) -> list[dict]:
        """Indexed documents: doc_id, title, source, passage count."""
        docs = sorted(self._snapshot.index.documents.items())
        return [
            {"doc_id": d, "title": e["title"], "source": e["source"],
             "passages": len(e["passages"])}
            for d, e in docs
        ]

    def sentences(self, passage: Passage) -> list[tuple[int, int]]:
        """The passage's sentences as document offsets (from the chunker)."""
        spans = self._snapshot.index.node(passage.id).metadata["sentences"]
        return [(passage.start + s, passage.start + e) for s, e in spans]


class LiveRetriever(BaseRetriever):
    """A LlamaIndex retriever over the generation the engine reads at each call."""

    def __init__(self, engine: Engine, k: int = 5) -> None:
        super().__init__()
        self.engine = engine
        self.k = k

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        snapshot = self.engine.snapshot()
        hits = snapshot.retriever.search(query_bundle.query_str, self.k)
        return [NodeWithScore(node=snapshot.index.node(h.passage_id), score=h.score) for h in hits]


def clean_question(question: str) -> str:
    if not isinstance(question, str) or not question.strip():
        raise BadQuestion("the question is empty; type a question")
    return _cut(question)


def clean_history(history: Sequence[str | Answer], turns: int) -> list[str | Answer]:
    """The last `turns` earlier turns that hold a question, each cut like the question: the
    chat reads only the last few, so a long or huge history costs what a short one does."""
    if isinstance(history, str) or not isinstance(history, Sequence):
        raise BadQuestion("the history must be a list of earlier questions, oldest first")
    for n, item in enumerate(history, 1):
        if not isinstance(item, (str, Answer)):
            raise BadQuestion(
                f"history item {n} is a {type(item).__name__}, not a question; the history is "
                "a list of earlier questions, oldest first"
            )
    kept: list[str | Answer] = []
    for item in reversed(history):
        if len(kept) == turns:
            break
        if isinstance(item, Answer):
            if item.question.strip():
                cut = item.question[:MAX_QUESTION_CHARS]
                kept.append(item if cut == item.question else replace(item, question=cut))
        elif text := _cut(item):
            kept.append(text)
    return kept[::-1]


def _cut(text: str) -> str:
    """Whitespace runs made one space, cut to MAX_QUESTION_CHARS; a word has at least one
    character, so no more words than that are split off, however long the text."""
    words = text.split(maxsplit=MAX_QUESTION_CHARS)[:MAX_QUESTION_CHARS]
    return " ".join(words)[:MAX_QUESTION_CHARS]
