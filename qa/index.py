"""Passages -> the searchable index: vectors, BM25, the docstore, and a manifest.

LlamaIndex's `SimpleDocumentStore` keeps documents and passage nodes; a `VectorStore`
(qa/vectors: FAISS by default, or Milvus) keeps the vectors; `LexicalIndex` (LlamaIndex's
BM25Retriever) keeps BM25. Embedding happens once, here, at index time.

Questions read the docstore's JSON as it was saved, without importing LlamaIndex (which
takes 1.6-3 s to import, more than a whole cold question may take); the `SimpleDocumentStore`
is built from the same data only when a write or a LlamaIndex node needs it.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa.embed import Embedder
from qa.errors import IndexDamaged, IndexInconsistent, QAError
from qa.lexical import LexicalIndex
from qa.records import (
    DocumentRecord,
    FileRecord,
    documents_from_json,
    documents_to_json,
    files_from_json,
    files_to_json,
)
from qa.schema import Passage
from qa.settings import FORMAT_VERSION, Settings
from qa.store import MANIFEST, write_manifest
from qa.vectors import VectorStore, load_store, new_store

if TYPE_CHECKING:
    from llama_index.core.schema import Document, TextNode
    from llama_index.core.storage.docstore import SimpleDocumentStore

DOCSTORE = "docstore.json"
NODES = "docstore/data"  # the collection of SimpleDocumentStore's namespace "docstore"
DOCUMENT_TYPE = "4"  # llama_index's ObjectType.DOCUMENT, as stored

class PassageIndex:
    """The index's content in memory, with load/save of one generation folder."""

    def __init__(self, settings: Settings, dimension: int) -> None:
        self.settings = settings
        self.dimension = dimension
        self._saved: dict[str, Any] = {}  # the docstore's JSON as loaded
        self.vectors: VectorStore = new_store(settings.store or "faiss", dimension)
        self.lexical: LexicalIndex | None = None  # None while there are no passages
        self.documents: dict[str, DocumentRecord] = {}
        self.files: dict[str, FileRecord] = {}  # by the file's absolute path
        self._lexical_stale = False

    # ---- reading -----------------------------------------------------------------------
    def __len__(self) -> int:
        """The passages held."""
        return len(self.vectors)

    @cached_property
    def docstore(self) -> SimpleDocumentStore:
        """LlamaIndex's docstore over the same stored data (for writes and nodes)."""
        from llama_index.core.storage.docstore import SimpleDocumentStore
        from llama_index.core.storage.kvstore import SimpleKVStore

        return SimpleDocumentStore(SimpleKVStore(self._saved or None))

    def _stored(self) -> dict[str, dict[str, Any]]:
        """Every stored node and document as its JSON, by id."""
        if "docstore" in self.__dict__:
            return self.docstore._kvstore._collections_mappings.get(NODES, {})
        return self._saved.get(NODES, {})

    def _data(self, node_id: str) -> dict[str, Any]:
        try:
            return self._stored()[node_id]["__data__"]
        except KeyError:
            raise KeyError(f"{node_id!r} is not in the index") from None

    def node(self, passage_id: str) -> TextNode:
        """The passage as a LlamaIndex node."""
        return self.docstore.get_node(passage_id)

    def passage(self, passage_id: str, score: float = 0.0) -> Passage:
        data = self._data(passage_id)
        meta = data["metadata"]
        return Passage(id=passage_id, doc_id=meta["doc_id"], source=meta["source"],
                       title=meta["title"], text=data["text"], start=meta["start"],
                       end=meta["end"], score=score, page=meta.get("page"))

    def sentence_spans(self, passage_id: str) -> list[tuple[int, int]]:
        """The passage's sentences as offsets into the passage's text (from the chunker)."""
        return [(a, b) for a, b in self._data(passage_id)["metadata"]["sentences"]]

    def document_text(self, doc_id: str) -> str:
        return self._data(doc_id)["text"]

    # ---- writing -----------------------------------------------------------------------
    def add_documents(
        self, docs: list[Document], embedder: Embedder, show_progress: bool = False
    ) -> int:
        """Chunk, embed and store documents (replacing any with the same doc_id)."""
        from qa.chunk import chunk_document, embed_text

        self.remove_documents([d.doc_id for d in docs if d.doc_id in self.documents])
        nodes: list[TextNode] = []
        for doc in docs:
            doc_nodes = chunk_document(doc, self.settings.chunk, embedder.count_tokens)
            nodes.extend(doc_nodes)
            meta = doc.metadata
            self.documents[doc.doc_id] = DocumentRecord(
                hash=meta["hash"], text_hash=meta.get("text_hash", ""),
                origin=meta.get("origin", ""), title=meta.get("title", ""),
                source=meta.get("source", doc.doc_id), passages=[n.id_ for n in doc_nodes],
            )
        texts = [embed_text(n.metadata["embed_title"], n.text) for n in nodes]
        vectors = embedder.encode(texts, show_progress=show_progress)
        self.vectors.add([n.id_ for n in nodes], vectors)
        self.docstore.add_documents(list(docs) + nodes, allow_update=True)
        self._lexical_stale = True
        return len(nodes)

    def remove_documents(self, doc_ids: Iterable[str]) -> list[str]:
        removed = []
        for doc_id in doc_ids:
            record = self.documents.pop(doc_id, None)
            if record is None:
                continue
            self.vectors.delete(record.passages)
            for pid in record.passages:
                self.docstore.delete_document(pid, raise_error=False)
            self.docstore.delete_document(doc_id, raise_error=False)
            removed.append(doc_id)
        if removed:
            self._lexical_stale = True
        return removed

    def refresh_lexical(self) -> None:
        """Rebuild BM25 over all passages (bm25s indexes are not incremental; it is fast)."""
        ids = [pid for record in self.documents.values() for pid in record.passages]
        self.lexical = LexicalIndex.build(ids, [self._data(pid)["text"] for pid in ids])
        self._lexical_stale = False

    # ---- integrity ---------------------------------------------------------------------
    def check(self) -> None:
        """Raise `IndexInconsistent` unless the parts agree (see `problem`): run before a new
        generation is swapped in, so that a bug can fail a write but never damage the index."""
        problem = self.problem()
        if problem:
            raise IndexInconsistent(
                f"the update was not saved: it would have left the index inconsistent "
                f"({problem}); the index is unchanged"
            )

    def problem(self) -> str | None:
        """The first way the parts disagree, or None: the passages the documents list, the
        vectors and the docstore's passage nodes are the same set, none listed twice; each
        passage belongs to the document that lists it, which the docstore holds; the files
        list only indexed documents, each once; BM25 has a row for each passage."""
        listed = {pid: doc_id for doc_id, r in self.documents.items() for pid in r.passages}
        count = sum(len(r.passages) for r in self.documents.values())
        if len(listed) != count:
            return f"{count - len(listed)} passage(s) listed twice"
        if len(self.vectors) != count or set(self.vectors.ids()) != listed.keys():
            return f"{len(self.vectors)} vectors for {count} passages"
        # the raw stored dicts: `docstore.docs` would rebuild every node object just to look
        stored = self._stored()
        documents = {k for k, v in stored.items() if v.get("__type__") == DOCUMENT_TYPE}
        if documents != self.documents.keys():
            differ = sorted(documents ^ self.documents.keys())
            return f"the docstore and the documents differ on {differ[0]!r}"
        if len(stored) - len(documents) != count:
            return f"the docstore holds {len(stored) - len(documents)} passages for {count}"
        for pid, doc_id in listed.items():
            node = stored.get(pid)
            if node is None or node.get("__type__") == DOCUMENT_TYPE:
                return f"passage {pid!r} is not in the docstore"
            if node["__data__"]["metadata"].get("doc_id") != doc_id:
                return f"passage {pid!r} is listed by {doc_id!r} but belongs to another document"
        holders: dict[str, str] = {}
        for origin, record in self.files.items():
            for doc_id in record.doc_ids:
                if doc_id not in self.documents:
                    return f"{origin} lists {doc_id!r}, which is not indexed"
                if holders.setdefault(doc_id, origin) != origin:
                    return f"{doc_id!r} is listed by two files, {holders[doc_id]} and {origin}"
        rows = self.lexical.ids if self.lexical is not None else []
        if not self._lexical_stale and sorted(rows) != sorted(listed):
            return f"{len(rows)} BM25 rows for {count} passages"
        return None

    # ---- persistence -------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        if self._lexical_stale:
            self.refresh_lexical()
        if "docstore" in self.__dict__:
            self.docstore.persist(str(folder / DOCSTORE))
        else:  # nothing changed it: the data as loaded
            (folder / DOCSTORE).write_text(json.dumps(self._saved), encoding="utf-8")
        self.vectors.save(folder)
        if self.lexical is not None:
            self.lexical.save(folder)
        manifest = {
            "format": FORMAT_VERSION,
            "fingerprint": self.settings.index_fingerprint(),
            "embedder": {"name": self.settings.embed.model_name, "dimension": self.dimension},
            "store": self.settings.store,
            "chunking": self.settings.chunk.__dict__,
            "passages": len(self),
            "documents": documents_to_json(self.documents),
            "files": files_to_json(self.files),
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "checksums": checksums(folder),
        }
        write_manifest(folder, manifest)

    @classmethod
    def load(
        cls, folder: Path, manifest: dict[str, Any], settings: Settings, dimension: int
    ) -> PassageIndex:
        index = cls.__new__(cls)
        index.settings, index.dimension, index._lexical_stale = settings, dimension, False
        index._saved = {}
        try:
            _verify_checksums(folder, manifest)
            index.documents = documents_from_json(manifest["documents"])
            index.files = files_from_json(manifest["files"])
            index._saved = json.loads((folder / DOCSTORE).read_bytes())
            if not isinstance(index._saved, dict) or not isinstance(index._stored(), dict):
                raise ValueError(f"{DOCSTORE} is not a docstore")
            index.vectors = load_store(settings.store or "faiss", folder, dimension)
            expected = sum(len(r.passages) for r in index.documents.values())
            if manifest.get("passages") != expected:
                raise ValueError(f"the manifest counts {manifest.get('passages')} passages")
            index.lexical = LexicalIndex.load(folder) if expected else None
            problem = index.problem()  # vectors, docstore, BM25 rows and files agree
            if problem:
                raise ValueError(problem)
        except QAError:  # said plainly already (a store that cannot be reached is not damage)
            raise
        except Exception as exc:  # any unreadable or inconsistent file means the same to the user
            detail = (str(exc).strip().splitlines() or [""])[0][:160]
            raise IndexDamaged(
                f"index at {folder.parent} is damaged ({exc.__class__.__name__}: {detail}); "
                "run `qa index --rebuild`"
            ) from exc
        return index


def checksums(folder: Path) -> dict[str, list]:
    """Size and CRC-32 of every file of a generation but the manifest: a truncated or
    altered file is found before it can give a wrong answer."""
    sums = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            crc = 0
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    crc = zlib.crc32(chunk, crc)
            sums[path.relative_to(folder).as_posix()] = [path.stat().st_size, crc]
    return sums


def _verify_checksums(folder: Path, manifest: dict[str, Any]) -> None:
    expected = manifest["checksums"]
    actual = checksums(folder)
    for name in sorted(set(expected) | set(actual)):
        if name not in actual:
            raise ValueError(f"{name} is missing")
        if expected.get(name) != actual[name]:
            raise ValueError(f"{name} does not match the manifest")
