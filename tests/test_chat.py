"""Follow-up questions resolved against the earlier turns, in Python and in `qa chat`."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import ROOT, SEEDS

from qa.answering.answer import DECLINE_TEXT
from qa.answering.chat import Turn, resolve
from qa.answering.chat import self_containedness as _self_containedness
from qa.text.english import asked_about, read_question, resolve_it, resolve_pronouns


def self_containedness(question: str) -> float:
    return _self_containedness(read_question(question))


def quoted(answer) -> str:
    return " ".join(c.quote for c in answer.citations).lower()


def test_self_containedness_falls_for_follow_ups():
    assert self_containedness("What did Russia demand?") == 1.0
    assert self_containedness("How did the US respond to them?") < 1.0
    assert self_containedness("Why?") < self_containedness("How did the US respond to them?")


def test_pronouns_resolve_to_the_person_of_the_last_answer():
    assert resolve_pronouns("What did he say?", "Jens Stoltenberg") == (
        "What did Jens Stoltenberg say?"
    )
    assert resolve("What did Russia demand?", []).standalone == "What did Russia demand?"


def test_resolving_needs_no_index():
    follow_up = resolve("Why?", [Turn("What did Russia demand?")])
    assert follow_up.standalone == "What did Russia demand? Why?"
    assert [q.text for q in follow_up.queries] == ["Why?", "What did Russia demand? Why?"]
    assert follow_up.queries[0].weight < 0.5 < follow_up.queries[1].weight
    assert follow_up.facts.opener and follow_up.facts.text == "Why?"


def test_follow_up_with_a_pronoun_for_a_person(seed_engine):
    answer = seed_engine.ask("What did he say?", history=["Who is NATO's Secretary-General?"])
    assert answer.standalone_question == ("Who is NATO's Secretary-General? "
                                          "What did Jens Stoltenberg say?")
    assert any("Stoltenberg said" in p.text for p in answer.passages[:2])
    assert answer.answered
    assert "stoltenberg said" in quoted(answer)


@pytest.mark.parametrize(
    "question,actor",
    [("What did the UK Foreign Office say on Saturday?", "the UK Foreign Office"),
     ("What did Russia demand?", "Russia"),
     ("What did the United States send to Ukraine last week?", "the United States"),
     ("Who is the US Secretary of State?", None),
     ("What did Jens Stoltenberg say?", None)],
)
def test_what_an_earlier_question_asked_about(question, actor):
    assert asked_about(question) == actor


def test_it_resolves_only_as_the_subject_of_an_act():
    assert resolve_it("What else did it announce?", "the UK Foreign Office") == (
        "What else did the UK Foreign Office announce?"
    )
    assert resolve_it("When did it happen?", "Russia") == "When did it happen?"
    assert resolve_it("When did he say it?", "Russia") == "When did he say it?"
    assert resolve_it("What did it say?", None) == "What did it say?"


def test_follow_up_with_it_for_a_body(seed_engine):
    answer = seed_engine.ask("What else did it announce?",
                             history=["What did the UK Foreign Office say on Saturday?"])
    assert answer.standalone_question.endswith("What else did the UK Foreign Office announce?")
    assert answer.answered, answer.confidence
    assert "british embassy staff and their dependents would be withdrawn" in quoted(answer)


def test_follow_up_with_a_pronoun_for_a_thing(seed_engine):
    answer = seed_engine.ask("How did the US respond to them?", history=["What did Russia demand?"])
    assert "Russia demand" in answer.standalone_question
    assert answer.answered
    assert "impossible" in quoted(answer) or "in writing" in quoted(answer)


def test_bare_why_follows_the_earlier_question(seed_engine):
    answer = seed_engine.ask(
        "Why?", history=["What did the State Department do to the embassy in Kyiv?"]
    )
    assert answer.answered
    assert "abundance of caution" in quoted(answer) or "severely affected" in quoted(answer)


def test_history_of_answers_equals_history_of_questions(seed_engine):
    first = seed_engine.ask("Who is the Kremlin spokesman?")
    by_answer = seed_engine.ask("What did he call the information?", history=[first])
    by_text = seed_engine.ask("What did he call the information?",
                              history=["Who is the Kremlin spokesman?"])
    assert by_answer.standalone_question == by_text.standalone_question
    assert [c.quote for c in by_answer.citations] == [c.quote for c in by_text.citations]


def test_follow_up_quotes_are_exact(seed_engine):
    answer = seed_engine.ask("What did he say?", history=["Who is the Kremlin spokesman?"])
    assert answer.answered and answer.citations
    for c in answer.citations:
        assert seed_engine.document_text(c.passage.doc_id)[c.quote_start : c.quote_end] == c.quote


def test_unanswerable_follow_up_is_declined(seed_engine):
    answer = seed_engine.ask("How did Germany react to them?", history=["What did Russia demand?"])
    assert not answer.answered
    assert answer.text == DECLINE_TEXT
    assert answer.passages


def test_self_contained_question_ignores_history(seed_engine):
    alone = seed_engine.ask("When did the State Department reduce the embassy staff?")
    after = seed_engine.ask("When did the State Department reduce the embassy staff?",
                            history=["Who leads NATO?"])
    assert after.standalone_question == alone.standalone_question
    assert [c.quote for c in after.citations] == [c.quote for c in alone.citations]


@pytest.mark.parametrize("history", [["", "  "], ["???"]])
def test_odd_history_is_tolerated(seed_engine, history):
    answer = seed_engine.ask("Who is the Kremlin spokesman?", history=history)
    assert answer.answered


def test_qa_chat_keeps_history_until_reset(seed_index_dir):
    stdin = ("Who is NATO's Secretary-General?\nWhat did he say?\n\n/reset\nWhat did he say?\n"
             "/quit\nNever read\n")
    done = subprocess.run(
        [sys.executable, "-m", "qa.faces.cli", "chat", "--index", str(seed_index_dir),
         "--source", str(SEEDS)],
        input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    turns = out.split("\n\n")
    assert "Stoltenberg" in turns[0]
    assert re.search(r"^\[1\] 000_56b9276ed6e05626\.txt \(chars \d+-\d+\)$", turns[0], re.M)
    assert "(searched: Who is NATO's Secretary-General? What did Jens Stoltenberg say?)" in turns[1]
    assert "(conversation reset)" in out
    after_reset = out.split("(conversation reset)")[1]
    assert "Stoltenberg say?" not in after_reset
    assert "Never read" not in out


def test_qa_chat_ends_at_end_of_input(seed_index_dir):
    done = subprocess.run(
        [sys.executable, "-m", "qa.faces.cli", "chat", "--index", str(seed_index_dir),
         "--source", str(SEEDS)],
        input="What did Germany say?\n", capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert DECLINE_TEXT in done.stdout
    assert "Closest passages:" in done.stdout


def test_who_is_he_is_answered_by_the_sentence_introducing_the_person(seed_engine):
    answer = seed_engine.ask("Who is he?", history=["What did Stoltenberg say about the alliance?"])
    assert answer.answered, answer.confidence
    assert "NATO Secretary-General Jens Stoltenberg" in answer.text
