"""Passages -> the searchable index: FAISS vectors, BM25, the docstore, and a manifest.

Everything here is LlamaIndex's: `SimpleDocumentStore` keeps documents and passage nodes,
`FaissMapVectorStore` keeps the vectors (exact inner product on unit vectors = cosine), and
`BM25Retriever` (bm25s) keeps the lexical index. Embedding happens once, here, at index time.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.schema import Document, ObjectType, TextNode
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.vector_stores.faiss import FaissMapVectorStore

from qa.chunk import chunk_document, embed_text
from qa.embed import Embedder
from qa.errors import IndexDamaged, IndexInconsistent
from qa.settings import FORMAT_VERSION, Settings
from qa.store import MANIFEST, write_manifest


class PassageVectorStore(FaissMapVectorStore):
    """LlamaIndex's FAISS map store, with batched adds and ids that never collide.

    The stock `add` numbers vectors by `ntotal`, which repeats an id still in use once a
    vector was deleted, and it adds one vector per FAISS call.
    """

    def add(self, nodes: list, **add_kwargs: Any) -> list[str]:
        if nodes:
            vectors = np.asarray([n.get_embedding() for n in nodes], dtype=np.float32)
            self.add_vectors([n.id_ for n in nodes], vectors)
        return [n.id_ for n in nodes]

    def add_vectors(self, node_ids: list[str], vectors: np.ndarray) -> None:
        """Add precomputed vectors without building per-node embedding lists."""
        first = max(self._faiss_id_to_node_id_map, default=-1) + 1
        ids = np.arange(first, first + len(node_ids), dtype=np.int64)
        self._faiss_index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        for faiss_id, node_id in zip(ids.tolist(), node_ids):
            self._node_id_to_faiss_id_map[node_id] = faiss_id
            self._faiss_id_to_node_id_map[faiss_id] = node_id

    def search(self, query: np.ndarray, k: int) -> tuple[list[str], np.ndarray]:
        """Top-k node ids and cosines for one unit query vector."""
        _single_thread_faiss()
        k = min(k, self._faiss_index.ntotal)
        if k <= 0:
            return [], np.zeros(0, dtype=np.float32)
        scores, ids = self._faiss_index.search(query[np.newaxis, :].astype(np.float32), k)
        keep = ids[0] >= 0
        return [self._faiss_id_to_node_id_map[int(i)] for i in ids[0][keep]], scores[0][keep]

    def cosines(self, query: np.ndarray, node_ids: list[str]) -> np.ndarray:
        """Exact cosine of the query with the stored vectors of the given nodes."""
        if not node_ids:
            return np.zeros(0, dtype=np.float32)
        ids = np.asarray([self._node_id_to_faiss_id_map[n] for n in node_ids], dtype=np.int64)
        return self._faiss_index.reconstruct_batch(ids) @ query.astype(np.float32)

    @property
    def size(self) -> int:
        return int(self._faiss_index.ntotal)

    @classmethod
    def empty(cls, dimension: int) -> PassageVectorStore:
        import faiss

        return cls(faiss_index=faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)))


@lru_cache(maxsize=1)
def _single_thread_faiss() -> None:
    """One query is too small to share: on 12k SciFact passages an exact search took 36 ms
    with FAISS's two OpenMP threads (the other core busy) and 0.75 ms with one."""
    import faiss

    faiss.omp_set_num_threads(1)


class PassageIndex:
    """The index's content in memory, with load/save of one generation folder."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.docstore = SimpleDocumentStore()
        self.vectors = PassageVectorStore.empty(settings.embed.dimension)
        self.bm25 = None  # a BM25Retriever, or None while there are no passages
        self.bm25_ids: list[str] = []  # passage id of each BM25 row
        self.documents: dict[str, dict[str, Any]] = {}  # doc_id -> hash, origin, passages
        self.files: dict[str, dict[str, Any]] = {}  # origin path -> size, mtime_ns, sha, doc_ids
        self._bm25_stale = False

    # ---- reading -----------------------------------------------------------------------
    def passage_count(self) -> int:
        return self.vectors.size

    def node(self, passage_id: str) -> TextNode:
        return self.docstore.get_node(passage_id)

    def document_text(self, doc_id: str) -> str:
        return self.docstore.get_document(doc_id).text

    # ---- writing -----------------------------------------------------------------------
    def add_documents(
        self, docs: list[Document], embedder: Embedder, show_progress: bool = False
    ) -> int:
        """Chunk, embed and store documents (replacing any with the same doc_id)."""
        self.remove_documents([d.doc_id for d in docs if d.doc_id in self.documents])
        nodes: list[TextNode] = []
        for doc in docs:
            doc_nodes = chunk_document(doc, self.settings.chunk, embedder.count_tokens)
            nodes.extend(doc_nodes)
            self.documents[doc.doc_id] = {
                "hash": doc.metadata["hash"],
                "text_hash": doc.metadata.get("text_hash", ""),
                "origin": doc.metadata.get("origin", ""),
                "title": doc.metadata.get("title", ""),
                "source": doc.metadata.get("source", doc.doc_id),
                "passages": [n.id_ for n in doc_nodes],
            }
        texts = [embed_text(n.metadata["embed_title"], n.text) for n in nodes]
        vectors = embedder.encode(texts, show_progress=show_progress)
        self.vectors.add_vectors([n.id_ for n in nodes], vectors)
        self.docstore.add_documents(list(docs) + nodes, allow_update=True)
        self._bm25_stale = True
        return len(nodes)

    def remove_documents(self, doc_ids: Iterable[str]) -> list[str]:
        removed = []
        for doc_id in doc_ids:
            entry = self.documents.pop(doc_id, None)
            if entry is None:
                continue
            self.vectors.delete_nodes(entry["passages"])
            for pid in entry["passages"]:
                self.docstore.delete_document(pid, raise_error=False)
            self.docstore.delete_document(doc_id, raise_error=False)
            removed.append(doc_id)
        if removed:
            self._bm25_stale = True
        return removed

    def refresh_bm25(self) -> None:
        """Rebuild BM25 over all passages (bm25s indexes are not incremental; it is fast)."""
        from llama_index.retrievers.bm25 import BM25Retriever

        self._bm25_stale = False
        self.bm25_ids = [pid for entry in self.documents.values() for pid in entry["passages"]]
        if not self.bm25_ids:
            self.bm25 = None
            return
        nodes = [self.docstore.get_node(pid) for pid in self.bm25_ids]
        try:
            with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 when no row has a word
                self.bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=1)
        except ValueError:
            if _has_words(nodes):
                raise
            # Not one searchable word in any passage (only punctuation, numbers, stopwords):
            # bm25s cannot build an empty vocabulary, so every row gets the empty token,
            # which no question ever contains.
            self.bm25 = BM25Retriever(existing_bm25=_wordless_bm25(len(nodes)), similarity_top_k=1)

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
        listed = {pid: doc_id for doc_id, e in self.documents.items() for pid in e["passages"]}
        count = sum(len(e["passages"]) for e in self.documents.values())
        if len(listed) != count:
            return f"{count - len(listed)} passage(s) listed twice"
        vector_ids = self.vectors._node_id_to_faiss_id_map  # our subclass's own map
        if self.vectors.size != count or vector_ids.keys() != listed.keys():
            return f"{self.vectors.size} vectors for {count} passages"
        # the raw stored dicts: `docstore.docs` would rebuild every node object just to look
        stored = self.docstore._kvstore.get_all(collection=self.docstore._node_collection)
        documents = {k for k, v in stored.items() if v.get("__type__") == ObjectType.DOCUMENT}
        if documents != self.documents.keys():
            differ = sorted(documents ^ self.documents.keys())
            return f"the docstore and the documents differ on {differ[0]!r}"
        if len(stored) - len(documents) != count:
            return f"the docstore holds {len(stored) - len(documents)} passages for {count}"
        for pid, doc_id in listed.items():
            node = stored.get(pid)
            if node is None or node.get("__type__") == ObjectType.DOCUMENT:
                return f"passage {pid!r} is not in the docstore"
            if node["__data__"]["metadata"].get("doc_id") != doc_id:
                return f"passage {pid!r} is listed by {doc_id!r} but belongs to another document"
        holders: dict[str, str] = {}
        for origin, entry in self.files.items():
            for doc_id in entry.get("doc_ids", []):
                if doc_id not in self.documents:
                    return f"{origin} lists {doc_id!r}, which is not indexed"
                if holders.setdefault(doc_id, origin) != origin:
                    return f"{doc_id!r} is listed by two files, {holders[doc_id]} and {origin}"
        if not self._bm25_stale and sorted(self.bm25_ids) != sorted(listed):
            return f"{len(self.bm25_ids)} BM25 rows for {count} passages"
        return None

    # ---- persistence -------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        if self._bm25_stale:
            self.refresh_bm25()
        self.docstore.persist(str(folder / "docstore.json"))
        self.vectors.persist(str(folder / "vectors" / "faiss.index"))
        if self.bm25 is not None:
            # The BM25 retriever would also save every node again as its corpus; the
            # docstore already holds them, so only the bm25s matrices and the row order go.
            self.bm25.bm25.save(str(folder / "bm25"))
            (folder / "bm25" / "ids.json").write_text(json.dumps(self.bm25_ids))
        manifest = {
            "format": FORMAT_VERSION,
            "fingerprint": self.settings.index_fingerprint(),
            "embedder": {
                "name": self.settings.embed.model_name,
                "dimension": self.settings.embed.dimension,
            },
            "chunking": self.settings.chunk.__dict__,
            "passages": self.passage_count(),
            "documents": self.documents,
            "files": self.files,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "checksums": checksums(folder),
        }
        write_manifest(folder, manifest)

    @classmethod
    def load(cls, folder: Path, manifest: dict[str, Any], settings: Settings) -> PassageIndex:
        index = cls(settings)
        try:
            _verify_checksums(folder, manifest)
            index.documents = manifest["documents"]
            index.files = manifest["files"]
            index.docstore = SimpleDocumentStore.from_persist_path(str(folder / "docstore.json"))
            vectors_path = str(folder / "vectors" / "faiss.index")
            index.vectors = PassageVectorStore.from_persist_path(vectors_path)
            expected = sum(len(e["passages"]) for e in index.documents.values())
            if manifest.get("passages") != expected:
                raise ValueError(f"the manifest counts {manifest.get('passages')} passages")
            if expected:
                import bm25s
                from llama_index.retrievers.bm25 import BM25Retriever

                bm25 = bm25s.BM25.load(str(folder / "bm25"))
                index.bm25 = BM25Retriever(existing_bm25=bm25, similarity_top_k=1)
                index.bm25_ids = json.loads((folder / "bm25" / "ids.json").read_text())
            problem = index.problem()  # vectors, docstore, BM25 rows and files agree
            if problem:
                raise ValueError(problem)
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


def _has_words(nodes: list[TextNode]) -> bool:
    """Whether BM25's tokenizer (as LlamaIndex's retriever sets it up) finds any word."""
    import bm25s

    tokens = bm25s.tokenize(
        [n.get_content() for n in nodes], stopwords="en", return_ids=False, show_progress=False
    )
    return any(tokens)


def _wordless_bm25(rows: int):
    import bm25s
    from bm25s.tokenization import Tokenized

    bm25 = bm25s.BM25()
    bm25.index(Tokenized(ids=[[0]] * rows, vocab={"": 0}), show_progress=False)
    return bm25
