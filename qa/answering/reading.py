"""What the reader makes of a question: its candidate sentences with their evidence
(`Candidate`), the features the answer's confidence is computed from (`Features`), and the
`Reading` that holds both (qa/answering/read.py makes them, qa/answering/answer.py reads them)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qa.schema import Passage


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
    heading: bool = False  # a title, heading or caption line rather than a sentence
    cosine: float = 0.0  # with the searches, weighted as they are
    support: float = 0.0  # with the search it matches best (a follow-up: alone or joined)
    before: Candidate | None = field(default=None, repr=False)  # the passage's sentence before
    lead_in: Candidate | None = None  # the sentence before, when the two read together match best
    score: float = 0.0
    own_cosine: float = 0.0  # the sentence's cosine alone, not read after the one before
    match: float = 0.0  # the IDF-weighted mean of `maxima` (alone or after its lead-in)
    maxima: np.ndarray | None = field(default=None, repr=False)  # see qa/models/maxsim.py
    vector: np.ndarray | None = field(default=None, repr=False)
    answers: float | None = None  # the learned reader's probability that it answers (or unread)
    phrase: tuple[int, int] | None = None  # the words that answer, as document offsets

    @property
    def reading(self) -> str:
        """The sentence as it is read and quoted: after its lead-in, when it has one."""
        return f"{self.lead_in.text} {self.text}" if self.lead_in else self.text


@dataclass(frozen=True)
class Features:
    """What the answer's confidence is computed from; each means the same in a corpus of one
    article and of a million passages (retrieval scores do not: a paraphrase's own words,
    absent from the corpus, lower BM25 coverage everywhere). `ConfidenceWeights` has a weight
    of the same name for each."""

    # the best sentence's cosine with the question (a follow-up: with the search it matches best)
    cosine: float = 0.0
    # its score less the median score of the sentences embedded for the question (an answer
    # stands out from its neighbours; on-topic text that does not answer is flat)
    gap: float = 0.0
    # the IDF-weighted share of the question's terms in it and its neighbouring sentences,
    # over the terms the corpus holds and the question's names and numbers (so "What did
    # Germany say?" scores low where Germany is never named), less those of its passage's
    # title: every passage of a document shares its topic, so only the rest of the question
    # tells whether this one answers it
    focus: float = 0.0
    # 0 when the question asks a quantity ("how many") or a time ("when") and the best
    # sentence says none (english.answer_kind, holds_kind); else 1
    asked: float = 1.0
    # the question's words / `long_question` (at most 1): a long question shares more words
    # with any sentence, so the same cosine means less
    length: float = 0.0
    # its word maxima (with its lead-in; qa/models/maxsim.py): their IDF-weighted mean (`Candidate.
    # match`) and the lowest (a sentence on the topic that lacks a word the question hinges
    # on, "parental" leave, scores low); 1 when the question has no word that counts, the
    # embedder gives no token vectors, or the match is off
    match: float = 1.0
    matched: float = 1.0
    # the best sentence's cosine with the question by the retrieval embedder, as `cosine` is
    # by the learned scorer (the same as `cosine` when the scorer is off); 0, not computed,
    # while its weight is 0 (validation let it go: eval/results/ablation.md)
    embedder_cosine: float = 0.0
    # the learned reader's log-odds for the sentence it finds most likely to answer, of those it
    # read (qa/models/pair_reader.py), so that a weight of 1 and nothing else makes the
    # confidence its probability; 0 when it is off
    answers: float = 0.0


@dataclass
class Reading:
    """The candidate sentences, best first, and the confidence's features."""

    ranked: list[Candidate]
    features: Features
    # set when a rule decides rather than the confidence: True to quote `ranked` as it is (a
    # document's lead, the sentence introducing what a definition question asks about),
    # False to decline (that is never named)
    decided: bool | None = None
    basis: str = "confidence"  # the rule that decided: "opening" or "introduction"
