"""Should Milvus hold the BM25 side too? BM25 in Milvus Lite against bm25s, measured on SciFact.

Each SciFact abstract (title + text) is one document; the 300 test queries are scored by
nDCG@10 against the test qrels. For each BM25 it prints nDCG@10, the build time, the median
(p50) and p95 query time, and the time to add one document and have it searchable.

    bm25s           what qa uses: LlamaIndex's `BM25Retriever.from_defaults` (bm25s, English
                    stop words, PyStemmer's English stemmer, Lucene BM25 k1=1.5 b=0.75). Not
                    incremental: adding a document rebuilds the index.
    milvus-english  Milvus's `english` analyzer (stemming + stop words) into a BM25 function
                    field. Milvus Lite 3.2.2 has no such analyzer; the row shows its error.
    milvus-stop     Milvus Lite's standard analyzer (lowercased \\w+) with bm25s's English stop
                    words as a stop filter: the closest to bm25s that Milvus Lite analyzes
                    itself (it has no stemmer filter).
    milvus-stemmed  diagnostic: the text and queries stemmed in Python the way bm25s does,
                    then Milvus Lite's BM25 over them; the gap to bm25s is then the scoring.

The one-document add also checks Milvus Lite's segment-local BM25 statistics: a copy of an
indexed abstract is added, and its score for its own title is compared with the original's.

    python bench/milvus_bm25.py [--data ../shared/bench/scifact] [--queries 300]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

BM25_FIELDS = ("id", "text", "sparse")
TOKEN = re.compile(r"(?u)\b\w\w+\b")  # bm25s's default token pattern


def read_beir(folder: Path, split: str):
    """(doc ids, abstracts "title. text", {query id: text}, {query id: {doc id: grade}})."""
    ids, texts = [], []
    with open(folder / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            ids.append(rec["_id"])
            texts.append(f"{rec.get('title', '')}. {rec['text']}".strip(". "))
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with open(folder / f"qrels_{split}.tsv", encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            qid, did, score = line.rstrip("\n").split("\t")
            qrels[qid][did] = int(score)
    queries = {}
    with open(folder / f"queries_{split}.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["_id"] in qrels:
                queries[rec["_id"]] = rec["text"]
    return ids, texts, queries, qrels


def ndcg_at_10(ranked: list[str], rels: dict[str, int]) -> float:
    """nDCG@10 with linear gain, as pytrec_eval computes it for BEIR."""
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(rels.values(), reverse=True)[:10]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 \
        else values[0]


def run_queries(search, queries: dict[str, str], qrels) -> tuple[float, list[float]]:
    """Mean nDCG@10 and each query's time in ms."""
    scores, times = [], []
    for qid, text in queries.items():
        start = time.perf_counter()
        ranked = search(text)
        times.append((time.perf_counter() - start) * 1000)
        scores.append(ndcg_at_10(ranked, qrels[qid]))
    return statistics.fmean(scores), times


# ---- bm25s, as qa builds it ---------------------------------------------------------------------
def bench_bm25s(ids, texts, queries, qrels) -> dict:
    from llama_index.core.schema import TextNode
    from llama_index.retrievers.bm25 import BM25Retriever

    nodes = [TextNode(id_=i, text=t) for i, t in zip(ids, texts)]
    start = time.perf_counter()
    retriever = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=10)
    build = time.perf_counter() - start

    ndcg, times = run_queries(lambda q: [n.node.id_ for n in retriever.retrieve(q)],
                              queries, qrels)
    start = time.perf_counter()  # bm25s is not incremental: qa rebuilds it on every write
    BM25Retriever.from_defaults(nodes=[*nodes, TextNode(id_="copy", text=texts[0])],
                                similarity_top_k=10)
    add = time.perf_counter() - start
    return {"ndcg@10": ndcg, "build_s": build, "query_p50_ms": percentile(times, 50),
            "query_p95_ms": percentile(times, 95), "add_one_s": add}


# ---- Milvus Lite ----------------------------------------------------------------------------
def stemmed(text: str, stopwords: frozenset[str], stemmer) -> str:
    """The words bm25s would index for `text`, as text: lowercased, stop words out, stemmed."""
    words = [w for w in TOKEN.findall(text.lower()) if w not in stopwords]
    return " ".join(stemmer.stemWords(words))


def create_bm25_collection(client, name: str, analyzer: dict) -> None:
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=256)
    schema.add_field("text", DataType.VARCHAR, max_length=65535, enable_analyzer=True,
                     analyzer_params=analyzer)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                 input_field_names=["text"], output_field_names=["sparse"]))
    index = client.prepare_index_params()
    index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                    params={"bm25_k1": 1.5, "bm25_b": 0.75})  # as bm25s
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")


def bench_milvus(client, name: str, analyzer: dict, ids, texts, queries, qrels,
                 prepare=lambda t: t) -> dict:
    def search(text: str, limit: int = 10) -> list[tuple[str, float]]:
        hits = client.search(name, data=[prepare(text)], anns_field="sparse", limit=limit,
                             output_fields=["id"], search_params={"metric_type": "BM25"})[0]
        return [(h["id"], h["distance"]) for h in hits]

    start = time.perf_counter()
    try:
        create_bm25_collection(client, name, analyzer)
    except Exception as exc:  # noqa: BLE001 - the error is the result
        return {"error": " ".join(str(getattr(exc, "message", exc)).split())}
    for first in range(0, len(ids), 500):
        client.insert(name, [{"id": i, "text": prepare(t)}
                             for i, t in zip(ids[first:first + 500], texts[first:first + 500])])
    client.flush(name)
    client.load_collection(name)
    build = time.perf_counter() - start

    ndcg, times = run_queries(lambda q: [i for i, _ in search(q)], queries, qrels)

    title = texts[0].split(". ")[0]
    original = dict(search(title)).get(ids[0])
    start = time.perf_counter()
    client.insert(name, [{"id": "copy-of-" + ids[0], "text": prepare(texts[0])}])
    inserted = time.perf_counter() - start
    search(title)
    searchable = time.perf_counter() - start
    found = search(title, limit=len(ids) + 1)
    copy = dict(found).get("copy-of-" + ids[0])
    return {"ndcg@10": ndcg, "build_s": build, "query_p50_ms": percentile(times, 50),
            "query_p95_ms": percentile(times, 95), "add_one_s": inserted,
            "add_one_then_search_s": searchable,
            "same_abstract_score": {"indexed": original, "added_copy": copy,
                                    "copy_rank": [i for i, _ in found].index("copy-of-" + ids[0])
                                    if copy is not None else None}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/bench/scifact")
    parser.add_argument("--split", default="test")
    parser.add_argument("--queries", type=int, default=300, help="at most this many queries")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    ids, texts, queries, qrels = read_beir(Path(args.data), args.split)
    queries = dict(list(queries.items())[: args.queries])
    print(f"SciFact {args.split}: {len(ids)} abstracts, {len(queries)} queries", flush=True)

    results = {"bm25s": bench_bm25s(ids, texts, queries, qrels)}
    print("bm25s done", flush=True)

    import bm25s.stopwords
    import Stemmer
    from pymilvus import MilvusClient

    stopwords = frozenset(bm25s.stopwords.STOPWORDS_EN)
    stemmer = Stemmer.Stemmer("english")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        client = MilvusClient(str(Path(tmp) / "bm25.db"))
        results["milvus_lite_start_s"] = time.perf_counter() - start
        variants = {
            "milvus-english": ({"type": "english"}, lambda t: t),
            "milvus-stop": ({"tokenizer": "standard",
                             "filter": [{"type": "stop", "stop_words": sorted(stopwords)}]},
                            lambda t: t),
            "milvus-stemmed": ({"tokenizer": "standard"},
                               lambda t: stemmed(t, stopwords, stemmer)),
        }
        for n, (label, (analyzer, prepare)) in enumerate(variants.items()):
            results[label] = bench_milvus(client, f"bm25_{n}", analyzer, ids, texts, queries,
                                          qrels, prepare)
            print(label, "done", flush=True)
        client.close()

    if args.json:
        print(json.dumps(results, indent=1))
        return
    print(f"\nMilvus Lite client start (in-process server): {results['milvus_lite_start_s']:.2f} s")
    print(f"{'':16}{'nDCG@10':>9}{'build s':>9}{'p50 ms':>9}{'p95 ms':>9}{'add 1 s':>9}")
    for label, row in results.items():
        if not isinstance(row, dict):
            continue
        if "error" in row:
            print(f"{label:16}error: {row['error']}")
            continue
        print(f"{label:16}{row['ndcg@10']:9.4f}{row['build_s']:9.2f}{row['query_p50_ms']:9.1f}"
              f"{row['query_p95_ms']:9.1f}{row['add_one_s']:9.3f}")
        if "same_abstract_score" in row:
            same = row["same_abstract_score"]
            print(f"{'':16}one abstract and its added copy, searched by its title: scores "
                  f"{same['indexed']} and {same['added_copy']} (copy ranked "
                  f"{same['copy_rank']}); add + search {row['add_one_then_search_s']:.3f} s")


if __name__ == "__main__":
    main()
