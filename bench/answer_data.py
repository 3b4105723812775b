"""Question sets for the answer benchmarks, read into one shape, and the engines that answer
them (used by bench/ablate.py).

    seed set   eval/*.jsonl: {"id", "question", "answers": [phrases], "answerable", "history"};
               a sentence is right when it holds an answer phrase (case-insensitive)
    ClapNQ     queries.jsonl with "answerable", long-form "answers" and "gold_passage"; a
               sentence is right when it comes from the gold passage and at least half of its
               content words are in an answer

Reproduces no figure of its own: the question sets bench/ablate.py reads (it stays in bench/
while it imports it). Its time is part of ablate's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from qa import Engine
from qa.schema import Answer
from qa.settings import ConfidenceWeights, Settings

ROOT = Path(__file__).resolve().parent.parent
# ../shared beside the checkout (a worktree one folder deeper: its parent's)
CLAPNQ = next((up / "shared" / "bench" / "clapnq" for up in ROOT.parents
               if (up / "shared" / "bench" / "clapnq").is_dir()),
              ROOT.parent / "shared" / "bench" / "clapnq")
CLAPNQ_INDEX = ROOT / ".cache" / "bench" / "clapnq-index"  # built on first use
_TOKEN = re.compile(r"\w+")
_STOP = {"the", "a", "an", "of", "in", "on", "and", "or", "to", "is", "was", "are", "were", "by",
         "for", "as", "at", "with", "that", "this", "it", "its", "from", "be", "has", "have"}


@dataclass
class Question:
    id: str
    question: str
    answers: list[str]
    answerable: bool
    history: list[str] = field(default_factory=list)
    gold: str | None = None  # ClapNQ: the doc_id of the passage holding the answer

    def right(self, text: str, doc_id: str | None = None) -> bool:
        """Whether a quoted text answers the question."""
        if not self.answerable:
            return False
        if self.gold is None:
            low = text.lower()
            return any(a.lower() in low for a in self.answers)
        if doc_id != self.gold:
            return False
        words = [w for w in _TOKEN.findall(text.lower()) if w not in _STOP]
        answer_words = set(_TOKEN.findall(" ".join(self.answers).lower()))
        return bool(words) and sum(w in answer_words for w in words) / len(words) >= 0.5

    def answer_right(self, answer: Answer) -> bool:
        """Declined when unanswerable; else a quote is right."""
        if not self.answerable or not answer.answered:
            return self.answerable == answer.answered
        if self.gold is None:
            return self.right(" ".join(c.quote for c in answer.citations))
        return any(self.right(c.quote, c.passage.doc_id) for c in answer.citations)


def read_question_set(path: str | Path) -> list[Question]:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [Question(r["id"], r["question"], r.get("answers", []), bool(r["answerable"]),
                     r.get("history", [])) for r in rows]


def read_clapnq(folder: Path = CLAPNQ) -> list[Question]:
    rows = [json.loads(line) for line in (folder / "queries.jsonl").read_text().splitlines()]
    return [Question(r["_id"], r["text"], r.get("answers") or [], bool(r["answerable"]),
                     gold=r.get("gold_passage")) for r in rows]


def open_clapnq(index_dir: Path = CLAPNQ_INDEX) -> Engine:
    """ClapNQ's corpus, indexed once into `index_dir` and reused."""
    return Engine.open(sources=[CLAPNQ / "corpus.jsonl"], index_dir=index_dir)


def open_seeds(index_dir: Path) -> Engine:
    return Engine.open(sources=[ROOT / "seeds"], index_dir=index_dir)


SQUAD = ROOT / "eval" / "squad"
SQUAD2 = ROOT / "eval" / "squad2"


def squad_questions(part: str, articles: Sequence[str] | None = None,
                    root: Path = SQUAD) -> list[Question]:
    """A part of eval/squad (or of `root`, eval/squad2): "fit" (weights may be chosen on it) or
    "validation" (choices); with `articles`, only the questions of those articles."""
    from qa.eval.beir import load_beir

    dataset = load_beir(root / part)
    return [Question(qid, str(r["text"]), list(r.get("answers") or []),
                     bool(r.get("answerable", True))) for qid, r in dataset.records.items()
            if articles is None or r.get("article") in articles]


def open_squad(part: str, root: Path = SQUAD) -> Engine:
    """The part's index as `qa eval eval/squad` (or `root`) builds it (the same cache folder)."""
    from qa.eval.baselines import CACHE_ROOT
    from qa.eval.beir import load_beir

    dataset = load_beir(root / part)
    return Engine.open(sources=[dataset.corpus],
                       index_dir=ROOT / CACHE_ROOT / dataset.corpus_key() / "qa-index")


FEATURES = ConfidenceWeights().features()  # the confidence's features, in order


def with_settings(engine: Engine, settings: Settings) -> Engine:
    """The engine answering with `settings` from now on (its index and sentence cache kept)."""
    from qa.engine import Snapshot

    snap = engine.snapshot()
    engine.settings = replace(settings, store=engine.settings.store)
    engine._snapshot = Snapshot(snap.index, engine.settings, snap.vectors, snap.generation,
                                snap.scored)
    return engine
