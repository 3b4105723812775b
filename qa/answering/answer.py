"""Scored sentences -> an `Answer`: the documents' own sentences, quoted and cited, or one
fixed sentence saying the documents do not answer.

The confidence is a logistic model over the reader's `Features`; below the threshold the
answer declines. Otherwise the best sentence is quoted, then up to two more that score nearly
as well and repeat none of the chosen ones; adjacent quotes of one passage become one quote.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from qa.answering.reading import Candidate, Features, Reading
from qa.schema import Answer, Citation, Passage
from qa.settings import AnswerSettings, ConfidenceWeights

DECLINE_TEXT = "The documents do not answer this question."


def compose(
    question: str,
    standalone: str,
    reading: Reading,
    passages: Sequence[Passage],
    settings: AnswerSettings,
) -> Answer:
    """The answer to `question` (searched as `standalone`) from what the reader found in
    `passages` (best first)."""
    if reading.decided is None:
        confidence = confidence_of(reading.features, settings.confidence)
    else:  # a rule decided: the lead of a document, the sentence introducing X
        confidence = float(reading.decided)
    answer = Answer(question=question, standalone_question=standalone, answered=False,
                    text=DECLINE_TEXT, passages=list(passages[: settings.passages]),
                    confidence=round(confidence, 4))
    if not reading.ranked or confidence < settings.threshold:
        return answer
    chosen = reading.ranked if reading.decided else choose(reading.ranked, settings)
    citations = cite(chosen)
    answer.answered = True
    answer.basis = reading.basis if reading.decided else "confidence"
    answer.citations = citations
    if not reading.decided and chosen[0].phrase is not None:
        answer.key_phrase = mark_phrase(citations, chosen[0].phrase)
    answer.text = " ".join(f"{' '.join(c.quote.split())} [{c.n}]" for c in citations)
    return answer


def logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))


def confidence_of(features: Features, weights: ConfidenceWeights) -> float:
    """The calibrated probability that the best sentence answers the question (fitted by
    bench/calibrate_abstention.py)."""
    return logistic(weights.bias + sum(getattr(weights, name) * getattr(features, name)
                                       for name in weights.features()))


def choose(ranked: list[Candidate], s: AnswerSettings) -> list[Candidate]:
    """The best sentence, then up to `max_quotes - 1` runners-up that repeat none of the
    chosen: within `quote_margin` of the best, or `neighbour_margin` for a sentence next to a
    chosen one (it reads as one quote with it, and often holds what the question asks when
    the best sentence only names the topic). A sentence right after a chosen one counts with
    the pair's cosine only if the pair matches better than the chosen one alone; else with
    its own."""
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


def cite(chosen: list[Candidate]) -> list[Citation]:
    """One citation per quote; sentences adjacent in one passage become one quote, unless
    structure parts them (a list marker: quotes hold no Markdown markers)."""
    groups: list[list[Candidate]] = []
    for c in chosen:
        for g in groups:
            if any(o.passage.id == c.passage.id and abs(o.index - c.index) == 1
                   and not between(o, c) for o in g):
                g.append(c)
                break
        else:
            groups.append([c])
    citations = []
    for n, group in enumerate(groups, start=1):
        passage = group[0].passage
        # a lead-in is quoted too
        start = min((c.lead_in if c.lead_in and not between(c.lead_in, c) else c).start
                    for c in group)
        end = max(c.end for c in group)
        quote = passage.text[start - passage.start : end - passage.start]
        citations.append(Citation(n=n, passage=passage, quote=quote,
                                  quote_start=start, quote_end=end))
    return citations


def mark_phrase(citations: list[Citation], phrase: tuple[int, int]) -> str:
    """The key phrase's text, its offsets set on the citation whose quote holds it."""
    start, end = phrase
    for c in citations:
        if c.quote_start <= start < end <= c.quote_end:
            c.phrase_start, c.phrase_end = start, end
            return c.quote[start - c.quote_start : end - c.quote_start]
    return ""


def between(a: Candidate, b: Candidate) -> str:
    """The text between two sentences of a passage, other than white space."""
    first, second = sorted((a, b), key=lambda c: c.start)
    return first.passage.text[first.end - first.passage.start : second.start
                              - first.passage.start].strip()
