"""Every format becomes documents and passages whose offsets, sizes and metadata are exact."""

from __future__ import annotations

import pytest
from conftest import SEED_FILE
from make_files import JSONL_RECORDS, LONG_TITLE, PDF_TITLE

from qa.ingest.chunk import embed_text, split_sentences
from qa.settings import ChunkSettings

EXPECTED_DOCS = {
    "lighthouse.txt", "ferry.txt", "terns.md", "cider.html", "glacier.pdf", "rec-1", "rec-2", "3",
}  # fmt: skip


def passages_of(engine, doc_id: str):
    return [engine.passage(pid) for pid in engine.index.documents[doc_id].passages]


def all_passages(engine):
    return [p for doc_id in engine.index.documents for p in passages_of(engine, doc_id)]


def test_every_format_is_indexed(formats_engine):
    report = formats_engine.last_report
    assert report.errors == [] and report.notices == []
    assert set(formats_engine.index.documents) == EXPECTED_DOCS
    assert sorted(report.added) == sorted(EXPECTED_DOCS)


def test_offsets_are_exact_for_every_passage(formats_engine):
    passages = all_passages(formats_engine)
    assert len(passages) >= len(EXPECTED_DOCS)
    for p in passages:
        assert formats_engine.document_text(p.doc_id)[p.start : p.end] == p.text, p.id


@pytest.mark.parametrize("name", ["lighthouse.txt", "ferry.txt"])
def test_txt_offsets_index_the_files_own_text(formats_engine, formats_dir, name):
    own = (formats_dir / name).read_bytes().decode("utf-8")  # no newline translation
    passages = passages_of(formats_engine, name)
    assert passages
    for p in passages:
        assert own[p.start : p.end] == p.text
    if name == "ferry.txt":  # Windows line endings are kept, not translated
        assert "\r\n" in "".join(p.text for p in passages)


def test_seed_offsets_index_the_files_own_text(seed_engine):
    own = SEED_FILE.read_bytes().decode("utf-8")
    passages = all_passages(seed_engine)
    assert len(passages) > 5
    for p in passages:
        assert own[p.start : p.end] == p.text


@pytest.mark.parametrize("engine_name", ["formats_engine", "seed_engine"])
def test_passages_cover_the_text_in_whole_sentences(request, engine_name):
    """Nothing is dropped between passages, and a passage starts and ends at sentence
    boundaries unless the sentence itself is longer than a passage may be."""
    engine = request.getfixturevalue(engine_name)
    limits = ChunkSettings()
    for doc_id in engine.index.documents:
        text = engine.document_text(doc_id)
        passages = passages_of(engine, doc_id)
        cursor = 0
        for p in passages:
            assert text[cursor : p.start].strip() == "", f"text lost before {p.id}"
            cursor = p.end
        assert text[cursor:].strip() == ""
        for sent in split_sentences(text):
            cut = [p for p in passages if p.start < sent.end and sent.start < p.end]
            whole = [p for p in cut if p.start <= sent.start and sent.end <= p.end]
            if len(text[sent.start : sent.end].split()) <= limits.max_words:
                assert len(whole) == 1 and len(cut) == 1, (doc_id, text[sent.start : sent.end])
            else:
                assert len(cut) >= 2  # an over-long sentence is cut into several passages


@pytest.mark.parametrize("engine_name", ["formats_engine", "seed_engine"])
def test_passages_fit_the_embedder_window(request, engine_name):
    """<= 120 words, and title + passage within the model's 256 word pieces (with [CLS]/[SEP]),
    counted by the model's own tokenizer: nothing is silently truncated."""
    engine = request.getfixturevalue(engine_name)
    model = getattr(engine.embedder, "indexer", engine.embedder).model  # sentence-transformers
    assert model.max_seq_length == 256
    for p in all_passages(engine):
        node = engine.index.node(p.id)
        assert len(p.text.split()) <= ChunkSettings().max_words
        embedded = embed_text(node.metadata["embed_title"], p.text)
        n_pieces = len(model.tokenizer(embedded)["input_ids"])
        assert n_pieces <= model.max_seq_length, (p.id, n_pieces)


def test_long_sentence_and_long_title_are_cut_not_truncated(formats_engine):
    passages = passages_of(formats_engine, "terns.md")
    long_pieces = [p for p in passages if "headland number" in p.text]
    assert len(long_pieces) >= 3
    joined = " ".join(p.text for p in long_pieces)
    assert "headland number 0 " in joined and "headland number 29 " in joined
    assert "Weddell Sea." in long_pieces[-1].text
    node = formats_engine.index.node(passages[0].id)
    assert node.metadata["title"] == LONG_TITLE  # shown in full
    assert len(node.metadata["embed_title"]) < len(LONG_TITLE)  # clipped for the embedder


def test_html_keeps_visible_text_only(formats_engine):
    text = formats_engine.document_text("cider.html")
    for hidden in ("SCRIPTWORD", "STYLEWORD", "styleword", "NOSCRIPTWORD", "function", "{"):
        assert hidden not in text
    assert "Kingston Black gives a bittersharp juice." in text
    # a line break inside a paragraph of the HTML source is a space, as a browser shows it
    assert "fully ripe. The juice ferments" in text
    titles = {d["doc_id"]: d["title"] for d in formats_engine.documents()}
    assert titles["cider.html"] == "Orchard Cider Guide"


def test_pdf_pages_and_title(formats_engine, formats_dir):
    passages = passages_of(formats_engine, "glacier.pdf")
    pages = {p.page for p in passages}
    assert pages == {1, 2, 3}
    by_fact = {fact: p for p in passages for fact in ("six scientists", "Morteratsch", "francs")
               if fact in p.text}
    assert by_fact["six scientists"].page == 1
    assert by_fact["Morteratsch"].page == 2
    assert by_fact["francs"].page == 3
    assert all(p.title == PDF_TITLE for p in passages)
    text = formats_engine.document_text("glacier.pdf")
    second = by_fact["Morteratsch"]
    assert text[second.start:second.end] == second.text  # offsets into the document's text
    assert text.index("On the second page") >= by_fact["six scientists"].end


def test_jsonl_ids_and_titles(formats_engine):
    docs = {d["doc_id"]: d for d in formats_engine.documents()}
    assert docs["rec-1"]["title"] == "Honey bees" and docs["rec-1"]["source"] == "Honey bees"
    assert docs["rec-2"]["title"] == "" and docs["rec-2"]["source"] == "rec-2"  # `id`, no title
    assert docs["3"]["title"] == "Tea"  # a number as `_id`
    for record in JSONL_RECORDS:
        doc_id = str(record.get("_id", record.get("id")))
        assert formats_engine.document_text(doc_id) == record["text"]


def test_markdown_title_is_the_heading(formats_engine):
    assert {d["doc_id"]: d["title"] for d in formats_engine.documents()}["terns.md"] == LONG_TITLE


def test_doc_ids_are_paths_under_the_source(tmp_path):
    from qa.ingest.load import discover, doc_id_for

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "deep.txt").write_text("Deep text.")
    (tmp_path / "a" / ".hidden.txt").write_text("Hidden.")
    (tmp_path / "a" / "image.png").write_bytes(b"\x89PNG")
    found = [doc_id_for(f, root) for f, root in discover([tmp_path / "a"])]
    assert found == ["b/deep.txt"]
    single = [doc_id_for(f, root) for f, root in discover([tmp_path / "a" / "b" / "deep.txt"])]
    assert single == ["deep.txt"]
