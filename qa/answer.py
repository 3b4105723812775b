"""Retrieved passages -> an `Answer`: the documents' own sentences, quoted and cited, or one
fixed sentence saying the documents do not answer.

No extractive-QA or reranking model can be had offline, so every sentence of the top passages
is scored against the question with absolute signals that mean the same from one question to
the next (see `AnswerSettings` for the weights):

    cosine    the question's embedding cosine with the sentence, or (less a discount) with the
              sentence read after the one before it, quoted too when that clearly wins
              (sentences are embedded in one batch per question, best first by the cheap
              signals below, and cached by text)
    lexical   the share of the question's IDF-weighted terms that the sentence holds; terms the
              corpus lacks count with the largest IDF, so they lower every sentence alike
    context   the same share over the sentence together with its neighbours
    passage   the fused retrieval score of the sentence's passage
    type      the sentence holds what the question word asks for: a number ("how many"), a
              date ("when"), a name ("who", "where"); 0.5 when the question asks for no type

The best sentence is quoted, then up to two more that score nearly as well and repeat none of
the chosen ones; adjacent quotes of one passage become one quote.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from qa.embed import Embedder, SentenceVectors
from qa.index import PassageIndex
from qa.retrieve import LexicalScorer
from qa.schema import Answer, Citation, Passage
from qa.settings import AnswerSettings
from qa.terms import (
    Terms,
    counted_words,
    coverage,
    expected_type,
    key_words,
    lower_words,
    role_asked,
    role_neighbours,
    type_match,
)

DECLINE_TEXT = "The documents do not answer this question."


@dataclass(frozen=True)
class WeightedQuery:
    """A text searched on behalf of the question, and its share of the evidence."""

    text: str
    weight: float = 1.0


@dataclass
class Candidate:
    """One sentence of a retrieved passage, with its evidence."""

    passage: Passage
    index: int  # position of the sentence in its passage
    start: int  # document offsets
    end: int
    text: str
    lexical: float = 0.0
    context: float = 0.0
    focus: float = 0.5  # see `focus_coverage`
    type_match: float = 0.5
    heading: bool = False  # a title, heading or caption line rather than a sentence
    cosine: float = 0.0  # with the searches, weighted as they are
    support: float = 0.0  # with the search it matches best (a follow-up: alone or joined)
    lead_in: Candidate | None = None  # the sentence before, when the two read together match best
    score: float = 0.0
    own_cosine: float = 0.0  # the sentence's cosine alone, not read after the one before
    vector: np.ndarray | None = field(default=None, repr=False)

    @property
    def reading(self) -> str:
        """The sentence as it is read and quoted: after its lead-in, when it has one."""
        return f"{self.lead_in.text} {self.text}" if self.lead_in else self.text


FRAGMENT_WORDS = 4
LONG_QUESTION = 20  # words; longer questions count as this long in the confidence
_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")


def _continues(gap: str, text: str) -> bool:
    """The sentence `text` is a piece of the one before it (same paragraph)."""
    if _BREAK.search(gap):
        return False
    return text[:1].islower() or len(text.split()) <= FRAGMENT_WORDS or not any(
        ch.isalpha() for ch in text
    )


def _is_heading(text: str, before: str, after: str) -> bool:
    """A line of its own without closing punctuation: a title, heading or caption."""
    starts_line = not before.strip() or before.rstrip(" \t").endswith("\n")
    ends_line = not after.strip() or after.lstrip(" \t").startswith("\n")
    closed = text.rstrip().endswith((".", "!", "?", "”", '"', "’", "'"))
    return starts_line and ends_line and not closed


def focus_coverage(
    weights: dict[str, float], known: dict[str, float], title: set[str], tokens: set[str]
) -> float:
    """The share of the question's terms in `tokens`, over the terms the corpus holds (`known`,
    with the question's names and numbers) less those of the passage's title. 0 when every
    term beyond the title is one the corpus lacks (it asks for what is never mentioned); 0.5
    when the title holds them all (nothing to tell)."""
    focus = {t: w for t, w in known.items() if t not in title}
    if focus:
        return coverage(focus, tokens)
    return 0.0 if any(t not in title for t in weights) else 0.5


def cheap_score(c: Candidate, s: AnswerSettings) -> float:
    """The sentence score without its embedding cosine."""
    return (s.w_lexical * c.lexical + s.w_context * c.context + s.w_passage * c.passage.score
            + s.w_type * c.type_match - s.heading_penalty * c.heading)


def sentence_score(c: Candidate, s: AnswerSettings) -> float:
    return cheap_score(c, s) + s.w_cosine * c.cosine


def logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))


def confidence_features(question: str, ranked: Sequence[Candidate], asked: float) -> list[float]:
    """What the confidence is computed from, in the order of `confidence_weights`. Each means
    the same in a corpus of one article and of a million passages; retrieval scores do not (a
    paraphrase's own words, absent from the corpus, lower BM25 coverage everywhere), so they are
    left out:

    cosine   the best sentence's embedding cosine with the question (for a follow-up, with the
             search it matches best: the question alone or joined to the earlier ones)
    gap      its score less the median score of the sentences embedded for the question (an
             answer stands out from its neighbours; on-topic text that does not answer is flat)
    focus    the IDF-weighted share of the question's terms in it and its neighbouring
             sentences, over the terms the corpus holds and the question's names and numbers
             (so "What did Germany say?" scores low where Germany is never named), less those
             in its passage's title: every passage of a document shares the document's topic,
             so only the rest of the question tells whether this one answers it
    asked    0 when the question asks for something the best sentence does not name: what a
             "how many" question counts ("tanks", where it counts 127,000 "troops"), or whose
             role a "who is the R of X" question asks for ("Russian President" for the
             president of Ukraine), else 1 (`Answerer.asked_for`)
    length   the question's words / `LONG_QUESTION` (at most 1): a long question shares more
             words with on-topic text, which lifts the cosine of sentences that do not answer
             it, and asks more of one sentence (the fit weighs it negatively)
    """
    length = min(len(question.split()), LONG_QUESTION) / LONG_QUESTION
    if not ranked:
        return [0.0, 0.0, 0.0, asked, length]
    best = ranked[0]
    median = float(np.median([c.score for c in ranked]))
    return [best.support, best.score - median, best.focus, asked, length]


class Answerer:
    """Scores the sentences of retrieved passages and writes the answer."""

    def __init__(
        self,
        index: PassageIndex,
        embedder: Embedder,
        lexical: LexicalScorer,
        settings: AnswerSettings,
        vectors: SentenceVectors | None = None,
    ) -> None:
        self.index = index
        self.settings = settings
        self.terms = Terms(lexical)
        self.vectors = vectors or SentenceVectors(embedder, settings.sentence_cache)

    def evidence(
        self,
        queries: Sequence[WeightedQuery],
        passages: Sequence[Passage],
        avoid: Sequence[str] = (),
    ) -> tuple[list[Candidate], list[float]]:
        """Ranked candidate sentences, and the features the confidence is computed from."""
        candidates = self.score(queries[0].text, queries, passages, avoid)
        asked = self.asked_for(queries[0].text, candidates[0]) if candidates else 1.0
        return candidates, confidence_features(queries[0].text, candidates, asked)

    def asked_for(self, question: str, best: Candidate) -> float:
        """0 when the question asks for something `best` (with its lead-in) does not name, else
        1: what a "how many" question counts ("tanks", where the sentence counts 127,000
        "troops"), or whose role a "who is the R of X" question asks for, when the sentence
        names the role only beside others ("Russian President Vladimir Putin" for "Who is the
        president of Ukraine?"); a sentence that never names the role tells nothing."""
        text = best.reading
        counted = counted_words(question)
        if counted and not self.names(counted, lower_words(text)):
            return 0.0
        role = role_asked(question)
        if role is not None:
            owner = [w for w in role[1] if w.lower() not in self.terms.stopwords]
            near = role_neighbours(text, role[0])
            if len(owner) > 1:
                owner.append(" ".join(owner))  # "United States" ~ "US" 0.80
            if owner and near is not None and not self.names(owner, set(near)):
                return 0.0
        return 1.0

    def names(self, wanted: Sequence[str], words: set[str]) -> bool:
        """Some word of `words` is one of `wanted` or near one by embedding cosine
        (`word_cosine`: "soldiers" ~ "troops" 0.89, "tanks" ~ "troops" 0.54); words rather than
        stems, so a synonym counts; an upper-case word ("US") is never a stopword."""
        stop = self.terms.stopwords
        words = {w for w in words if w[:1].isalpha() and (w.isupper() or w.lower() not in stop)}
        if not words:
            return False
        if {w.lower() for w in words} & {w.lower() for w in wanted}:
            return True
        wanted_vecs, word_vecs = self.vectors.encode(wanted, sorted(words))
        return float((word_vecs @ wanted_vecs.T).max()) >= self.settings.word_cosine

    def confidence(self, features: Sequence[float]) -> float:
        """The calibrated probability that the best sentence answers the question: a logistic
        model over `confidence_features`, fitted by bench/calibrate_abstention.py."""
        s = self.settings
        return logistic(s.confidence_bias + sum(w * x for w, x in zip(s.confidence_weights,
                                                                      features)))

    def answer(
        self,
        question: str,
        standalone: str,
        queries: Sequence[WeightedQuery],
        passages: Sequence[Passage],
        avoid: Sequence[str] = (),
    ) -> Answer:
        """The answer to `question` from `passages` (best first), searched as `queries` (the
        question as resolved first). Sentences within `avoid` (the quotes of the previous
        answer) count a little less, so a follow-up moves on."""
        passages = list(passages[: self.settings.passages])
        candidates, features = self.evidence(queries, passages, avoid)
        confidence = self.confidence(features)
        answer = Answer(question=question, standalone_question=standalone, answered=False,
                        text=DECLINE_TEXT, passages=passages, confidence=round(confidence, 4))
        if not candidates or confidence < self.settings.threshold:
            return answer
        citations = self.cite(self.choose(candidates))
        answer.answered = True
        answer.citations = citations
        answer.text = " ".join(f"{' '.join(c.quote.split())} [{c.n}]" for c in citations)
        return answer

    # ---- scoring -----------------------------------------------------------------------
    def candidates(self, passages: Sequence[Passage]) -> list[Candidate]:
        """The sentences of the top passages; a fragment the sentence splitter cut off (it
        starts in lower case, or has at most `FRAGMENT_WORDS` words) stays with the sentence
        before it, so "at 3 p.m." keeps its "ET"."""
        out: list[Candidate] = []
        for passage in passages[: self.settings.scored_passages]:
            spans = self.index.node(passage.id).metadata["sentences"]
            units: list[list[int]] = []
            for a, b in spans:
                text = passage.text[a:b]
                if units and _continues(passage.text[units[-1][1] : a], text):
                    units[-1][1] = b
                else:
                    units.append([a, b])
            for i, (a, b) in enumerate(units):
                c = Candidate(passage, i, passage.start + a, passage.start + b, passage.text[a:b])
                before, after = passage.text[:a], passage.text[b:]
                c.heading = _is_heading(c.text, before, after)
                out.append(c)
        return out

    def score(
        self,
        question: str,
        queries: Sequence[WeightedQuery],
        passages: Sequence[Passage],
        avoid: Sequence[str] = (),
    ) -> list[Candidate]:
        """Candidate sentences with their evidence and score, best first."""
        s = self.settings
        found = self.candidates(passages)
        if not found:
            return []
        weights = self.terms.weights(queries)
        known = self.terms.known(weights, [w for q in queries for w in key_words(q.text)])
        scored = list({c.passage.id: c.passage for c in found}.values())
        tokens = self.terms.tokenize([*(c.text for c in found), *(p.title for p in scored)])
        titles = dict(zip((p.id for p in scored), tokens[len(found):]))
        kind = expected_type(question)
        question_words = lower_words(question)
        for i, c in enumerate(found):
            c.lexical = coverage(weights, tokens[i])
            near = [tokens[j] for j in (i - 1, i, i + 1)
                    if 0 <= j < len(found) and found[j].passage is c.passage]
            around = set().union(*near)
            c.context = coverage(weights, around)
            c.focus = focus_coverage(weights, known, titles[c.passage.id], around)
            c.type_match = type_match(kind, c.text, question_words)
            c.score = cheap_score(c, s)
        # Embedding is the costly part: only the sentences best by the cheap signals.
        position = {(c.passage.id, c.index): c for c in found}
        found.sort(key=lambda c: -c.score)
        found = found[: s.embedded_sentences]
        # A sentence is also read after the one before it, which often names its subject
        # ("Non-essential staff ... were ordered to leave" follows "... the embassy in Kyiv");
        # not after a heading, whose few topic words would lift every first sentence.
        befores = [position.get((c.passage.id, c.index - 1)) for c in found]
        befores = [b if s.window_cosine and b is not None and not b.heading else None
                   for b in befores]
        windows = [f"{b.text} {c.text}" if b else c.text for c, b in zip(found, befores)]
        query_vecs, vecs = self.vectors.encode([q.text for q in queries],
                                               [*(c.text for c in found), *windows])
        sent_vecs = vecs[: len(found)]
        total = sum(q.weight for q in queries) or 1.0
        q_weights = np.asarray([q.weight / total for q in queries], dtype=np.float32)
        own = sent_vecs @ query_vecs.T
        per_query = np.maximum(own, vecs[len(found):] @ query_vecs.T - s.window_discount)
        for c, b, vec, cos, cos_alone, support in zip(
                found, befores, sent_vecs, per_query @ q_weights, own @ q_weights,
                per_query.max(axis=1, initial=0.0)):
            c.vector = vec
            c.cosine = float(cos)
            c.own_cosine = float(cos_alone)
            c.lead_in = b if b is not None and cos > cos_alone + s.lead_in_margin else None
            c.support = float(support)
            c.score = sentence_score(c, s)
            if any(c.text in quote for quote in avoid):
                c.score -= s.quote_margin
        return sorted(found, key=lambda c: -c.score)

    # ---- writing -----------------------------------------------------------------------
    def choose(self, ranked: list[Candidate]) -> list[Candidate]:
        """The best sentence, then up to `max_quotes - 1` runners-up that repeat none of the
        chosen: within `quote_margin` of the best, or `neighbour_margin` for a sentence next to
        a chosen one (it reads as one quote with it, and often holds what the question asks
        when the best sentence only names the topic). A sentence right after a chosen one
        counts with the pair's cosine only if the pair matches better than the chosen one
        alone; else with its own."""
        s = self.settings
        best = ranked[0]
        chosen = [best]
        for c in ranked[1:]:
            if len(chosen) >= s.max_quotes or c.score < best.score - s.neighbour_margin:
                break
            beside = any(o.passage.id == c.passage.id and abs(o.index - c.index) == 1
                         for o in chosen)
            before = next((o for o in chosen
                           if o.passage.id == c.passage.id and o.index == c.index - 1), None)
            score = c.score
            if before is not None and c.cosine <= before.own_cosine:  # the pair adds nothing
                score -= s.w_cosine * (c.cosine - c.own_cosine)
            if score < best.score - (s.neighbour_margin if beside else s.quote_margin):
                continue
            if all(float(c.vector @ o.vector) < s.duplicate_cosine and c.text != o.text
                   for o in chosen):
                chosen.append(c)
        return chosen

    def cite(self, chosen: list[Candidate]) -> list[Citation]:
        """One citation per quote; sentences adjacent in one passage become one quote."""
        groups: list[list[Candidate]] = []
        for c in chosen:
            for g in groups:
                if g[0].passage.id == c.passage.id and any(abs(o.index - c.index) == 1 for o in g):
                    g.append(c)
                    break
            else:
                groups.append([c])
        citations = []
        for n, group in enumerate(groups, start=1):
            passage = group[0].passage
            start = min((c.lead_in or c).start for c in group)  # a lead-in is quoted too
            end = max(c.end for c in group)
            quote = passage.text[start - passage.start : end - passage.start]
            citations.append(Citation(n=n, passage=passage, quote=quote,
                                      quote_start=start, quote_end=end))
        return citations
