"""The learned reader (qa/models/pair_reader.py): the shipped model reads question and sentence
together, finds the words that answer inside the quote, and a damaged copy is one clear line."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
from conftest import SEEDS

from qa import Engine
from qa.errors import QAError
from qa.models.pair_reader import FOLDER, PairReader, shipped
from qa.settings import Settings

BRAND = "Both tires are Continental Grand Prix 5000, 28 mm wide."
PRESSURE = "I run the front tire at 4.5 bar and the rear at 5 bar on the road bike."
COUNT = ("The latest intelligence assessment from the Ukrainian Defense Ministry indicates that "
         "Russia has now deployed more than 127,000 troops to the region.")
ABOUT = "Russia has denied it is planning an invasion of Ukraine."


def test_the_sentence_that_answers_outscores_the_one_that_is_only_about_it():
    reader = shipped()
    count, about = reader.read("How many troops has Russia deployed near Ukraine?",
                               [("", COUNT), ("", ABOUT)])
    assert count.probability > 4 * about.probability
    staff = ("Non-essential staff and family members were ordered to leave out of an abundance "
             "of caution.")  # about staff leaving, with no number: no answer to "how many"
    assert reader.read("How many US embassy staff left Kyiv?", [("", staff)])[0].probability < 0.1
    assert COUNT[count.phrase[0]:count.phrase[1]] == "127,000"
    brand = reader.read("What brand are my bike tires?", [(PRESSURE, BRAND)])[0]
    assert BRAND[brand.phrase[0]:brand.phrase[1]] == "Continental Grand Prix 5000"
    assert reader.read("anything?", []) == []


@pytest.fixture(scope="module")
def reading_engine(seed_index_dir):
    base = Settings()
    settings = replace(base, answer=replace(base.answer, pair_reader=True))
    return Engine.open(sources=[SEEDS], index_dir=seed_index_dir, settings=settings)


def test_an_answer_names_its_key_phrase_inside_its_quote(reading_engine):
    answer = reading_engine.ask("How many troops has Russia deployed near Ukraine?")
    assert answer.answered and answer.key_phrase
    cited = [c for c in answer.citations if c.phrase_start >= 0]
    assert len(cited) == 1
    c = cited[0]
    text = reading_engine.document_text(c.passage.doc_id)
    assert text[c.phrase_start:c.phrase_end] == answer.key_phrase
    assert c.quote_start <= c.phrase_start < c.phrase_end <= c.quote_end
    assert answer.key_phrase == "127,000"


def test_a_summary_picked_by_rule_has_no_key_phrase(reading_engine):
    answer = reading_engine.ask("Summarize the article")
    assert answer.basis == "opening" and answer.key_phrase == ""
    assert all(c.phrase_start == -1 for c in answer.citations)


@pytest.mark.parametrize("damage", ["truncate", "garble", "record"])
def test_a_damaged_reader_is_one_line_naming_the_file(tmp_path, damage):
    folder = tmp_path / "reader"
    shutil.copytree(FOLDER, folder)
    if damage == "truncate":
        onnx = folder / "reader.onnx"
        onnx.write_bytes(onnx.read_bytes()[:1000])
    elif damage == "garble":
        onnx = folder / "reader.onnx"
        data = bytearray(onnx.read_bytes())
        data[:64] = b"\0" * 64
        onnx.write_bytes(bytes(data))
    else:
        (folder / "reader.json").write_text("{", encoding="utf-8")
    with pytest.raises(QAError) as error:
        PairReader(folder)
    message = str(error.value)
    assert "\n" not in message and str(folder) in message and "reinstall qa" in message


def test_with_the_reader_the_confidence_reads_question_and_sentence_together(seed_index_dir):
    """The reader's confidence (settings.with_reader) declines a question the article is only
    about: it names Lavrov and the Geneva meeting, never what he said after it."""
    from qa.settings import with_reader

    base = Settings()
    engine = Engine.open(sources=[SEEDS], index_dir=seed_index_dir,
                         settings=replace(base, answer=with_reader(base.answer)))
    shipped_engine = Engine.open(sources=[SEEDS], index_dir=seed_index_dir)
    question = "What did Lavrov say after the Geneva meeting?"
    assert shipped_engine.ask(question).answered
    assert not engine.ask(question).answered
    counted = engine.ask("How many troops has Russia deployed near Ukraine?")
    assert counted.answered and counted.key_phrase == "127,000"
