"""A BEIR-layout folder -> document-level retrieval metrics for any LlamaIndex retriever.

Layout: `corpus.jsonl` (`_id`, `title`, `text`), `queries*.jsonl` (`_id`, `text`, ...) and
`qrels_<split>.tsv`, `qrels/<split>.tsv` or a lone `qrels.tsv` (query-id, corpus-id, score).

Retrievers return passages; BEIR judges documents, so `DocumentsByMaxScore` ranks each document
by its best passage before LlamaIndex's `RetrieverEvaluator` scores the list. LlamaIndex's own
`BeirEvaluator` is not used: it downloads the data set, needs the `beir` package, prints instead
of returning numbers, and scores a document by its last passage seen rather than its best.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.evaluation import RetrieverEvaluator
from llama_index.core.evaluation.retrieval.metrics import MRR, Recall
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from qa.errors import QAError
from qa.eval.metrics import AtK, mean, ndcg_at_k
from qa.progress import progress_bar

NDCG_K = 10
DEPTH = 100  # documents ranked per query: enough for recall@100


class BadDataset(QAError):
    """A BEIR folder that cannot be read; the message names the file and the problem."""


@dataclass
class BeirDataset:
    folder: Path
    split: str
    qrels_file: Path
    queries: dict[str, str]  # query id -> text, for the judged queries of the split
    qrels: dict[str, dict[str, float]]  # query id -> document id -> graded relevance
    records: dict[str, dict] = field(default_factory=dict)  # query id -> its full JSON line

    @property
    def corpus(self) -> Path:
        return self.folder / "corpus.jsonl"

    @property
    def name(self) -> str:
        return self.folder.resolve().name

    def relevant(self, query_id: str) -> list[str]:
        return [d for d, g in self.qrels.get(query_id, {}).items() if g > 0]

    def corpus_key(self) -> str:
        """`<folder name>-<hash of corpus.jsonl>`: names the cache of this corpus's indexes."""
        digest = hashlib.sha256()
        with open(self.corpus, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return f"{self.name}-{digest.hexdigest()[:12]}"


def is_beir_folder(path: Path) -> bool:
    return path.is_dir() and (path / "corpus.jsonl").is_file()


def qrels_path(folder: Path, split: str) -> Path:
    """The qrels of the split; a lone `qrels.tsv` (one split only, as ClapNQ dev) serves any."""
    for candidate in (folder / f"qrels_{split}.tsv", folder / "qrels" / f"{split}.tsv"):
        if candidate.is_file():
            return candidate
    found = sorted(folder.glob("qrels*.tsv")) + sorted(folder.glob("qrels/*.tsv"))
    if len(found) == 1 and found[0].name == "qrels.tsv":
        return found[0]
    names = ", ".join(str(p.relative_to(folder)) for p in found) or "none"
    raise BadDataset(f'{folder}: no qrels for split "{split}" (found: {names})')


def read_qrels(path: Path) -> dict[str, dict[str, float]]:
    qrels: dict[str, dict[str, float]] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3:
                if line.strip():
                    raise BadDataset(f"{path}:{n}: expected query-id, corpus-id, score")
                continue
            try:
                grade = float(parts[-1])
            except ValueError:
                if n == 1:
                    continue  # the header line
                raise BadDataset(f"{path}:{n}: score is not a number") from None
            qrels.setdefault(parts[0], {})[parts[-2]] = grade
    return qrels


def read_query_records(folder: Path) -> dict[str, dict]:
    records: dict[str, dict] = {}
    files = sorted(folder.glob("queries*.jsonl"))
    if not files:
        raise BadDataset(f"{folder}: no queries*.jsonl")
    for path in files:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    records[str(record["_id"])] = record
                    str(record["text"])
                except (ValueError, KeyError, TypeError):
                    raise BadDataset(f'{path}:{n}: expected {{"_id": ..., "text": ...}}') from None
    return records


def load_beir(folder: str | Path, split: str = "test") -> BeirDataset:
    folder = Path(folder)
    if not is_beir_folder(folder):
        raise BadDataset(f"{folder}: not a BEIR folder (no corpus.jsonl)")
    path = qrels_path(folder, split)
    qrels = read_qrels(path)
    records = read_query_records(folder)
    queries = {q: records[q]["text"] for q in qrels if q in records}
    if not queries:
        raise BadDataset(f"{path}: none of its query ids is in queries*.jsonl")
    return BeirDataset(folder, split, path, queries, qrels, records)


class DocumentsByMaxScore(BaseNodePostprocessor):
    """Ranked passages -> ranked documents, each scored by its best passage."""

    limit: int = DEPTH

    @classmethod
    def class_name(cls) -> str:
        return "DocumentsByMaxScore"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        best: dict[str, NodeWithScore] = {}
        for hit in nodes:
            doc_id = hit.node.ref_doc_id or hit.node.node_id
            score = hit.score if hit.score is not None else -math.inf
            if doc_id not in best or score > best[doc_id].score:
                best[doc_id] = NodeWithScore(node=TextNode(id_=doc_id, text=""), score=score)
        ranked = sorted(best.values(), key=lambda h: -h.score)  # stable: ties keep their order
        return ranked[: self.limit]


@dataclass
class DocumentRun:
    """One system's document rankings for a data set's queries, and their metrics."""

    metrics: dict[str, float]
    rankings: dict[str, list[str]]  # query id -> document ids, best first
    short_lists: int  # queries that got fewer than DEPTH documents from a larger corpus


def passage_depth(passages: int, documents: int, depth: int = DEPTH) -> int:
    """Passages to fetch so that ranking documents by their best passage usually yields `depth`
    documents: three times the average passages per document, times `depth`."""
    per_doc = passages / max(documents, 1)
    return max(depth, min(passages, math.ceil(3 * per_doc * depth)))


def evaluate_documents(
    retriever: BaseRetriever,
    dataset: BeirDataset,
    corpus_size: int,
    progress: str | None = None,
) -> DocumentRun:
    """nDCG@10, recall@10, recall@100 and MRR@10 over the documents the retriever ranks."""
    evaluator = RetrieverEvaluator(
        metrics=[
            AtK(metric=Recall(), k=10),
            AtK(metric=Recall(), k=DEPTH),
            AtK(metric=MRR(), k=10),
        ],
        retriever=retriever,
        node_postprocessors=[DocumentsByMaxScore(limit=DEPTH)],
    )
    per_metric: dict[str, list[float]] = {}
    rankings: dict[str, list[str]] = {}
    short = 0
    for query_id, text in progress_bar(list(dataset.queries.items()), progress, "query"):
        result = evaluator.evaluate(query=text, expected_ids=dataset.relevant(query_id))
        ranked = result.retrieved_ids
        rankings[query_id] = ranked
        short += len(ranked) < min(DEPTH, corpus_size)
        scores = dict(result.metric_vals_dict)
        scores[f"ndcg@{NDCG_K}"] = ndcg_at_k(ranked, dataset.qrels[query_id], NDCG_K)
        for name, value in scores.items():
            per_metric.setdefault(name, []).append(value)
    order = [f"ndcg@{NDCG_K}", "recall@10", f"recall@{DEPTH}", "mrr@10"]
    metrics = {name: mean(per_metric.get(name, [])) for name in order}
    return DocumentRun(metrics, rankings, short)
