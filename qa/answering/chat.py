"""A question in a conversation -> what to search for it; no language model, no index.

A follow-up ("What did he say?", "How did the US respond to them?", "Why?") leans on the
turns before it. Without an LLM to rewrite it, two searches are fused:

    alone     the question, its personal pronouns replaced by the person the last answer
              names (he/she/him/his/her -> "Jens Stoltenberg"), and "it" as the subject of a
              verb of saying or acting by the body the last question names ("the UK Foreign
              Office")
    joined    the last earlier questions joined with it

    passage score = a * score(alone) + (1 - a) * score(joined)

where a, how self-contained the question is, falls with fewer content words, with pronouns
(at most `ChatSettings.resolved_alone` once resolved), and with follow-up openers ("and",
"what about", "why"). Sentences are scored against both searches with the same weights.
`Answer.standalone_question` is the joined search, or the question alone when it stands alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from qa.answering.retrieve import WeightedQuery
from qa.schema import Answer
from qa.settings import ChatSettings
from qa.text import english
from qa.text.english import QuestionFacts


@dataclass(frozen=True)
class Turn:
    """An earlier question, with its answer when known."""

    question: str
    answer: Answer | None = None


@dataclass(frozen=True)
class Resolution:
    """What the later steps need of the conversation for one question."""

    resolved: str  # the question with its pronouns replaced
    standalone: str  # what was searched, as one text
    queries: tuple[WeightedQuery, ...]  # the resolved question first
    facts: QuestionFacts  # of the resolved question


def self_containedness(facts: QuestionFacts) -> float:
    """How well a question stands alone, in [0.2, 1]."""
    score = min(1.0, facts.content_words / 2)
    if facts.anaphora:
        score *= 0.5
    if facts.opener:
        score *= 0.6
    return max(0.2, score)


def resolve(
    question: str, turns: Sequence[Turn], settings: ChatSettings | None = None
) -> Resolution:
    """What to search for `question` after `turns` (oldest first)."""
    settings = settings or ChatSettings()
    turns = [t for t in turns if t.question.strip()][-settings.context_turns:]
    if not turns:
        return Resolution(question, question, (WeightedQuery(question, 1.0),),
                          english.read_question(question))
    last = turns[-1]
    quotes = tuple(c.quote for c in last.answer.citations) if last.answer else ()
    person = next(filter(None, map(english.last_person, quotes)), None) or english.last_person(
        last.question
    )
    resolved = question
    if settings.resolve_pronouns:
        resolved = english.resolve_it(
            english.resolve_pronouns(question, person), english.asked_about(last.question)
        )
    facts = english.read_question(resolved)
    alone = self_containedness(facts)
    if resolved != question:  # a name put in for a pronoun still leans on the earlier turns
        alone = min(alone, settings.resolved_alone)
    if alone >= 1.0:
        return Resolution(resolved, resolved, (WeightedQuery(resolved, 1.0),), facts)
    joined = " ".join([*(t.question for t in turns), resolved])
    return Resolution(
        resolved=resolved,
        standalone=joined,
        queries=(WeightedQuery(resolved, alone), WeightedQuery(joined, 1.0 - alone)),
        facts=replace(facts, key_words=facts.key_words + tuple(english.key_words(joined))),
    )
