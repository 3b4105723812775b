"""Retrieved passages -> their sentences, scored against the question, with the evidence the
answer's confidence is computed from. This is the reader slot: `READERS` names the readers,
`AnswerSettings.reader` picks one, and `Engine.ask` calls it between search and answer.

`SentenceReader` scores every sentence of the top passages with absolute signals that mean the
same from one question to the next (see `AnswerSettings` for the weights):

    cosine    the question's embedding cosine with the sentence, or with `window_cosine` (off)
              the better of it and (less a discount) the sentence read after the one before
              it, quoted too when that clearly wins (sentences are embedded in one batch per
              question, best first by the cheap signals below, and cached by text); the
              embedding is the learned sentence scorer's (qa/models/scorer.py), or with
              `sentence_scorer` off the retrieval embedder's
    lexical   the share of the question's IDF-weighted terms that the sentence holds; terms the
              corpus lacks count with the largest IDF, so they lower every sentence alike
    context   the same share over the sentence together with its neighbours
    passage   the fused retrieval score of the sentence's passage
    match     word by word: for each of the question's words that is not a stopword, its best
              cosine with a token of the sentence (qa/models/maxsim.py), averaged with IDF weights;
              the token vectors come from the run that embeds the sentences (`w_match`,
              off by default: eval/results/token_match.md)

Two kinds of question are read by rule instead (`QuestionFacts.asks`): an overview ("Summarize
the article") gets the lead of the best document; with `definition_rule` (off), a definition
("Who is X?") the sentence introducing X, or a decline when no document the search found names
X. Whether the best sentence says the quantity or the time the question asks for
(`Features.asked`, english.answer_kind; the best of the first few that does is put first) is
one of the confidence's features. A heading, or a sentence that asks, is never the answer.

With `pair_reader` on, the learned reader (qa/models/pair_reader.py) then reads the question with
each of the best `reader_sentences` sentences; its probability that a sentence answers orders them
(`reader_order`) and is the confidence's `answers` feature, and the words it finds answering are the
answer's key phrase.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from qa.answering.reading import Candidate, Features, Reading
from qa.answering.retrieve import WeightedQuery, embedded
from qa.models import maxsim, pair_reader
from qa.models.sentence_vectors import SentenceVectors
from qa.schema import Passage
from qa.settings import AnswerSettings
from qa.storage.index import PassageIndex
from qa.text import english
from qa.text.english import QuestionFacts


class Reader(Protocol):
    def read(
        self,
        facts: QuestionFacts,
        queries: Sequence[WeightedQuery],
        passages: Sequence[Passage],
    ) -> Reading:
        """Score the sentences of `passages` (best first) for the question `facts` reads,
        searched as `queries`."""
        ...


class SentenceReader:
    """Scores sentences by embedding cosine and term coverage."""

    def __init__(
        self,
        index: PassageIndex,
        vectors: SentenceVectors,
        settings: AnswerSettings,
        scored: SentenceVectors | None = None,
    ) -> None:
        """`vectors`: the retrieval embedder's; `scored`: the learned scorer's
        (qa/models/scorer.py), whose cosine scores the sentences when `settings.sentence_scorer`
        is on."""
        self.index = index
        self.vectors = vectors
        self.scored = scored if scored is not None and settings.sentence_scorer else vectors
        self.settings = settings
        self.stopwords = english.stopwords()

    def read(
        self,
        facts: QuestionFacts,
        queries: Sequence[WeightedQuery],
        passages: Sequence[Passage],
    ) -> Reading:
        length = min(facts.length, self.settings.long_question) / self.settings.long_question
        if facts.asks == "overview" and self.settings.overview_rule and passages:
            return Reading(self.lead(passages[0].doc_id), Features(length=length), True,
                           "opening")
        scored = self.score(facts, queries, passages)
        # a heading names its section, a question asks: neither answers
        ranked = [c for c in scored if not c.heading and not english.is_question(c.text)]
        if not ranked:
            return Reading([], Features(length=length))
        ranked = self.kind_first(facts, ranked)
        if self.settings.pair_reader:
            ranked = self.read_pairs(facts.text, ranked)
        best = ranked[0]
        median = float(np.median([c.score for c in scored]))
        words = best.maxima is not None and best.maxima.size
        features = Features(cosine=best.support, gap=best.score - median, focus=best.focus,
                            asked=self.asked_for(facts, best), length=length,
                            match=best.match if words else 1.0,
                            matched=float(best.maxima.min()) if words else 1.0,
                            embedder_cosine=(self.embedder_cosine(queries, best)
                                             if self.settings.confidence.embedder_cosine
                                             else 0.0),
                            answers=log_odds(max((c.answers for c in ranked
                                                  if c.answers is not None), default=None)))
        if facts.asks == "definition" and self.settings.definition_rule:
            named = self.naming(facts.subject, passages)
            if not named:  # never named where the search looked: nothing introduces it
                return Reading(ranked, features, False)
            intro = next((c for c in named if english.introduces(c.text, facts.subject)), None)
            if intro is not None:
                return Reading([intro], features, True, "introduction")
        return Reading(ranked, features)

    def kind_first(self, facts: QuestionFacts, ranked: list[Candidate]) -> list[Candidate]:
        """For a question asking a quantity or a time (english.answer_kind) whose best sentence
        says none, the best of the next `kind_window` that says one, first."""
        s = self.settings
        if not s.kind_rule or facts.kind is None or english.holds_kind(ranked[0].reading,
                                                                       facts.kind):
            return ranked
        for i, c in enumerate(ranked[1 : s.kind_window], start=1):
            if english.holds_kind(c.reading, facts.kind):
                return [c, *ranked[:i], *ranked[i + 1 :]]
        return ranked

    def read_pairs(self, question: str, ranked: list[Candidate]) -> list[Candidate]:
        """The best `reader_sentences` sentences read by the learned reader, each after the
        sentence before it; with `reader_order`, those first by its probability."""
        s = self.settings
        top = ranked[: s.reader_sentences]
        befores = [c.before.text if c.before is not None else "" for c in top]
        reader = pair_reader.shipped(Path(s.reader_folder) if s.reader_folder
                                     else pair_reader.FOLDER)
        for c, read in zip(top, reader.read(question, list(zip(befores, (c.text for c in top))))):
            c.answers = read.probability
            c.phrase = (c.start + read.phrase[0], c.start + read.phrase[1])
        if s.reader_order:
            top = sorted(top, key=lambda c: -(c.answers or 0.0))
        return [*top, *ranked[s.reader_sentences:]]

    def embedder_cosine(self, queries: Sequence[WeightedQuery], best: Candidate) -> float:
        """`best`'s cosine, as read, with the search it matches best, by the retrieval
        embedder (its vectors of the searches are there from the search)."""
        if self.scored is self.vectors:
            return best.support
        queries = embedded(queries, self.vectors.embedder)
        vector = self.vectors.encode([], [best.reading])[1][0]
        return float(max(float(q.vector @ vector) for q in queries))

    def sentences(self, doc_id: str) -> Iterator[Candidate]:
        """The sentences of a document, in order."""
        for passage_id in self.index.documents[doc_id].passages:
            yield from self.candidates([self.index.passage(passage_id)])

    def lead(self, doc_id: str) -> list[Candidate]:
        """A document's lead: its first sentences, `lead_sentences` or fewer once they hold
        `lead_words` words; not its title, dateline or heading lines (structure, not quoted)."""
        out: list[Candidate] = []
        words = sentences = 0
        for c in self.sentences(doc_id):
            if c.heading:
                if sentences:
                    break  # a heading after the first sentence opens the next section
                continue
            out.append(c)
            words, sentences = words + len(c.text.split()), sentences + 1
            if words >= self.settings.lead_words or sentences >= self.settings.lead_sentences:
                break
        return out

    def naming(self, subject: Sequence[str], passages: Sequence[Passage]) -> list[Candidate]:
        """The sentences naming `subject` of the first document (by the search) that does."""
        for doc_id in dict.fromkeys(p.doc_id for p in passages[: self.settings.scored_passages]):
            named = [c for c in self.sentences(doc_id)
                     if not c.heading and english.names_all(c.text, subject)]
            if named:
                return named
        return []

    def asked_for(self, facts: QuestionFacts, best: Candidate) -> float:
        """0 when the question asks a quantity or a time (english.answer_kind) and `best` (with
        its lead-in) says none, else 1."""
        if self.settings.kind_rule and facts.kind is not None:
            return float(english.holds_kind(best.reading, facts.kind))
        return 1.0

    # ---- scoring -----------------------------------------------------------------------
    def candidates(self, passages: Sequence[Passage]) -> list[Candidate]:
        """The sentences of the top passages; with `join_pieces`, a piece the sentence splitter
        cut off stays with the sentence before it (`english.continues`)."""
        out: list[Candidate] = []
        for passage in passages[: self.settings.scored_passages]:
            units: list[list[int]] = []
            for a, b in self.index.sentence_spans(passage.id):
                if units and self.settings.join_pieces and english.continues(
                        passage.text[units[-1][0] : units[-1][1]],
                        passage.text[units[-1][1] : a], passage.text[a:b]):
                    units[-1][1] = b
                else:
                    units.append([a, b])
            for i, (a, b) in enumerate(units):
                before, after = passage.text[:a], passage.text[b:]
                heading = english.is_structure(passage.text[a:b], before, after)
                if not heading:  # quoted without the Markdown markers at its edges
                    line_start = not before.strip() or before.rstrip(" \t").endswith("\n")
                    x, y = english.markdown_trim(passage.text[a:b], line_start)
                    a, b = a + x, a + y
                c = Candidate(passage, i, passage.start + a, passage.start + b, passage.text[a:b])
                c.heading = heading
                c.before = out[-1] if i > 0 else None
                out.append(c)
        return out

    def score(
        self,
        facts: QuestionFacts,
        queries: Sequence[WeightedQuery],
        passages: Sequence[Passage],
    ) -> list[Candidate]:
        """Candidate sentences with their evidence and score, best first."""
        s = self.settings
        found = self.candidates(passages)
        if not found:
            return []
        weights = self.term_weights(queries)
        known = self.known_terms(weights, facts.key_words)
        scored = list({c.passage.id: c.passage for c in found}.values())
        tokens = self.tokenize([*(c.text for c in found), *(p.title for p in scored)])
        titles = dict(zip((p.id for p in scored), tokens[len(found):]))
        for i, c in enumerate(found):
            c.lexical = coverage(weights, tokens[i])
            near = [tokens[j] for j in (i - 1, i, i + 1)
                    if 0 <= j < len(found) and found[j].passage is c.passage]
            around = set().union(*near)
            c.context = coverage(weights, around)
            c.focus = focus_coverage(weights, known, titles[c.passage.id], around)
            c.score = cheap_score(c, s)
        # Embedding is the costly part: only the sentences best by the cheap signals.
        found.sort(key=lambda c: -c.score)
        found = found[: s.embedded_sentences]
        # A sentence is also read after the one before it, which often names its subject
        # ("Non-essential staff ... were ordered to leave" follows "... the embassy in Kyiv");
        # not after a heading, whose few topic words would lift every first sentence.
        befores = [c.before if s.window_cosine and c.before is not None
                   and not c.before.heading else None for c in found]
        windows = [f"{b.text} {c.text}" if b else c.text for c, b in zip(found, befores)]
        texts = [*(c.text for c in found), *windows]
        if self.scored is self.vectors:
            queries = embedded(queries, self.vectors.embedder)  # a no-op after the search
            query_vecs = np.stack([q.vector for q in queries])
            vecs = self.vectors.encode([], texts)[1]
        else:  # the scorer embeds the searches too, in the same model call
            query_vecs, vecs = self.scored.encode([q.text for q in queries], texts)
        sent_vecs = vecs[: len(found)]
        total = sum(q.weight for q in queries) or 1.0
        q_weights = np.asarray([q.weight / total for q in queries], dtype=np.float32)
        own = sent_vecs @ query_vecs.T
        per_query = np.maximum(own, vecs[len(found):] @ query_vecs.T - s.window_discount)
        maxima = (self.word_maxima(queries[0].text, [*(c.text for c in found), *windows])
                  if s.word_match else None)
        for i, (c, b, vec, cos, cos_alone, support) in enumerate(zip(
                found, befores, sent_vecs, per_query @ q_weights, own @ q_weights,
                per_query.max(axis=1, initial=0.0))):
            c.vector = vec
            c.cosine = float(cos)
            c.own_cosine = float(cos_alone)
            c.lead_in = b if b is not None and cos > cos_alone + s.lead_in_margin else None
            c.support = float(support)
            if maxima is not None:
                weights, alone, after = maxima[0], maxima[1][i], maxima[1][len(found) + i]
                c.maxima = after if c.lead_in else alone
                c.match = float(max(alone @ weights, after @ weights if b else 0.0))
            c.score = sentence_score(c, s)
        return sorted(found, key=lambda c: -c.score)

    def word_maxima(self, question: str, texts: Sequence[str]
                    ) -> tuple[np.ndarray, list[np.ndarray]] | None:
        """The question's word weights and, per text, its word maxima (qa/models/maxsim.py); None
        when the embedder gives no token vectors or the question has no word that counts."""
        states = self.vectors.tokens([question, *texts])
        if states is None:
            return None
        found = maxsim.content_words(question, states[0], self.stopwords)
        if not found:
            return None
        words = maxsim.question_words(states[0], found, [self.word_idf(w) for w, _ in found])
        return words.weights, [maxsim.word_maxima(words, t) for t in states[1:]]

    def word_idf(self, word: str) -> float:
        lexical = self.index.lexical
        if lexical is None:
            return 1.0
        return max((lexical.idf(t) for t in lexical.tokenize([word])[0]), default=0.0)

    # ---- the question's terms ----------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> list[set[str]]:
        lexical = self.index.lexical
        if lexical is None or not texts:
            return [set() for _ in texts]
        return [set(t) for t in lexical.tokenize(texts, sorted(self.stopwords))]

    def term_weights(self, queries: Sequence[WeightedQuery]) -> dict[str, float]:
        """term -> BM25 IDF times the largest weight of a query holding it."""
        out: dict[str, float] = {}
        lexical = self.index.lexical
        for query, tokens in zip(queries, self.tokenize([q.text for q in queries])):
            for t in tokens:
                out[t] = max(out.get(t, 0.0), query.weight * lexical.idf(t))
        return out

    def known_terms(self, weights: dict[str, float], keep: Sequence[str]) -> dict[str, float]:
        """The weights without the terms the corpus lacks, except those in `keep` (names and
        numbers): a paraphrase's own words then do not count against every sentence."""
        kept = set().union(*self.tokenize(keep)) if keep else set()
        vocab = self.index.lexical.vocab if self.index.lexical is not None else {}
        return {t: w for t, w in weights.items() if t in vocab or t in kept}


def log_odds(p: float | None) -> float:
    if p is None:
        return 0.0
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def coverage(weights: dict[str, float], tokens: set[str]) -> float:
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in tokens) / total if total else 0.0


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
            - s.heading_penalty * c.heading)


def sentence_score(c: Candidate, s: AnswerSettings) -> float:
    return cheap_score(c, s) + s.w_cosine * c.cosine + s.w_match * c.match


# The readers a setting can name; another is one class with `read` plus its entry here, made
# as `make_reader` makes one: (index, vectors, settings, scored).
READERS: dict[str, Callable[..., Reader]] = {
    "sentences": SentenceReader,
}


def make_reader(
    index: PassageIndex,
    vectors: SentenceVectors,
    settings: AnswerSettings,
    scored: SentenceVectors | None = None,
) -> Reader:
    """`READERS[settings.reader]`, given the retrieval embedder's sentence vectors and the
    learned scorer's (`scored`, None when it is off)."""
    if settings.reader not in READERS:
        raise ValueError(f"unknown reader {settings.reader!r}; use one of: {', '.join(READERS)}")
    return READERS[settings.reader](index, vectors, settings, scored)
