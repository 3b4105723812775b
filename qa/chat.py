"""A question in a conversation -> what to search, and the answer; no language model.

A follow-up ("What did he say?", "How did the US respond to them?", "Why?") leans on the
turns before it. Without an LLM to rewrite it, two searches are fused:

    alone     the question, its personal pronouns replaced by the person the last answer
              names (he/she/him/his/her -> "Jens Stoltenberg"), and "it" as the subject of a
              verb of saying or acting by the body the last question names ("the UK Foreign
              Office")
    joined    the last earlier questions joined with it

    passage score = a * score(alone) + (1 - a) * score(joined)

where a, how self-contained the question is, falls with fewer content words, with pronouns
(at most RESOLVED_ALONE once resolved), and with follow-up openers ("and", "what about",
"why"). Sentences are scored against both searches with the same weights, and the sentences
the last answer quoted count a little less, so a follow-up moves on.
`Answer.standalone_question` is the joined search, or the question alone when it stands alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qa.answer import WeightedQuery
from qa.schema import Answer, Passage

if TYPE_CHECKING:
    from qa.engine import Snapshot

PERSONAL = {"he", "him", "his", "she", "her", "hers"}
ANAPHORA = PERSONAL | {
    "it", "its", "they", "them", "their", "theirs", "this", "that", "these", "those", "there",
    "then", "such", "one", "ones",
}
_OPENER = re.compile(
    r"^\W*(and|but|so|also|then|what about|how about|why|why not|how come|what else|anything "
    r"else)\b", re.IGNORECASE,
)
_WORD = re.compile(r"[\w'’-]+")
# A person's name: two or more capitalised words ("Jens Stoltenberg", "Dmitry Peskov"), less
# a title before it, and not a place or a body ("Eastern Europe", "White House").
_NAME = re.compile(r"\b[A-Z][a-z’'-]+(?:\s+[A-Z][a-z’'-]+)+\b")
_TITLES = {
    "President", "Secretary", "General", "Minister", "Foreign", "Prime", "Chancellor",
    "Spokesman", "Spokeswoman", "Senator", "Governor", "Mr", "Mrs", "Ms", "Dr", "Sir", "King",
    "Queen", "Pope", "Chief", "Defense", "State", "Kremlin", "Russian", "American", "British",
}
_NOT_PERSON = {
    "Europe", "European", "Eastern", "Western", "Northern", "Southern", "United", "States",
    "Kingdom", "Union", "Nations", "House", "Department", "Office", "Ministry", "Council",
    "Committee", "Party", "Army", "Forces", "Force", "Sea", "Ocean", "Republic", "City",
    "University", "Street", "News", "Times", "Post", "Camp", "Bank", "Company", "Court",
    "Agency", "Service", "Organization", "Administration",
}
_SPEECH = re.compile(r"\b(said|says|told|added|announced|indicated|explained|stated)\b")
_SPEAKER = re.compile(r"\b([A-Z][a-z’'-]+) (?:said|says|added|told|stated)\b")
# "it" as the subject of a verb of saying, deciding or acting ("What else did it announce?")
# stands for the body or country the earlier question asked about; "it" of an event ("When did
# it happen?") or as an object ("When did he say it?") is left alone.
_ACTS = (
    r"say|tell|announce|decide|demand|want|ask|respond|reply|react|plan|propose|claim|call|"
    r"send|deploy|order|agree|deny|warn|threaten|report|offer|accuse|blame|promise|pledge|"
    r"indicate|describe|do|add|urge|approve|reject|withdraw|reduce"
)
_IT_ACTS = re.compile(
    rf"\b(?:did|does|do|has|have|had|will|would|could|can|might|may)\s+(it)\s+(?:also\s+)?"
    rf"(?:{_ACTS})\b", re.IGNORECASE,
)
# A run of capitalised words or acronyms ("the UK Foreign Office", "NATO", "Secretary of State").
_PROPER = re.compile(r"\b(?:(the)\s+)?([A-Z][\w’'-]*(?:\s+(?:of\s+)?[A-Z][\w’'-]*)*)")
_TIME_WORDS = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "January",
    "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December",
}
CONTEXT_TURNS = 2  # earlier questions joined to a follow-up
RESOLVED_ALONE = 0.8  # the most a question with a resolved pronoun weighs alone
SEARCH_DEPTH = 20  # passages per search before fusion


@dataclass
class Turn:
    question: str
    answer: Answer | None = None


@dataclass
class Resolution:
    resolved: str  # the question with personal pronouns replaced
    standalone: str  # what was searched, as one text
    queries: list[WeightedQuery]  # the resolved question first


def _stopwords() -> set[str]:
    from llama_index.core.utils import globals_helper

    return set(globals_helper.stopwords)


def self_containedness(question: str) -> float:
    """How well a question stands alone, in [0.2, 1]."""
    words = [w.lower() for w in _WORD.findall(question)]
    stop = _stopwords()
    content = [w for w in words if w not in stop and w not in ANAPHORA]
    score = min(1.0, len(content) / 2)
    if any(w in ANAPHORA for w in words):
        score *= 0.5
    if _OPENER.match(question):
        score *= 0.6
    return max(0.2, score)


def last_person(text: str) -> str | None:
    """The person a text names: a full name next to a speech verb, else a surname before one,
    else the last full name in it."""
    names = []
    for m in _NAME.finditer(text):
        words = m.group(0).split()
        while words and words[0] in _TITLES:
            words.pop(0)
        if len(words) >= 2 and not _NOT_PERSON.intersection(words):
            names.append((" ".join(words), m))
    for name, m in names:
        if _SPEECH.search(text[max(0, m.start() - 12) : m.end() + 12]):
            return name
    speaker = _SPEAKER.search(text)  # "..., Stoltenberg said."
    if speaker and speaker.group(1) not in _TITLES | _NOT_PERSON:
        return speaker.group(1)
    return names[-1][0] if names else None


def resolve_pronouns(question: str, person: str | None) -> str:
    """Replace he/she/him/his/her with the person's name."""
    if not person:
        return question

    def swap(m: re.Match) -> str:
        word = m.group(0).lower()
        following = question[m.end() :].lstrip()
        possessive = word in ("his", "hers") or (
            word == "her" and following[:1].isalpha() and not following.startswith(("say", "do"))
        )
        return f"{person}’s" if possessive else person

    return re.sub(r"\b(he|him|his|she|her|hers)\b", swap, question, flags=re.IGNORECASE)


def asked_about(question: str) -> str | None:
    """The body, place or country a question names first, with its article ("the UK Foreign
    Office" in "What did the UK Foreign Office say on Saturday?"), or None: its opening word,
    days and months, and people and their posts (he/she stand for those) do not count."""
    for m in _PROPER.finditer(question):
        words = m.group(2).split()
        while words and words[-1] in _TIME_WORDS:
            words.pop()
        if m.start(2) == len(question) - len(question.lstrip()) or not words:
            continue  # the question's first word is capitalised anyway
        if len(words) >= 2 and not _NOT_PERSON.intersection(words):
            continue  # a person or a person's post ("Jens Stoltenberg", "US Secretary of State")
        name = " ".join(words)
        return f"the {name}" if m.group(1) else name
    return None


def resolve_it(question: str, actor: str | None) -> str:
    """Replace "it" as the subject of a verb of saying or acting with `actor`."""
    m = _IT_ACTS.search(question) if actor else None
    if m is None:
        return question
    return f"{question[: m.start(1)]}{actor}{question[m.end(1) :]}"


def resolve(question: str, turns: Sequence[Turn]) -> Resolution:
    """What to search for `question` after `turns` (oldest first)."""
    if not turns:
        return Resolution(question, question, [WeightedQuery(question, 1.0)])
    last = turns[-1]
    quotes = [c.quote for c in last.answer.citations] if last.answer else []
    person = next(filter(None, (last_person(q) for q in quotes)), None) or last_person(
        last.question
    )
    resolved = resolve_it(resolve_pronouns(question, person), asked_about(last.question))
    alone = self_containedness(resolved)
    if resolved != question:  # a name put in for a pronoun still leans on the earlier turns
        alone = min(alone, RESOLVED_ALONE)
    if alone >= 1.0:
        return Resolution(resolved, resolved, [WeightedQuery(resolved, 1.0)])
    earlier = [t.question for t in turns[-CONTEXT_TURNS:]]
    joined = " ".join([*earlier, resolved])
    return Resolution(
        resolved, joined, [WeightedQuery(resolved, alone), WeightedQuery(joined, 1.0 - alone)]
    )


def fused_passages(snapshot: Snapshot, queries: Sequence[WeightedQuery], k: int) -> list[Passage]:
    """Passages of several searches, scored by the weighted sum of their fused scores (a
    passage missing from one search counts with that search's lowest score)."""
    if len(queries) == 1:
        hits = snapshot.retriever.search(queries[0].text, k)
        return [snapshot.passage(h.passage_id, h.score) for h in hits]
    results = [snapshot.retriever.search(q.text, max(k, SEARCH_DEPTH)) for q in queries]
    if not any(results):
        return []
    totals: dict[str, float] = {}
    for query, hits in zip(queries, results):
        floor = hits[-1].score if hits else 0.0
        scores = {h.passage_id: h.score for h in hits}
        for pid in {h.passage_id for r in results for h in r}:
            totals[pid] = totals.get(pid, 0.0) + query.weight * scores.get(pid, floor)
    best = sorted(totals, key=lambda pid: -totals[pid])[:k]
    return [snapshot.passage(pid, totals[pid]) for pid in best]


def prepare(
    snapshot: Snapshot, question: str, history: Sequence[str | Answer] = (), depth: int = 1
) -> tuple[Resolution, list[Passage], tuple[str, ...]]:
    """What to search for `question` after `history` (earlier questions, or Answers), the
    passages found, and the quotes of the last answer. An earlier question given as text is
    answered again (without resolving its own history's pronouns) to find what the new
    question's pronouns refer to; `depth` bounds that."""
    turns = [Turn(h.question, h) if isinstance(h, Answer) else Turn(str(h)) for h in history]
    turns = [t for t in turns if t.question.strip()][-CONTEXT_TURNS:]
    if turns and turns[-1].answer is None and depth > 0:
        earlier = [t.answer or t.question for t in turns[:-1]]
        turns[-1].answer = ask(snapshot, turns[-1].question, earlier, depth - 1)
    resolution = resolve(question, turns)
    passages = fused_passages(snapshot, resolution.queries, snapshot.settings.answer.passages)
    last = turns[-1].answer if turns else None
    avoid = tuple(c.quote for c in last.citations) if last else ()
    return resolution, passages, avoid


def ask(
    snapshot: Snapshot, question: str, history: Sequence[str | Answer] = (), depth: int = 1
) -> Answer:
    """Answer `question` after the earlier turns `history` (oldest first)."""
    resolution, passages, avoid = prepare(snapshot, question, history, depth)
    return snapshot.answerer.answer(question, resolution.standalone, resolution.queries, passages,
                                  avoid)
