"""What a question asks for, and which of its terms a text holds (for scoring sentences).

The question's terms are weighted by the corpus's BM25 IDF; a term the corpus lacks counts with
the largest IDF, so it lowers every sentence alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from qa.retrieve import LexicalScorer, bm25_idf


class Query(Protocol):
    text: str
    weight: float


# Words that frame a question rather than say what it is about (besides NLTK's stopwords).
_FRAMING = {
    "say", "said", "tell", "told", "describe", "explain", "mention", "mentioned", "according",
    "article", "document", "documents", "text", "report", "reported", "happen", "happened",
    "anything", "something", "thing", "things", "much", "many", "kind", "type", "also",
}
_WORD = re.compile(r"[\w'’-]+")
_NUMBER_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
    r"hundred|hundreds|thousand|thousands|million|millions|billion|dozen|dozens|half|several"
)
_MONTHS = (
    r"january|february|march|april|may|june|july|august|september|october|november|december|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|yesterday|today|tomorrow|week|"
    r"month|year|century|decade"
)
_HAS_NUMBER = re.compile(rf"\d|\b({_NUMBER_WORDS})\b", re.IGNORECASE)
_HAS_DATE = re.compile(rf"\b(1\d{{3}}|20\d{{2}}|{_MONTHS})s?\b", re.IGNORECASE)
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w’'-]*")


def expected_type(question: str) -> str | None:
    """What the question word asks for: "number", "date", "name" or None."""
    q = question.lower()
    if re.search(r"\bhow (many|much|long|old|far|big|large|tall|often)\b|\bwhat (number|"
                 r"percentage|amount)\b", q):
        return "number"
    if re.search(r"\bwhen\b|\bwhat (year|date|day|time)\b|\bwhich (year|day)\b", q):
        return "date"
    if re.search(r"\b(who|whom|whose|where)\b", q):
        return "name"
    return None


# Words after "how many" that end what is counted: verbs, prepositions, "there".
_COUNT_END = {
    "do", "does", "did", "are", "is", "were", "was", "have", "has", "had", "can", "could", "will",
    "would", "should", "must", "may", "might", "been", "be", "there", "in", "on", "of", "per",
    "for", "at", "to", "from", "with", "by",
}
# Counts that say nothing of what is counted ("how many times", "how many people").
_GENERIC_COUNTS = {"times", "people", "years", "months", "weeks", "days", "hours", "minutes",
                   "seconds", "ones", "kinds", "types", "more", "other", "others"}
_HOW_MANY = re.compile(r"\bhow many\s+([^?.!]*)", re.IGNORECASE)


def counted_words(question: str) -> list[str]:
    """What a "how many" question counts: its first two words up to a verb or preposition,
    without names and generic counts. "How many American soldiers could be sent?" ->
    ["soldiers"]; [] for any other question."""
    m = _HOW_MANY.search(question)
    if not m:
        return []
    words = []
    for w in _WORD.findall(m.group(1))[:2]:
        if w.lower() in _COUNT_END:
            break
        words.append(w)
    return [w for w in words if w[:1].islower() and w not in _GENERIC_COUNTS]


# "Who is the president of Ukraine?", "Who was the coach of the Browns?", "Who is Russia's top
# diplomat?": the holder of a role (its last word) of something.
_ROLE_OF = re.compile(
    r"^\W*who(?:\s+(?:is|was|are|were)|'s|’s)\s+(?:the\s+)?(?:(?:current|present|new|first|last|"
    r"former)\s+)?((?:[\w-]+\s+){0,2}?[\w-]+)\s+of\s+(?:the\s+)?([^?.!]+?)\W*$", re.IGNORECASE,
)
_ROLE_OWNER = re.compile(
    r"^\W*who\s+(?:is|was|are|were)\s+([\w-]+(?:\s+[\w-]+)?)['’]s?\s+((?:[\w-]+\s+){0,2}?[\w-]+)"
    r"\W*$", re.IGNORECASE,
)
ROLE_WINDOW = 4  # words either side of the role word that may name whose role it is


def role_asked(question: str) -> tuple[str, list[str]] | None:
    """The role word and its owner's words of a "who is the R of X" or "who is X's R"
    question: "Who is the president of Ukraine?" -> ("president", ["Ukraine"]); else None."""
    m = _ROLE_OF.match(question)
    if m:
        role, owner = m.group(1), m.group(2)
    else:
        m = _ROLE_OWNER.match(question)
        if not m:
            return None
        owner, role = m.group(1), m.group(2)
    return role.split()[-1].lower(), _WORD.findall(owner)


def role_neighbours(text: str, role: str) -> list[str] | None:
    """The words within `ROLE_WINDOW` of each mention of `role` in `text` ("Russian President
    Vladimir Putin plans" for "president"), or None when `text` never names the role."""
    words = _WORD.findall(text)
    at = [i for i, w in enumerate(words) if w.lower() in (role, f"{role}s")]
    if not at:
        return None
    near = {j for i in at for j in range(i - ROLE_WINDOW, i + ROLE_WINDOW + 1)
            if 0 <= j < len(words) and j != i}
    return [words[j] for j in sorted(near)]


def type_match(kind: str | None, sentence: str, question_words: set[str]) -> float:
    """1 if the sentence holds the kind of thing asked for, 0 if not, 0.5 when none is asked."""
    if kind is None:
        return 0.5
    if kind == "number":
        return float(bool(_HAS_NUMBER.search(sentence)))
    if kind == "date":
        return float(bool(_HAS_DATE.search(sentence)))
    names = {m.group(0).lower() for m in _NAME.finditer(sentence)}
    return float(bool(names - question_words))


def lower_words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


def key_words(question: str) -> list[str]:
    """Names and numbers of the question: capitalised words past the first, words with digits."""
    words = _WORD.findall(question)
    return [
        w for i, w in enumerate(words)
        if any(c.isdigit() for c in w) or (i > 0 and w[:1].isupper())
        or (len(w) > 1 and w.isupper())
    ]


class Terms:
    """The question's terms, weighted by the corpus's BM25 IDF, and their share in a text."""

    def __init__(self, lexical: LexicalScorer) -> None:
        from llama_index.core.utils import globals_helper

        self.lexical = lexical
        self.stopwords = set(globals_helper.stopwords) | _FRAMING
        bm25 = lexical.bm25
        self.vocab: dict[str, int] = bm25.vocab_dict if bm25 is not None else {}
        self.n_docs = lexical.n_docs if bm25 is not None else 0

    def tokenize(self, texts: Sequence[str]) -> list[set[str]]:
        if not texts:
            return []
        import bm25s

        tokens = bm25s.tokenize(
            list(texts),
            stemmer=getattr(self.lexical, "stemmer", None),
            token_pattern=getattr(self.lexical, "token_pattern", r"(?u)\b\w\w+\b"),
            stopwords=list(self.stopwords),
            return_ids=False,
            show_progress=False,
        )
        return [set(t) for t in tokens]

    def idf(self, token: str) -> float:
        df = self.lexical.doc_freq[self.vocab[token]] if token in self.vocab else 0.0
        return float(bm25_idf(np.asarray(df), max(self.n_docs, 1)))

    def weights(self, queries: Sequence[Query]) -> dict[str, float]:
        """term -> IDF times the largest weight of a query holding it."""
        out: dict[str, float] = {}
        for query, tokens in zip(queries, self.tokenize([q.text for q in queries])):
            for t in tokens:
                out[t] = max(out.get(t, 0.0), query.weight * self.idf(t))
        return out

    def known(self, weights: dict[str, float], keep: Sequence[str]) -> dict[str, float]:
        """The weights without the terms the corpus lacks, except those in `keep` (names and
        numbers): a paraphrase's own words then do not count against every sentence."""
        kept = set().union(*self.tokenize(keep)) if keep else set()
        return {t: w for t, w in weights.items() if t in self.vocab or t in kept}


def coverage(weights: dict[str, float], tokens: set[str]) -> float:
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in tokens) / total if total else 0.0
