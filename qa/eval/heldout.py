"""`qa eval` on a folder of evaluation parts (`parts.json` beside one BEIR folder a part, as
`python -m qa.eval.squad` writes them): each part's corpus indexed on its own, every question asked,
one row a part, named by its role ("fit" or "validation (held out)"). A part whose entry says
`"touch": "once"` (a test part) is skipped, with a line saying so, and runs only when its own
folder is named (`qa eval eval/squad2/test`).

Each row: answers right (an answer phrase inside the quoted answer, over the answerable
questions), answered (share of the answerable answered), declined (share of the unanswerable
declined), abstention precision (share of the declines that were unanswerable), hit@k of the
gold paragraph (over the answerable: the paragraph a question was written on is the document of
one of the first k passages the answer came with) and the latency of `Engine.ask`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from qa.eval.baselines import CACHE_ROOT
from qa.eval.beir import BadDataset, load_beir
from qa.eval.evaluate import EvalReport, Question, ask_all
from qa.eval.metrics import abstention, hit_at_k, mean, percentile
from qa.settings import Settings

PARTS_FILE = "parts.json"
PART_COLUMNS = [
    "answers_right",
    "answered",
    "declined",
    "abstention_precision",
    "hit@1",
    "hit@3",
    "hit@5",
    "latency_p50_ms",
    "latency_p95_ms",
]


def is_parts_folder(path: Path) -> bool:
    """A folder of parts, or the folder of a touch-once part named on its own."""
    return path.is_dir() and ((path / PARTS_FILE).is_file() or once_part(path) is not None)


def once_part(path: Path) -> dict | None:
    """The entry of the touch-once part whose folder `path` is, else None."""
    parent = path.resolve().parent
    if not (parent / PARTS_FILE).is_file():
        return None
    try:
        parts = read_parts(parent)
    except BadDataset:
        return None
    return next((p for p in parts if p.get("touch") == "once"
                 and (parent / str(p["folder"])).resolve() == path.resolve()), None)


def read_parts(folder: Path) -> list[dict]:
    """The parts (`folder`, `role`, ...) that `parts.json` lists, each folder checked."""
    path = folder / PARTS_FILE
    try:
        parts = json.loads(path.read_text(encoding="utf-8"))["parts"]
        for part in parts:
            str(part["folder"]), str(part["role"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise BadDataset(f"{path}: expected {{\"parts\": [{{\"folder\", \"role\"}}, ...]}} "
                         f"({exc.__class__.__name__})") from None
    if not parts:
        raise BadDataset(f"{path}: no parts")
    return parts


def part_questions(records: dict[str, dict]) -> tuple[list[Question], list[str]]:
    """The part's questions and, for each, the id of its gold paragraph."""
    questions, gold = [], []
    for qid, rec in records.items():
        answers = rec.get("answers") or []
        answerable = bool(rec.get("answerable", True))
        if answerable and not answers:
            raise BadDataset(f'query "{qid}": an answerable question needs "answers"')
        questions.append(Question(qid, str(rec["text"]), [str(a) for a in answers], answerable))
        gold.append(str(rec.get("gold", "")))
    return questions, gold


def evaluate_part(folder: Path, progress: bool, settings: Settings | None = None
                  ) -> tuple[dict[str, float | None], str, int]:
    """One part's row of metrics, a note with its counts, the passages embedded to open it."""
    from qa.engine import Engine

    dataset = load_beir(folder)
    cache = CACHE_ROOT / dataset.corpus_key()  # the same index as `qa eval <part folder>`
    engine = Engine.open(sources=[dataset.corpus], index_dir=cache / "qa-index",
                         settings=settings, show_progress=progress)
    questions, gold = part_questions(dataset.records)
    outcomes = ask_all(engine, questions, progress)
    declined = [o.declined for o in outcomes]
    answerable = [q.answerable for q in questions]
    precision, recall = abstention(declined, answerable)
    pairs = [(o, g) for q, o, g in zip(questions, outcomes, gold) if q.answerable]
    ranked = [[engine.passage(pid).doc_id for pid, _ in o.passages] for o, _ in pairs]
    row: dict[str, float | None] = {
        "answers_right": mean([o.right for o, _ in pairs]) if pairs else None,
        "answered": mean([not o.declined for o, _ in pairs]) if pairs else None,
        "declined": recall,
        "abstention_precision": precision,
    }
    for k in (1, 3, 5):
        row[f"hit@{k}"] = mean([hit_at_k(r, [g], k) for r, (_, g) in zip(ranked, pairs)])
    latencies = [o.latency_ms for o in outcomes]
    row["latency_p50_ms"] = percentile(latencies, 50)
    row["latency_p95_ms"] = percentile(latencies, 95)
    n_unanswerable = len(questions) - len(pairs)
    note = (
        f"{len(pairs)} answerable ({sum(o.right for o, _ in pairs)} right, "
        f"{sum(not o.declined for o, _ in pairs)} answered), {n_unanswerable} unanswerable "
        f"({sum(d for d, a in zip(declined, answerable) if not a)} declined); "
        f"{len(engine.index.documents)} paragraphs, cache {cache}"
    )
    return row, note, engine.last_report.passages_embedded


def evaluate_parts(folder: str | Path, progress: bool = False,
                   settings: Settings | None = None) -> EvalReport:
    """Every part of the folder, one row each, named by its role (answered with `settings`,
    by default the shipped ones)."""
    folder = Path(folder)
    named = once_part(folder)  # a touch-once part, named: it alone
    base, parts = (folder.resolve().parent, [named]) if named else (folder, read_parts(folder))
    rows: dict[str, dict[str, float | None]] = {}
    notes, embedded, run = [], 0, []
    for part in parts:
        if part.get("touch") == "once" and not named:
            skipped = (f"{part['role']}: skipped (touched once, at the end of a piece of work); "
                       f"run it by name: qa eval {folder / str(part['folder'])}")
            print(f"qa: {skipped}", file=sys.stderr)
            notes.append(skipped)
            continue
        run.append(part)
        row, note, n = evaluate_part(base / part["folder"], progress, settings)
        role = str(part["role"])
        rows[role] = row
        embedded += n
        articles = part.get("articles") or []
        notes.append(f"{role}: {part['folder']}/, {len(articles)} articles; {note}")
    notes.append(
        "answers right: an answer phrase inside the quoted answer, over the answerable; "
        "answered: of the answerable; declined: of the unanswerable (parts.json says how "
        "they were made); hit@k: the gold paragraph among the "
        "documents of the first k passages the answer came with; latency: Engine.ask"
    )
    total = sum(len(load_beir(base / p["folder"]).records) for p in run)
    return EvalReport(
        "parts", str(folder), total, PART_COLUMNS, rows, notes=notes,
        embedded={"qa": embedded}, row_label="part",
    )
