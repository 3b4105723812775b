"""`qa eval`: a question set or a BEIR folder -> one table of metrics, a row per system.

Question set (`eval/*.jsonl`, one `{"id", "question", "answers", "answerable", "history"}` a
line): an answer is right when any answer phrase is in its quoted text (the citations' quotes);
an unanswerable question is right when the answer declines; a retrieval hit at k when a phrase is
in one of the top k passages. BEIR folder: document-level nDCG@10, recall@10, recall@100 and
MRR@10 (qa/eval/beir.py); when its queries say whether they are `answerable` (ClapNQ), the engine
also answers every query, which measures abstention.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from qa.errors import QAError
from qa.eval.baselines import (
    CACHE_ROOT,
    LLAMAINDEX_DEFAULT,
    QA,
    System,
    corpus_fingerprint,
    engine_documents,
    engine_systems,
    llamaindex_system,
)
from qa.eval.beir import BeirDataset, evaluate_documents, load_beir, passage_depth
from qa.eval.metrics import abstention, contains_any, hit_at_k, mean, mrr_at_k, percentile
from qa.progress import progress_bar

if TYPE_CHECKING:
    from qa.engine import Engine

QUESTION_COLUMNS = [
    "answers_right",
    "abstention_precision",
    "abstention_recall",
    "hit@1",
    "hit@3",
    "hit@5",
    "mrr@5",
    "latency_p50_ms",
    "latency_p95_ms",
    "words_per_passage",
]
HIT_COLUMNS = ["hit@1", "hit@3", "hit@5", "mrr@5"]
BEIR_COLUMNS = ["ndcg@10", "recall@10", "recall@100", "mrr@10"]
ANSWER_COLUMNS = ["answered", "cites_relevant", "abstention_precision", "abstention_recall"]


class BadQuestionSet(QAError):
    """A question-set file that cannot be read; the message names the line."""


@dataclass
class Question:
    id: str
    question: str
    answers: list[str]
    answerable: bool = True
    history: list[str] = field(default_factory=list)


@dataclass
class EvalReport:
    """What `qa eval` prints: one row of metrics per system, the same columns for each."""

    kind: str  # "questions", "beir" or "parts"
    target: str
    questions: int
    columns: list[str]
    rows: dict[str, dict[str, float | None]]
    split: str | None = None
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M %Z"))
    notes: list[str] = field(default_factory=list)
    embedded: dict[str, int] = field(default_factory=dict)  # passages embedded per index
    row_label: str = "system"  # what a row is: a system, or a part of a held-out evaluation

    def to_dict(self) -> dict:
        return asdict(self)


def read_questions(path: str | Path) -> list[Question]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadQuestionSet(f"{path}: cannot be read ({exc.__class__.__name__})") from None
    questions = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            q = Question(
                id=str(rec.get("id", n)),
                question=str(rec["question"]),
                answers=_strings(rec.get("answers", [])),
                answerable=bool(rec.get("answerable", True)),
                history=_strings(rec.get("history", [])),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise BadQuestionSet(
                f'{path}:{n}: expected {{"id", "question", "answers", "answerable", "history"}}'
            ) from None
        if q.answerable and not q.answers:
            raise BadQuestionSet(f"{path}:{n}: an answerable question needs answer phrases")
        questions.append(q)
    if not questions:
        raise BadQuestionSet(f"{path}: no questions")
    return questions


@dataclass
class Outcome:
    """What the engine did with one question."""

    right: bool  # an answerable question answered with a phrase quoted, or the other declined
    declined: bool
    latency_ms: float
    searched: str  # the question as searched, with its history (`standalone_question`)
    passages: list[tuple[str, str]]  # (id, text) of the passages it came with, best first
    cited: set[str]  # document ids of the citations


def ask_all(engine: Engine, questions: Sequence[Question], progress: bool) -> list[Outcome]:
    """Ask every question after its history and judge the answer."""
    outcomes = []
    for q in progress_bar(questions, "asking" if progress else None, "question"):
        t = time.perf_counter()
        answer = engine.ask(q.question, history=q.history)
        latency = (time.perf_counter() - t) * 1000
        quoted = " ".join(c.quote for c in answer.citations)
        outcomes.append(
            Outcome(
                right=(answer.answered and contains_any(quoted, q.answers))
                if q.answerable
                else not answer.answered,
                declined=not answer.answered,
                latency_ms=latency,
                searched=answer.standalone_question or q.question,
                passages=[(p.id, p.text) for p in answer.passages],
                cited={c.passage.doc_id for c in answer.citations} if answer.answered else set(),
            )
        )
    return outcomes


def hit_scores(
    questions: Sequence[Question], rankings: Sequence[Sequence[tuple[str, str]]]
) -> dict[str, float]:
    """hit@1/3/5 and MRR@5 over the answerable questions; rankings hold (id, text) pairs."""
    scores: dict[str, list[float]] = {name: [] for name in HIT_COLUMNS}
    for q, ranking in zip(questions, rankings):
        if not q.answerable:
            continue
        ranked = [pid for pid, _ in ranking]
        relevant = [pid for pid, text in ranking if contains_any(text, q.answers)]
        for k in (1, 3, 5):
            scores[f"hit@{k}"].append(hit_at_k(ranked, relevant, k))
        scores["mrr@5"].append(mrr_at_k(ranked, relevant, 5))
    return {name: mean(values) for name, values in scores.items()}


def baseline_hits(
    system: System, questions: Sequence[Question], queries: Sequence[str], progress: bool
) -> dict[str, float]:
    """hit@k and MRR of the top 5 passages a system ranks for each (resolved) question, and
    its retrieval latency."""
    retriever = system.retriever(5)
    rankings, latency = [], []
    for query in progress_bar(queries, system.name if progress else None, "question"):
        t = time.perf_counter()
        nodes = retriever.retrieve(query)
        latency.append((time.perf_counter() - t) * 1000)
        rankings.append([(n.node.node_id, n.node.get_content()) for n in nodes])
    row = hit_scores(questions, rankings)
    row["latency_p50_ms"] = percentile(latency, 50)
    row["latency_p95_ms"] = percentile(latency, 95)
    return row


def evaluate_questions(
    engine: Engine,
    questions: Sequence[Question],
    path: str | Path,
    baselines: bool = False,
    progress: bool = False,
) -> EvalReport:
    """Answer and retrieval metrics of a question set (read from `path`) over the engine."""
    outcomes = ask_all(engine, questions, progress)
    systems = engine_systems(engine, baselines)
    if baselines:
        docs = engine_documents(engine)
        cache = CACHE_ROOT / f"documents-{corpus_fingerprint(docs)}"  # keyed by the corpus alone
        systems.append(llamaindex_system(docs, cache, progress))
    searched = [o.searched for o in outcomes]
    rows: dict[str, dict[str, float | None]] = {}
    for system in systems:
        row: dict[str, float | None] = dict.fromkeys(QUESTION_COLUMNS)
        if system.name == QA:
            row.update(hit_scores(questions, [o.passages for o in outcomes]))
        else:
            row.update(baseline_hits(system, questions, searched, progress))
        row["words_per_passage"] = system.words_per_passage
        rows[system.name] = row
    rows[QA].update(answer_scores(questions, outcomes))
    latencies = [o.latency_ms for o in outcomes]
    rows[QA]["latency_p50_ms"] = percentile(latencies, 50)
    rows[QA]["latency_p95_ms"] = percentile(latencies, 95)
    n_right = sum(o.right for q, o in zip(questions, outcomes) if q.answerable)
    n_declined = sum(o.declined for q, o in zip(questions, outcomes) if not q.answerable)
    n_answerable = sum(q.answerable for q in questions)
    notes = [
        f"{n_answerable} answerable, {len(questions) - n_answerable} unanswerable questions; "
        f"{n_right} answered right, {n_declined} of the unanswerable declined",
        "hit@k, MRR@5: answerable questions; qa: the 5 passages its answer came with; the "
        "others: their top 5 for the question as qa searched it (with its history); "
        "latency: qa = Engine.ask, the others = retrieval",
    ]
    return EvalReport(
        "questions",
        str(path),
        len(questions),
        QUESTION_COLUMNS,
        rows,
        notes=notes,
        embedded=embedded_counts(systems),
    )


def evaluate_beir(
    folder: str | Path, split: str = "test", baselines: bool = False, progress: bool = False
) -> EvalReport:
    from qa.engine import Engine

    dataset = load_beir(folder, split)
    cache = CACHE_ROOT / dataset.corpus_key()
    engine = Engine.open(
        sources=[dataset.corpus], index_dir=cache / "qa-index", show_progress=progress
    )
    n_docs = len(engine.index.documents)
    systems = engine_systems(engine, baselines)
    if baselines:
        systems.append(llamaindex_system(engine_documents(engine), cache, progress))
    with_answers = any("answerable" in r for r in dataset.records.values())
    columns = BEIR_COLUMNS + (ANSWER_COLUMNS if with_answers else [])
    rows: dict[str, dict[str, float | None]] = {}
    notes = [
        f"qrels: {dataset.qrels_file.name}; {len(dataset.queries)} judged queries; "
        f"{n_docs} documents, cache {cache}"
    ]
    report = engine.last_report
    if report.errors or report.notices:
        notes.append(
            f"corpus: {len(report.errors)} lines skipped, "
            f"{len(report.notices)} duplicate texts indexed once"
        )
    for system in systems:
        depth = passage_depth(system.passages, n_docs)
        run = evaluate_documents(
            system.retriever(depth), dataset, n_docs, system.name if progress else None
        )
        rows[system.name] = {**dict.fromkeys(columns), **run.metrics}
        if run.short_lists:
            notes.append(
                f"{system.name}: {run.short_lists} queries ranked fewer than 100 "
                f"documents from {depth} passages"
            )
    if with_answers:
        rows[QA].update(beir_answers(engine, dataset, progress))
        marked = [r["answerable"] for r in dataset.records.values() if "answerable" in r]
        notes.append(
            f"qa answered all {len(marked)} queries: answered and cites_relevant (a citation in "
            f"a judged document) are shares of the {sum(map(bool, marked))} answerable ones; "
            f"abstention counts declines of the {len(marked) - sum(map(bool, marked))} marked "
            "answerable: false"
        )
    return EvalReport(
        "beir",
        str(folder),
        len(dataset.queries),
        columns,
        rows,
        split if dataset.qrels_file.name != "qrels.tsv" else None,  # a lone qrels.tsv: no split
        notes=notes,
        embedded=embedded_counts(systems),
    )


def embedded_counts(systems: Sequence[System]) -> dict[str, int]:
    """Passages embedded this run, per index (BM25 only and dense only share qa's)."""
    return {s.name: s.embedded for s in systems if s.name in (QA, LLAMAINDEX_DEFAULT)}


def answer_scores(questions: Sequence[Question], outcomes: Sequence[Outcome]) -> dict:
    """Share of answerable questions answered right; precision and recall of declining."""
    right = [o.right for q, o in zip(questions, outcomes) if q.answerable]
    precision, recall = abstention(
        [o.declined for o in outcomes], [q.answerable for q in questions]
    )
    return {
        "answers_right": mean(right) if right else None,
        "abstention_precision": precision,
        "abstention_recall": recall,
    }


def beir_answers(engine: Engine, dataset: BeirDataset, progress: bool) -> dict:
    """Ask every query of a BEIR set whose queries say whether they are answerable: share of
    the answerable ones answered, and answered citing a relevant document; abstention."""
    questions = [
        Question(qid, rec["text"], [], bool(rec["answerable"]))
        for qid, rec in dataset.records.items()
        if "answerable" in rec
    ]
    outcomes = ask_all(engine, questions, progress)
    pairs = [(q, o) for q, o in zip(questions, outcomes) if q.answerable]
    scores = answer_scores(questions, outcomes)
    del scores["answers_right"]  # no answer phrases: long-form answers
    return {
        "answered": mean([not o.declined for _, o in pairs]) if pairs else None,
        "cites_relevant": mean([bool(o.cited & set(dataset.relevant(q.id))) for q, o in pairs])
        if pairs
        else None,
        **scores,
    }


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise TypeError("expected a list of strings")
    return [str(v) for v in value]
