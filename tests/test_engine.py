"""The engine over time: reopening embeds nothing; add, update, remove; settings rebuild;
the right passage for seed questions; the retriever inside LlamaIndex."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time

import pytest
from conftest import SEEDS

from qa import Engine
from qa.models.embed import SentenceTransformerEmbedder as Embedder
from qa.settings import ChunkSettings, Settings

QUESTIONS = ["What did Russia demand?", "How many troops has Russia deployed?", "Who is Peskov?"]

NEW_TEXT = """Harbour news

The new harbour crane lifts forty tonnes and was delivered by barge on Tuesday. \
Dock workers say it halves the time needed to unload a container ship.
"""

CHANGED_TEXT = """Harbour news

The harbour crane broke down on Friday, and repairs will take three weeks. \
Ships are being sent to the northern quay until the crane works again.
"""


@pytest.fixture
def embedded(monkeypatch) -> list[list[str]]:
    """Every list of texts the real embedder is asked to encode during the test."""
    calls: list[list[str]] = []
    encode = Embedder.encode

    def counting(self, texts, *args, **kwargs):
        calls.append(list(texts))
        return encode(self, texts, *args, **kwargs)

    monkeypatch.setattr(Embedder, "encode", counting)
    return calls


def ranking(engine: Engine, question: str) -> list[tuple[str, float]]:
    return [(p.id, round(p.score, 6)) for p in engine.retrieve(question, k=5)]


def test_reopening_an_unchanged_index_embeds_nothing(seed_index_dir, seed_engine, embedded):
    before = {q: ranking(seed_engine, q) for q in QUESTIONS}
    embedded.clear()  # the questions themselves go through encode_queries, not here
    reopened = Engine.open(sources=[SEEDS], index_dir=seed_index_dir)
    assert embedded == []
    assert reopened.last_report.passages_embedded == 0
    assert not reopened.last_report.changed
    assert len(reopened.index) == len(seed_engine.index)
    assert {q: ranking(reopened, q) for q in QUESTIONS} == before


def test_the_index_describes_itself(seed_index_dir, seed_engine):
    current = (seed_index_dir / "CURRENT").read_text().strip()
    db = sqlite3.connect(seed_index_dir / current / "qa.sqlite")
    meta = {key: json.loads(value) for key, value in db.execute("SELECT key, value FROM meta")}
    assert meta["embedder"] == {"name": Settings().embed.model_name, "dimension": 384}
    assert meta["chunking"]["max_words"] == ChunkSettings().max_words
    row = db.execute("SELECT record FROM documents WHERE doc_id = ?",
                     ("000_56b9276ed6e05626.txt",)).fetchone()
    entry = json.loads(row[0])
    assert len(entry["hash"]) == 32
    (passages,) = db.execute("SELECT count(*) FROM passages").fetchone()
    assert len(entry["passages"]) == passages == len(seed_engine.index)
    db.close()


def test_add_update_remove(seed_copy, tmp_path, embedded):
    index_dir = tmp_path / "index"
    engine = Engine.open(sources=[seed_copy], index_dir=index_dir)
    seed_passages = len(engine.index)
    seed_texts = set(engine.index.passage_texts())
    embedded.clear()

    new_file = seed_copy / "harbour.txt"
    new_file.write_text(NEW_TEXT, encoding="utf-8")
    report = engine.add([new_file])
    assert report.added == ["harbour.txt"] and report.updated == []
    assert len(embedded) == 1 and all("crane" in t or "Dock" in t for t in embedded[0])
    assert engine.retrieve("How heavy a load does the new crane lift?", k=1)[0].doc_id == (
        "harbour.txt"
    )

    # a changed file is re-embedded alone, found by the next open of the folder
    embedded.clear()
    new_file.write_text(CHANGED_TEXT, encoding="utf-8")
    engine = Engine.open(sources=[seed_copy], index_dir=index_dir)
    report = engine.last_report
    assert report.updated == ["harbour.txt"] and report.added == [] and report.removed == []
    assert report.passages_embedded == len(engine.index.documents["harbour.txt"].passages)
    assert [t for call in embedded for t in call if t in seed_texts] == []
    assert all("forty tonnes" not in engine.index.node(p).text
               for p in engine.index.documents["harbour.txt"].passages)
    top = engine.retrieve("How long will the crane repairs take?", k=1)[0]
    assert top.doc_id == "harbour.txt" and "three weeks" in top.text

    # remove by doc_id, persisted
    assert engine.remove(["harbour.txt", "no-such-doc"]) == ["harbour.txt"]
    assert len(engine.index) == seed_passages
    reopened = Engine.open(sources=None, index_dir=index_dir)
    assert "harbour.txt" not in reopened.index.documents
    assert len(reopened.index) == seed_passages
    assert all(p.doc_id != "harbour.txt" for p in reopened.retrieve("crane repairs", k=10))


def test_deleted_file_is_removed_and_unchanged_touch_embeds_nothing(seed_copy, tmp_path, embedded):
    index_dir = tmp_path / "index"
    (seed_copy / "harbour.txt").write_text(NEW_TEXT, encoding="utf-8")
    Engine.open(sources=[seed_copy], index_dir=index_dir)
    embedded.clear()

    seed = seed_copy / "000_56b9276ed6e05626.txt"
    seed.write_bytes(seed.read_bytes())  # new mtime, same content
    engine = Engine.open(sources=[seed_copy], index_dir=index_dir)
    assert embedded == [] and not engine.last_report.changed

    (seed_copy / "harbour.txt").unlink()
    engine = Engine.open(sources=[seed_copy], index_dir=index_dir)
    assert engine.last_report.removed == ["harbour.txt"]
    assert embedded == []
    assert set(Engine.open(sources=None, index_dir=index_dir).index.documents) == {seed.name}


def test_changed_chunk_settings_rebuild(seed_copy, tmp_path, formats_dir):
    index_dir = tmp_path / "index"
    default = Engine.open(sources=[seed_copy], index_dir=index_dir)
    default.add([formats_dir / "lighthouse.txt"])  # from elsewhere: a rebuild keeps it too
    small = Settings(chunk=ChunkSettings(min_words=20, max_words=40))
    engine = Engine.open(sources=[seed_copy], index_dir=index_dir, settings=small)
    assert engine.last_report.rebuilt
    assert set(engine.index.documents) == set(default.index.documents)
    assert len(engine.index) > len(default.index)
    assert engine.last_report.passages_embedded == len(engine.index)
    assert all(len(engine.index.node(p).text.split()) <= 40
               for e in engine.index.documents.values() for p in e.passages)
    back = Engine.open(sources=[seed_copy], index_dir=index_dir)
    assert back.last_report.rebuilt
    assert len(back.index) == len(default.index)
    again = Engine.open(sources=[seed_copy], index_dir=index_dir, rebuild=True)
    assert again.last_report.rebuilt and again.last_report.errors == []
    assert set(again.index.documents) == {"000_56b9276ed6e05626.txt", "lighthouse.txt"}
    assert again.document_text("lighthouse.txt") == default.document_text("lighthouse.txt")


def test_what_another_process_writes_is_read_in(seed_copy, tmp_path):
    """A long-lived engine (`qa serve`) reads in what another one (`qa index`) commits, after
    at most `refresh_seconds`; until then it answers from the snapshot it has."""
    index_dir = tmp_path / "index"
    server = Engine.open(sources=[seed_copy], index_dir=index_dir)
    question = "How much does the new harbour crane lift?"
    assert not server.ask(question).answered
    (tmp_path / "harbour.txt").write_text(NEW_TEXT)
    writer = Engine.open(sources=None, index_dir=index_dir)
    writer.add([tmp_path / "harbour.txt"])
    server._checked = time.monotonic()  # just checked: the snapshot stays for a while
    assert "harbour.txt" not in server.index.documents
    server._checked = time.monotonic() - server.settings.refresh_seconds
    assert "harbour.txt" in server.index.documents
    answer = server.ask(question)
    assert answer.answered and "forty tonnes" in answer.text
    writer.remove(["harbour.txt"])
    time.sleep(server.settings.refresh_seconds)
    assert not server.ask(question).answered
    assert set(server.index.documents) == set(writer.index.documents)


def test_the_app_shows_a_document_as_another_process_rewrote_it(tmp_path):
    from qa.ui.library import Library

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "harbour.txt").write_text(NEW_TEXT)
    server = Engine.open(sources=[docs], index_dir=tmp_path / "index")
    library = Library(server, tmp_path / "data", max_upload_mb=1)
    assert "forty tonnes" in library.doc_text("harbour.txt")
    (docs / "harbour.txt").write_text(CHANGED_TEXT)
    Engine.open(sources=[docs], index_dir=tmp_path / "index")  # `qa index` elsewhere
    time.sleep(server.settings.refresh_seconds)
    assert "broke down" in library.doc_text("harbour.txt")  # not the text kept before
    assert "broke down" in server.ask("What happened to the harbour crane?").text


def test_an_index_of_the_older_json_layout_is_rebuilt(seed_copy, tmp_path):
    """A generation written before SQLite (manifest.json and a JSON docstore) is rebuilt from
    the files it lists, not reported damaged."""
    index_dir = tmp_path / "index"
    built = Engine.open(sources=[seed_copy], index_dir=index_dir)
    documents = set(built.index.documents)
    generation = index_dir / (index_dir / "CURRENT").read_text().strip()
    shutil.rmtree(generation)
    generation.mkdir()
    (generation / "manifest.json").write_text(json.dumps({"format": 5, "fingerprint": "{}"}))
    (generation / "docstore.json").write_text("{}")
    engine = Engine.open(sources=None, index_dir=index_dir)
    assert engine.last_report.rebuilt and engine.last_report.errors == []
    assert set(engine.index.documents) == documents
    assert engine.ask("What did Russia demand?").answered
    assert not generation.exists()


def test_a_folder_and_a_file_from_elsewhere(tmp_path, formats_dir):
    """`add` of a single file takes its name as doc_id and keeps the folder's documents."""
    docs = tmp_path / "docs"
    shutil.copytree(SEEDS, docs)
    engine = Engine.open(sources=[docs], index_dir=tmp_path / "index")
    report = engine.add([formats_dir / "lighthouse.txt"])
    assert report.added == ["lighthouse.txt"]
    assert set(engine.index.documents) == {"000_56b9276ed6e05626.txt", "lighthouse.txt"}
    engine = Engine.open(sources=[docs], index_dir=tmp_path / "index")
    assert "lighthouse.txt" in engine.index.documents  # not pruned: not under the folder


SEED_ANSWERS = [
    ("What did Russia demand?", "never admit Ukraine"),
    ("How many troops has Russia deployed to the region?", "127,000"),
    ("What did the Kremlin call the reports of a pro-Russian leader?", "hysteria"),
    ("When will Biden meet European leaders?", "3 p.m. ET"),
    ("Who is the NATO Secretary-General?", "Jens Stoltenberg"),
    ("Why did the State Department reduce embassy staff?", "severely affected"),
]
SEED_ANSWERS_TOP3 = [
    ("How many US troops could be sent to Eastern Europe?", "1,000 to 5,000"),
    ("What did NATO countries send to Eastern Europe?", "warships and warplanes"),
    ("Who is the Kremlin spokesman?", "Dmitry Peskov"),
    ("What does the UK say Russia plans in Kyiv?", "install a pro-Russian leader"),
]


@pytest.mark.parametrize("question,phrase", SEED_ANSWERS)
def test_seed_question_finds_its_passage_first(seed_engine, question, phrase):
    passages = seed_engine.retrieve(question, k=5)
    assert phrase in passages[0].text
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)


@pytest.mark.parametrize("question,phrase", SEED_ANSWERS_TOP3)
def test_seed_question_finds_its_passage_in_top3(seed_engine, question, phrase):
    assert any(phrase in p.text for p in seed_engine.retrieve(question, k=3))


def test_formats_questions(formats_engine):
    cases = [
        ("How many ships did Marta Vell log?", "lighthouse.txt"),
        ("When does the Sunday ferry leave?", "ferry.txt"),
        ("How far does the arctic tern migrate?", "terns.md"),
        ("How long does cider ferment?", "cider.html"),
        ("How far did the Morteratsch glacier retreat?", "glacier.pdf"),
        ("How long do worker bees live?", "rec-1"),
        ("How do basalt columns form?", "rec-2"),
    ]
    for question, doc_id in cases:
        assert formats_engine.retrieve(question, k=1)[0].doc_id == doc_id, question


def test_retriever_inside_a_llamaindex_query_engine(seed_engine):
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.response_synthesizers.no_text import NoText
    from llama_index.core.schema import NodeWithScore

    retriever = seed_engine.as_retriever(k=3)
    assert isinstance(retriever, BaseRetriever)
    # NoText would look up a default (network) LLM unless given one, so the local mock goes in
    engines = [
        RetrieverQueryEngine(retriever, response_synthesizer=NoText(llm=MockLLM())),
        RetrieverQueryEngine.from_args(retriever, llm=MockLLM(), response_mode="compact"),
    ]
    for query_engine in engines:
        response = query_engine.query("What did Russia demand?")
        nodes = response.source_nodes
        assert len(nodes) == 3 and all(isinstance(n, NodeWithScore) for n in nodes)
        assert "never admit Ukraine" in nodes[0].node.get_content()
        assert nodes[0].node.metadata["doc_id"] == "000_56b9276ed6e05626.txt"
        assert [n.score for n in nodes] == sorted((n.score for n in nodes), reverse=True)
        direct = seed_engine.retrieve("What did Russia demand?", k=3)
        assert [n.node.node_id for n in nodes] == [p.id for p in direct]
