"""The one Python API every face calls: open an index over sources, search it, ask it.

Questions and writes run at the same time. What a question reads is one `Snapshot`: the
index as one committed state (a SQLite read transaction and the segments it names) with its
reader, never changed once made. A write (one at a time) changes the index in its own
transaction, commits it, and only then points the engine at a new snapshot; a question that
already took the old one reads it to its end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from qa.answering import chat
from qa.answering.answer import compose
from qa.answering.chat import Turn
from qa.answering.questions import clean_history, clean_question
from qa.answering.read import Reading
from qa.answering.retrieve import WeightedQuery, embedded, search
from qa.answering.scope import Where, WhereLike
from qa.answering.snapshot import Snapshot, Trace
from qa.errors import IndexDamaged, IndexLocked, NoSuchSource
from qa.ingest.load import discover
from qa.models.embed import Embedder, make_embedder
from qa.models.scorer import LAYERS, SentenceScorer
from qa.models.sentence_vectors import SentenceVectors
from qa.schema import Answer, Passage, one_line
from qa.settings import RetrieveSettings, Settings
from qa.storage.home import cache_dir, default_index, seeds_dir
from qa.storage.index import PassageIndex
from qa.storage.store import IndexStore, older_layout
from qa.storage.sync import SyncReport, apply_changes, indexed_files, needs_work, remove_documents
from qa.storage.vectors import canonical_store

if TYPE_CHECKING:
    import numpy as np
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.schema import TextNode


class Engine:
    def __init__(self, index_dir: str | Path, settings: Settings | None = None,
                 rebuild: bool = False) -> None:
        self.store = IndexStore(index_dir)
        settings = settings or Settings()
        # the vector store named, else the index's (STORE: damage unless rebuilding), else FAISS
        spec = settings.store or self.store.recorded_store(repairing=rebuild) or "faiss"
        # (an unknown kind is refused before anything is read)
        self.settings = replace(settings, store=canonical_store(spec))
        self.embedder: Embedder = make_embedder(self.settings.embed, cache_dir())
        answer = self.settings.answer
        self._vectors = SentenceVectors(self.embedder, answer.sentence_cache,
                                        answer.token_cache if answer.word_match else 0)
        self.scorer = (SentenceScorer(self.settings.embed, cache_dir(),
                                      Path(answer.scorer_layers or LAYERS))
                       if answer.sentence_scorer else None)
        self._scored = (SentenceVectors(self.scorer, answer.sentence_cache, 0)
                        if self.scorer else None)
        self._snapshot = self._snapshot_of(self._empty())
        self._writer = threading.Lock()  # writers of this process; other processes: the file lock
        self._refreshing = threading.Lock()
        self._checked = 0.0  # when the index on disk was last compared with the snapshot
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
        store: str | None = None,
    ) -> Engine:
        """Load `index_dir` (default: the home's, see qa/storage/home.py); build it when missing,
        update it when a source changed, and rebuild it when the embedder or chunking settings
        changed (or `rebuild` is set). `sources` defaults to the seed article shipped with qa.
        `store`: where vectors live ("faiss", "milvus:./index/milvus.db", "milvus:http://..."),
        by default where the index keeps them; another than the index's rebuilds it there."""
        if store is not None:
            settings = replace(settings or Settings(), store=store)
        engine = cls(index_dir if index_dir is not None else default_index(), settings, rebuild)
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

    def _snapshot_of(self, index: PassageIndex, generation: Path | None = None) -> Snapshot:
        return Snapshot(index, self.settings, self._vectors, generation, self._scored)

    def _empty(self) -> PassageIndex:
        return PassageIndex.open(None, self.settings, self.embedder.dimension)

    def _open(self, generation: Path | None, write: bool = False, checked: bool = True
              ) -> PassageIndex:
        """`checked`: also the checks that read whole files (a write and the read after it
        check sizes and structure only; see qa/storage/segments.py)."""
        return PassageIndex.open(generation, self.settings, self.embedder.dimension, write,
                                 checked)

    def _read_current(self, checked: bool = True) -> Snapshot:
        """The generation CURRENT names, read from disk."""
        for attempt in range(3):
            version = self.store.version()  # before reading: a write meanwhile shows later
            generation = self.store.current()
            try:
                snapshot = self._read(generation, checked)
                snapshot.version = version
                return snapshot
            except IndexDamaged:
                # a writer may have swapped generations, or merged segments, mid-read
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _read(self, generation: Path | None, checked: bool = True) -> Snapshot:
        if generation is None:
            return self._snapshot_of(self._empty())
        if older_layout(generation):  # rebuilt like any other format change
            snapshot = self._snapshot_of(self._empty(), generation)
            snapshot.fingerprint = "an older qa's layout"
            return snapshot
        index = self._open(generation, checked=checked)
        if index.fingerprint != self.settings.index_fingerprint():
            index.close()  # built with other settings: to be rebuilt by the caller
            snapshot = self._snapshot_of(self._empty(), generation)
            snapshot.fingerprint = index.fingerprint
            return snapshot
        return self._snapshot_of(index, generation)

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
        Questions go on meanwhile, answered from the state before; a failed update leaves
        that state in place; a source that does not exist raises `NoSuchSource` first.
        """
        sources = [Path(s) for s in sources]
        if missing := [str(s) for s in sources if not s.exists()]:  # as `qa index` says it
            raise NoSuchSource(one_line(f"no such file or folder: {', '.join(missing)}"))
        rebuild = rebuild or self.stale
        report = SyncReport(rebuilt=rebuild)
        found = list(discover(sources, report.errors))
        if not rebuild and not needs_work(self.index, found, sources, prune):
            report.unchanged = len(found)
            return report
        with self._writing():
            # the files indexed, from their copy beside the generations when it is damaged
            previous = self.store.indexed_files() if rebuild else {}
            if rebuild:
                found += indexed_files(previous, exclude={f.resolve() for f, _ in found})

            def change(index: PassageIndex) -> bool:
                apply_changes(index, found, sources, report, self.embedder, show_progress,
                              previous, prune)
                return report.changed

            self._write(change, fresh=rebuild)
        return report

    def add(self, paths: Sequence[str | Path], show_progress: bool = False) -> SyncReport:
        """Index files or folders (incremental: unchanged content is skipped)."""
        self.last_report = self.sync(paths, show_progress, prune=False)
        return self.last_report

    def remove(self, doc_ids: Sequence[str]) -> list[str]:
        """Remove documents by doc_id; returns the ones that were indexed."""
        removed: list[str] = []

        def change(index: PassageIndex) -> bool:
            removed.extend(remove_documents(index, doc_ids))
            return bool(removed)

        with self._writing():
            self._write(change)
        return removed

    def ensure_query_model(self) -> bool:
        """Write the query model's ONNX export, and make the sentence scorer (qa/models/scorer.py),
        when either is missing, damaged or stale (the first index build does; `qa index`
        repairs them); whether anything was written."""
        ensure = getattr(self.embedder, "ensure_query_model", None)
        wrote = bool(ensure and ensure())
        return bool(self.scorer and self.scorer.ensure()) or wrote

    def _write(self, change: Callable[[PassageIndex], bool], fresh: bool = False) -> None:
        """Run `change` on the index opened to write, and commit it when it changed
        something; `fresh`: on a new, empty generation swapped in whole (a rebuild)."""
        generation = None if fresh else self.store.current()
        if generation is not None:
            index = self._open(generation, write=True, checked=False)
            try:
                if change(index):
                    self._commit(index)
            finally:
                index.close()
            return
        try:
            with self.store.new_generation() as folder:
                index = self._open(folder, write=True)
                try:
                    if not change(index):
                        raise _Unchanged
                    self._commit(index, swapped=True)
                finally:
                    index.close()
        except _Unchanged:
            return
        self._snapshot = self._read_current()

    def _commit(self, index: PassageIndex, swapped: bool = False) -> None:
        """Commit a write, then let questions read it (`swapped`: once its generation is
        swapped in)."""
        files = {origin: index.files[origin] for origin in index.files}
        index.commit()  # checks first: nothing is committed unless it holds together
        self.store.write_files(files)
        self.store.write_store(self.settings.store)
        self.ensure_query_model()
        if not swapped:
            self._snapshot = self._read_current(checked=False)

    # ---- reading -----------------------------------------------------------------------
    # Each read takes the current snapshot once and uses only it, so a write swapping in the
    # next generation meanwhile never mixes two generations in one answer.
    def snapshot(self) -> Snapshot:
        """The generation questions read now; it stays whole while later writes make others.
        What another process committed is read in at most `refresh_seconds` after it."""
        snapshot = self._snapshot
        now = time.monotonic()
        if now - self._checked < self.settings.refresh_seconds or self.writing:
            return snapshot  # this process's own writes swap the snapshot themselves
        self._checked = now
        if self.store.version() == snapshot.version or not self._refreshing.acquire(False):
            return snapshot
        try:
            if self._snapshot is snapshot:  # sizes and structure checked, as after a write
                fresh = self._read_current(checked=False)
                # built with other settings (another process's rebuild): not ours to read
                if fresh.fingerprint in (None, self.settings.index_fingerprint()):
                    self._snapshot = fresh
                else:
                    snapshot.version = fresh.version  # not read again until the next commit
        except IndexDamaged:
            pass  # mid-write or damaged: keep answering from the snapshot that was read whole
        finally:
            self._refreshing.release()
        return self._snapshot

    @property
    def index(self) -> PassageIndex:
        """The index questions read now (read it, never change it)."""
        return self.snapshot().index

    def retrieve(self, question: str, k: int = 5, where: WhereLike = None) -> list[Passage]:
        """The k passages that best answer the question, best first. `where`: only from the
        documents it names (qa/answering/scope.py); `BadFilter` when it names no indexed one."""
        query = WeightedQuery(clean_question(question, self.settings.chat.max_question_chars))
        snapshot = self.snapshot()
        return self._passages(snapshot, [query], k, snapshot.scope(Where.of(where)))

    def ask(self, question: str, history: Sequence[str | Answer] = (),
            where: WhereLike = None) -> Answer:
        """The answer to a question, after the earlier questions (or Answers) of a chat:
        quoted sentences with citations, or a plain decline with the nearest passages. Only
        the last few turns of `history` are read, each cut like the question."""
        return self.trace(question, history, where).answer

    def trace(self, question: str, history: Sequence[str | Answer] = (),
              where: WhereLike = None) -> Trace:
        """`ask`, with what each step made of the question (for tuning and debugging)."""
        limit = self.settings.chat.max_question_chars
        question = clean_question(question, limit)
        history = clean_history(history, self.settings.chat.history_turns, limit)
        snapshot = self.snapshot()
        allowed = snapshot.scope(Where.of(where))
        return self._answer(snapshot, question, self._turns(snapshot, history, allowed),
                            allowed)

    def _answer(self, snapshot: Snapshot, question: str, turns: Sequence[Turn],
                allowed: np.ndarray | None = None) -> Trace:
        """The one query path: the conversation -> search -> read -> answer (`allowed`: the
        passage keys of the question's scope; None: every passage)."""
        resolution = chat.resolve(question, turns, self.settings.chat)
        queries = embedded(resolution.queries, self.embedder)  # once, for search and reading
        passages = self._passages(snapshot, queries, self.settings.answer.passages, allowed)
        reading: Reading = snapshot.reader.read(resolution.facts, queries, passages)
        answer = compose(question, resolution.standalone, reading, passages,
                         self.settings.answer)
        return Trace(resolution, passages, reading, answer)

    def _passages(self, snapshot: Snapshot, queries: Sequence[WeightedQuery], k: int,
                  allowed: np.ndarray | None = None) -> list[Passage]:
        hits = search(snapshot.index, self.embedder, queries, k, self.settings.retrieve, allowed)
        return [snapshot.index.passage(hit.passage_id, hit.score) for hit in hits]

    def _turns(self, snapshot: Snapshot, history: Sequence[str | Answer],
               allowed: np.ndarray | None = None) -> list[Turn]:
        """The turns a question leans on. When the last is a question without its answer,
        it is answered again (after the turns before it, unanswered) to learn what the new
        question's pronouns point to."""
        turns = [Turn(h.question, h) if isinstance(h, Answer) else Turn(h) for h in history]
        turns = [t for t in turns if t.question.strip()][-self.settings.chat.context_turns:]
        if turns and turns[-1].answer is None:
            last = turns[-1].question
            turns[-1] = Turn(last, self._answer(snapshot, last, turns[:-1], allowed).answer)
        return turns

    def warm(self) -> None:
        """Load everything a question needs (the query model, the reader's word lists) by
        answering one, so that the first real question is as fast as a later one."""
        if len(self.snapshot().index):
            self.ask("What is this about?")

    def as_retriever(self, k: int = 5, where: WhereLike = None) -> BaseRetriever:
        """A `llama_index.core` `BaseRetriever` returning `NodeWithScore`s; it searches the
        generation live at each call, so it sees documents added after it was made.
        `where`: only from some documents, as for `retrieve`."""
        from qa.answering.llama import LiveRetriever

        return LiveRetriever(self.nodes, k, where=Where.of(where))  # a bad one fails here

    def nodes(
        self, question: str, k: int, retrieve: RetrieveSettings | None = None,
        where: WhereLike = None,
    ) -> list[tuple[TextNode, float]]:
        """(LlamaIndex node, score) of the k best passages: what `as_retriever` returns.
        `retrieve`: other retrieval settings than the engine's (evaluation baselines)."""
        snapshot = self.snapshot()
        query = WeightedQuery(clean_question(question, self.settings.chat.max_question_chars))
        hits = search(snapshot.index, self.embedder, [query], k,
                      retrieve or self.settings.retrieve, snapshot.scope(Where.of(where)))
        return [(snapshot.index.node(h.passage_id), h.score) for h in hits]

    def passage(self, passage_id: str, score: float = 0.0) -> Passage:
        return self.snapshot().index.passage(passage_id, score)

    def document_text(self, doc_id: str) -> str:
        return self.snapshot().index.document_text(doc_id)

    def documents(self) -> list[dict]:
        """Indexed documents: doc_id, title, source, passage count."""
        return [{"doc_id": d, "title": r.title, "source": r.source, "passages": len(r.passages)}
                for d, r in sorted(self.snapshot().index.documents.items())]

    def sentences(self, passage: Passage) -> list[tuple[int, int]]:
        """The passage's sentences as document offsets (from the chunker)."""
        spans = self.snapshot().index.sentence_spans(passage.id)
        return [(passage.start + a, passage.start + b) for a, b in spans]


class _Unchanged(Exception):
    """A fresh generation that nothing was written to: it is not swapped in."""
