"""The systems `qa eval --baselines` compares, each a LlamaIndex retriever over the same corpus.

- qa: our fused retriever with the configured dense weight;
- BM25 only and dense only: the same index and retriever with the weight at 0 and 1 (fused
  score = coverage, resp. cosine, over candidates that include the full BM25, resp. FAISS, top
  n, so the rankings are BM25's and dense search's own);
- LlamaIndex default: `VectorStoreIndex` over the same documents with its default
  `SentenceSplitter` and the same MiniLM through `HuggingFaceEmbedding`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import Document

from qa.answering.llama import LiveRetriever

CACHE_ROOT = Path(".cache") / "eval"  # relative to where `qa eval` runs, as index/ is

QA = "qa"
BM25_ONLY = "BM25 only"
DENSE_ONLY = "dense only"
LLAMAINDEX_DEFAULT = "LlamaIndex default"


@dataclass
class System:
    """A named way to rank passages: `retriever(k)` returns a LlamaIndex retriever of k."""

    name: str
    retriever: Callable[[int], BaseRetriever]
    passages: int  # how many passages (nodes) its index holds
    words_per_passage: float
    embedded: int = 0  # passages embedded to open it in this run (0: all from the cache)


def weighted(engine, dense_weight: float) -> Callable[[int], BaseRetriever]:
    """Our retriever over the engine's index with another dense weight."""
    settings = replace(engine.settings.retrieve, dense_weight=dense_weight)
    return lambda k: LiveRetriever(engine.nodes, k, settings)


def engine_systems(engine, baselines: bool) -> list[System]:
    """qa itself, and with `baselines` BM25 only and dense only, over the engine's index."""
    n = len(engine.index)
    words = _mean_words(engine.index.passage_texts())
    systems = [System(QA, engine.as_retriever, n, words, engine.last_report.passages_embedded)]
    if baselines:
        systems.append(System(BM25_ONLY, weighted(engine, 0.0), n, words))
        systems.append(System(DENSE_ONLY, weighted(engine, 1.0), n, words))
    return systems


def engine_documents(engine) -> list[Document]:
    """The engine's documents as LlamaIndex's BEIR convention has them: text, title."""
    docs = []
    for doc_id, entry in sorted(engine.index.documents.items()):
        text = engine.index.document_text(doc_id)
        docs.append(Document(id_=doc_id, text=text, metadata={"title": entry.title}))
    return docs


def llamaindex_embedding():
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from qa.models.embed import model_path

    return HuggingFaceEmbedding(model_name=str(model_path()), device="cpu")


def llamaindex_config() -> dict:
    from llama_index.core import __version__
    from llama_index.core.node_parser import SentenceSplitter

    splitter = SentenceSplitter()
    return {
        "llama_index_core": __version__,
        "splitter": [splitter.chunk_size, splitter.chunk_overlap],
        "model": "all-MiniLM-L6-v2",
    }


def corpus_fingerprint(documents: list[Document]) -> str:
    digest = hashlib.sha256()
    for doc in documents:
        digest.update(json.dumps([doc.doc_id, doc.metadata.get("title"), doc.text]).encode())
    return digest.hexdigest()[:12]


def llamaindex_system(documents: list[Document], folder: Path, show_progress: bool) -> System:
    """LlamaIndex's default pipeline over the documents, its storage persisted in `folder`
    (one folder per configuration), so a second run over the same corpus embeds nothing."""
    from llama_index.core import StorageContext, VectorStoreIndex, load_index_from_storage

    config = llamaindex_config()
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    store = folder / f"llamaindex-{key}"
    embed_model = llamaindex_embedding()
    built = not (store / "docstore.json").is_file()
    if not built:
        context = StorageContext.from_defaults(persist_dir=str(store))
        index = load_index_from_storage(context, embed_model=embed_model)
    else:
        index = VectorStoreIndex.from_documents(
            documents, embed_model=embed_model, show_progress=show_progress
        )
        tmp = store.with_name(store.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        index.storage_context.persist(persist_dir=str(tmp))
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        tmp.rename(store)
    nodes = list(index.docstore.docs.values())
    return System(
        LLAMAINDEX_DEFAULT,
        lambda k: index.as_retriever(similarity_top_k=k),
        len(nodes),
        _mean_words(n.get_content() for n in nodes),
        len(nodes) if built else 0,
    )


def _mean_words(texts: Iterable[str]) -> float:
    counts = [len(t.split()) for t in texts]
    return sum(counts) / len(counts) if counts else 0.0
