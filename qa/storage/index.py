"""Passages -> the searchable index: SQLite for the text, segments for vectors and BM25.

One generation folder holds the index:

    qa.sqlite     passages, documents, files, BM25 terms, the live segments (qa/storage/db.py)
    segments/     what each write added: BM25 postings (qa/storage/postings.py) and vectors
                  (qa/vectors: FAISS by default, or Milvus)

Opening reads the SQLite file's small tables and memory-maps the segments: its cost does not
grow with the passages. A write is one SQLite transaction plus one new segment folder
(merging the newest small ones), so it costs what it changes; until it commits, questions
read the state before it, and a crash leaves that state. Embedding happens once, here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.errors import IndexDamaged, IndexInconsistent, QAError
from qa.ingest.records import DocumentRecord
from qa.models.embed import Embedder
from qa.schema import Passage
from qa.settings import FORMAT_VERSION, Settings
from qa.storage import segments
from qa.storage.db import Database
from qa.storage.lexical import LexicalIndex, Vocabulary, bm25_stopwords, tokenize
from qa.storage.postings import Gone, Postings, merge
from qa.storage.tables import DocumentTable, FileTable
from qa.storage.vectors import VectorStore, load_store, new_store

if TYPE_CHECKING:
    from llama_index.core.schema import Document, TextNode


ADD_BATCH = 256  # documents chunked, embedded and stored at a time


class PassageIndex:
    """One generation's index: read by questions, or (opened to write) changed by one writer
    inside one SQLite transaction until `commit`."""

    def __init__(self, folder: Path | None, settings: Settings, dimension: int, write: bool,
                 checked: bool = True) -> None:
        """`folder` None: an empty index, in memory. `checked`: also the checks that read the
        files whole (SQLite's quick check, the segments' CRCs), where they are small."""
        self.folder = folder
        self.settings = settings
        self.dimension = dimension
        self.writing = write
        self.db = Database(folder, write)
        self.documents = DocumentTable(self.db)
        self.files = FileTable(self.db)
        try:
            self.meta = self.db.meta()
            self._segments = self.db.segments()
            names = []
            if folder is not None:
                if checked:
                    self.db.check(segments.CHECKED_BYTES // 4)
                segments.verify(folder, self._segments, crc=checked)
                names = [segments.folder_of(folder, n) for n, _ in self._segments]
            self._postings = [Postings.load(f) for f in names]
            spec = settings.store or "faiss"
            self.vectors: VectorStore = (load_store(spec, names, dimension) if names
                                         else new_store(spec, dimension))
            self.lexical = LexicalIndex(self._postings, Vocabulary(self.db.term_ids),
                                        int(self.meta.get("terms", 0)),
                                        self.meta.get("stopwords", []))
            counted = self.meta.get("passages", 0)  # as the last write counted them
            if not len(self.vectors) == len(self.lexical) == counted:
                raise ValueError(f"{len(self.vectors)} vectors and {len(self.lexical)} BM25 "
                                 f"rows for {counted} passages")
        except QAError:  # said plainly already (a store that cannot be reached is not damage)
            self.db.close()
            raise
        except Exception as exc:  # any unreadable or inconsistent file means the same to the user
            self.db.close()
            detail = (str(exc).strip().splitlines() or [""])[0][:160]
            raise IndexDamaged(f"index at {folder.parent} is damaged ({exc.__class__.__name__}:"
                               f" {detail}); run `qa index --rebuild`") from exc
        # the write under way: postings of the rows added (one per batch), their keys, the
        # added keys removed again, and the term ids of the stored rows it removes
        self._batches: list[Postings] = []
        self._added: set[int] = set()
        self._dropped: list[int] = []
        self._gone: dict[int, np.ndarray] = {}
        self._terms = int(self.meta.get("terms", 0))
        self._new_terms: dict[str, int] = {}

    @classmethod
    def open(cls, folder: Path | None, settings: Settings, dimension: int, write: bool = False,
             checked: bool = True) -> PassageIndex:
        return cls(folder, settings, dimension, write, checked)

    @property
    def fingerprint(self) -> str | None:
        return self.meta.get("fingerprint")

    # ---- reading -----------------------------------------------------------------------
    def __len__(self) -> int:
        """The passages held."""
        return len(self.vectors)

    def _row(self, passage_id: str) -> tuple[str, dict[str, Any]]:
        found = self.db.passage(passage_id)
        if found is None:
            raise KeyError(f"{passage_id!r} is not in the index")
        return found

    def passage(self, passage_id: str, score: float = 0.0) -> Passage:
        text, meta = self._row(passage_id)
        return Passage(id=passage_id, doc_id=meta["doc_id"], source=meta["source"],
                       title=meta["title"], text=text, start=meta["start"], end=meta["end"],
                       score=score, page=meta.get("page"))

    def ids_of(self, keys: Iterable[int]) -> dict[int, str]:
        """Passage ids by key."""
        return self.db.ids_of([int(k) for k in keys])

    def node(self, passage_id: str) -> TextNode:
        """The passage as a LlamaIndex node."""
        from qa.ingest.chunk import passage_node

        text, meta = self._row(passage_id)
        return passage_node(passage_id, text, meta)

    def sentence_spans(self, passage_id: str) -> list[tuple[int, int]]:
        """The passage's sentences as offsets into the passage's text (from the chunker)."""
        return [(a, b) for a, b in self._row(passage_id)[1]["sentences"]]

    def keys(self) -> np.ndarray:
        """Every passage's key, ascending (for tools; a large index holds millions)."""
        return np.asarray([k for (k,) in self.db.rows("SELECT key FROM passages ORDER BY key")],
                          dtype=np.int64)

    def passage_texts(self) -> list[str]:
        """Every passage's text (for statistics; a large index holds millions)."""
        return [r[0] for r in self.db.rows("SELECT text FROM passages ORDER BY key")]

    def document_text(self, doc_id: str) -> str:
        text = self.db.document_text(doc_id)
        if text is None:
            raise KeyError(f"{doc_id!r} is not in the index")
        return text

    # ---- writing -----------------------------------------------------------------------
    def add_documents(
        self, docs: list[Document], embedder: Embedder, show_progress: bool = False
    ) -> int:
        """Chunk, embed and store documents (replacing any with the same doc_id), a batch at
        a time, so that memory holds one batch's passages whatever the number."""
        from qa.ingest.chunk import chunk_document, embed_text
        from qa.progress import progress_bar

        self.remove_documents([d.doc_id for d in docs if d.doc_id in self.documents])
        added = 0
        batches = [docs[i:i + ADD_BATCH] for i in range(0, len(docs), ADD_BATCH)]
        for batch in progress_bar(batches, "embedding" if show_progress else None, "batch"):
            nodes: list[TextNode] = []
            for doc in batch:
                doc_nodes = chunk_document(doc, self.settings.chunk, embedder.count_tokens)
                nodes.extend(doc_nodes)
                meta = doc.metadata
                record = DocumentRecord(
                    hash=meta["hash"], text_hash=meta.get("text_hash", ""),
                    origin=meta.get("origin", ""), title=meta.get("title", ""),
                    source=meta.get("source", doc.doc_id), passages=[n.id_ for n in doc_nodes],
                    date=meta.get("date", ""), publisher=meta.get("publisher", ""))
                self.documents.put(doc.doc_id, record, doc.text)
            texts = [embed_text(n.metadata["embed_title"], n.text) for n in nodes]
            vectors = embedder.encode(texts)
            keys = np.asarray([self.db.add_passage(n.id_, n.metadata["doc_id"], n.text,
                                                   n.metadata) for n in nodes], dtype=np.int64)
            self.vectors.add(keys, vectors)
            tokens = self._term_ids([n.text for n in nodes], new=True)
            self._batches.append(Postings.build(keys, tokens))
            # like sizes merged as they come: a million passages make a few dozen parts
            while len(self._batches) > 1 and (len(self._batches[-2].keys)
                                              <= 2 * len(self._batches[-1].keys)):
                last = self._batches.pop()
                self._batches[-1] = merge([self._batches[-1], last],
                                          np.asarray(self._dropped, np.int64), Gone.of([], []))
            self._added.update(keys.tolist())
            added += len(nodes)
        return added

    def remove_documents(self, doc_ids: Iterable[str]) -> list[str]:
        removed = []
        for doc_id in doc_ids:
            record = self.documents.get(doc_id)
            if record is None:
                continue
            keys = [k for pid in record.passages if (k := self.db.key_of(pid)) is not None]
            stored = [k for k in keys if k not in self._added]
            self._dropped += [k for k in keys if k in self._added]
            texts = self.db.texts_of(stored)
            for key, ids in zip(stored, self._term_ids([texts[k] for k in stored])):
                self._gone[key] = ids
            self.vectors.delete(keys)
            self.db.delete_passages(keys)
            self.documents.drop(doc_id)
            removed.append(doc_id)
        return removed

    def _term_ids(self, texts: list[str], new: bool = False) -> list[np.ndarray]:
        """The texts' BM25 tokens as term ids; `new`: give unknown terms the next ids."""
        if not self.meta.get("stopwords"):
            self.meta["stopwords"] = bm25_stopwords()
        tokens = tokenize(texts, self.meta["stopwords"])
        known = self.db.term_ids({t for ts in tokens for t in ts} - self._new_terms.keys())
        known.update(self._new_terms)
        if new:
            fresh = sorted({t for ts in tokens for t in ts} - known.keys())
            self.db.add_terms(fresh, self._terms)
            for term in fresh:
                known[term] = self._new_terms[term] = self._terms
                self._terms += 1
        return [np.asarray([known[t] for t in ts if t in known], dtype=np.int32)
                for ts in tokens]

    @property
    def changed(self) -> bool:
        return bool(self._added or self._gone or self.files.changed or self.documents.changed)

    # ---- integrity ---------------------------------------------------------------------
    def check(self) -> None:
        """Raise `IndexInconsistent` unless the parts agree (see `problem`): run before a
        write commits, so that a bug can fail a write but never damage the index."""
        problem = self.problem()
        if problem:
            raise IndexInconsistent(
                f"the update was not saved: it would have left the index inconsistent "
                f"({problem}); the index is unchanged"
            )

    def problem(self) -> str | None:
        """The first way the parts disagree, or None: as many passages, vectors and BM25
        rows; the documents this write touched list exactly their stored passages; the
        files it touched list only indexed documents, and no document is listed twice."""
        count = self.db.count("passages")
        if len(self.vectors) != count:
            return f"{len(self.vectors)} vectors for {count} passages"
        rows = len(self.lexical) + len(self._added) - len(self._dropped) - len(self._gone)
        if rows != count:
            return f"{rows} BM25 rows for {count} passages"
        # (a build of a million documents would query each: the first thousands)
        for doc_id, record in self.documents.touched().items():
            listed = set(record.passages)
            if len(listed) != len(record.passages):
                return f"{doc_id!r} lists a passage twice"
            stored = set(self.db.passage_ids_of(doc_id))
            if stored != listed:
                return f"the passages of {doc_id!r} differ from those stored"
        holders: dict[str, str] = {}
        for origin, record in self.files.touched().items():
            for doc_id in record.doc_ids:
                if doc_id not in self.documents:
                    return f"{origin} lists {doc_id!r}, which is not indexed"
                if holders.setdefault(doc_id, origin) != origin:
                    return f"{doc_id!r} is listed by two files, {holders[doc_id]} and {origin}"
                other = self.documents[doc_id].origin
                if other and other != origin and self.files.get(other) is not None and \
                        doc_id in self.files[other].doc_ids:
                    return f"{doc_id!r} is listed by two files, {other} and {origin}"
        return None

    # ---- committing --------------------------------------------------------------------
    def commit(self) -> None:
        """Write the changes: a new segment (taking in the newest small ones), then one
        SQLite transaction naming it with the passages. Nothing is seen before it ends."""
        assert self.writing, "opened to read"
        self.check()
        names = [n for n, _ in self._segments]
        if self._added or self._gone:
            take = segments.merge_count([len(p.keys) for p in self._postings], len(self._added))
            if getattr(self.vectors, "whole", False):  # its segment replaces all the others
                take = len(self._postings)
            name = segments.next_name(self.folder, names)
            folder = segments.folder_of(self.folder, name)
            segments.clear_unlisted(self.folder, names)  # left by a crashed write
            folder.mkdir(parents=True)
            # the vectors first: their pending copy is freed before the postings are merged
            merged_folders = [segments.folder_of(self.folder, n) for n in names[len(names) - take:]]
            self.vectors.save(folder, merged_folders)
            merged = self._postings[len(self._postings) - take:] if take else []
            gone = Gone.of(list(self._gone), list(self._gone.values()))
            dead = np.concatenate([np.asarray(p.gone_keys) for p in self._postings]
                                  + [gone.keys, np.asarray(self._dropped, dtype=np.int64)])
            merge([*merged, *self._batches], dead, gone).save(folder)
            self._batches = []
            segments.fsync_tree(folder)
            kept = self._segments[:len(self._segments) - take]
            self._segments = [*kept, (name, segments.sums(folder))]
            self.db.set_segments(self._segments)
        self.files.flush()
        self.db.set_meta({
            "format": FORMAT_VERSION,
            "fingerprint": self.settings.index_fingerprint(),
            "embedder": {"name": self.settings.embed.model_name, "dimension": self.dimension},
            "store": self.settings.store,
            "chunking": asdict(self.settings.chunk),
            "terms": self._terms,
            "passages": self.db.count("passages"),
            "stopwords": self.meta.get("stopwords") or bm25_stopwords(),
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        self.db.commit()
        self.db.close()
        segments.clear_unlisted(self.folder, [n for n, _ in self._segments])

    def close(self) -> None:
        """End a write without committing it (nothing of it is kept), or after its commit."""
        self.db.close()
        if self.writing and len(self._added) >= TRIM_AFTER:
            self._batches = []
            _give_back_freed_memory()


TRIM_AFTER = 10_000  # passages: a write this big hands the memory it freed back


def _give_back_freed_memory() -> None:
    """glibc keeps what a big write freed (2.7 GB RSS after building a million passages,
    most of it free); hand it back to the system, which Python never does itself."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass
