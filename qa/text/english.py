"""Every hand-written rule about English, in one place.

`read_question` reads a question once into `QuestionFacts`: what a "how many" question
counts, whose role a "who is the R of X" question asks for, its names and numbers, and what it
leans on from earlier turns (pronouns, follow-up openers).
The other functions are the rules about texts the rest of the pipeline applies: who a quote
names, which line is a heading, which sentence piece continues the one before it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

WORD = re.compile(r"[\w'’-]+")

# ---- what a question asks for ----------------------------------------------------------
# Questions whose answer is a quantity or a time, and the words that say one: a sentence with
# none of them does not answer ("How many staff left?" of "Staff were ordered to leave.").
_ASKS_QUANTITY = re.compile(
    r"\bhow (?:many|much|long|old|far|large|big|tall|high|deep|wide|often|fast)\b|"
    r"\bwhat (?:percentage|proportion|share|number|amount)\b", re.IGNORECASE)
_ASKS_TIME = re.compile(
    r"^\W*when\b|\b(?:what|which) (?:year|years|day|date|month|century|decade|time|season|era)\b",
    re.IGNORECASE)
_NUMBER_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|\w+teen|twenty|thirty|"
    r"forty|fifty|sixty|seventy|eighty|ninety|hundreds?|thousands?|millions?|billions?|"
    r"trillions?|dozens?|half|quarter|third|twice|once|single|double|triple|several|few|"
    r"percent|score")
_QUANTITY = re.compile(r"\d|\b(?:" + _NUMBER_WORDS + r")\b", re.IGNORECASE)
_TIME = re.compile(  # or a number (_QUANTITY): "in 1644", "two weeks"
    r"\b(?:january|february|march|april|june|july|august|september|october|november|"
    r"december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|monday|tuesday|wednesday|"
    r"thursday|friday|saturday|sunday|today|yesterday|tomorrow|tonight|morning|afternoon|"
    r"evening|night|noon|midnight|day|days|week|weeks|weekend|month|months|year|years|decade|"
    r"decades|century|centuries|era|ago|since|until|till|before|after|during|when|while|"
    r"then|now|soon|later|earlier|recently|once|spring|summer|autumn|winter|season|"
    r"period|time|times|dynasty|reign|war)\b", re.IGNORECASE)
# "Summarize the article", "summarize", "What is this document about?", "Give me an overview":
# asks for what a document says as a whole, answered by its lead.
_DOC = r"(?:article|document|text|story|page|file|report|piece|paper|essay|post)"
_OVERVIEW = re.compile(
    rf"^\W*(?:(?:please\s+|can\s+you\s+|could\s+you\s+)?(?:summari[sz]e|sum\s+up|outline)"
    rf"(?:\s+(?:it|this|that|(?:the|this|that)\s+{_DOC}))?"
    rf"|(?:give\s+(?:me\s+)?)?(?:a|an|the)\s+(?:summary|overview|gist)"
    rf"(?:\s+of\s+(?:it|this|that|(?:the|this|that)\s+{_DOC}))?"
    rf"|what(?:\s+is|'s|’s)\s+(?:this|(?:the|this|that)\s+{_DOC})\s+(?:all\s+)?about"
    rf"|what\s+does\s+(?:this|(?:the|this)\s+{_DOC})\s+(?:say|cover|discuss|describe))\W*$",
    re.IGNORECASE,
)
# "Who is Jens Stoltenberg?", "What is NATO?", "What is a deterrent?": asks what someone or
# something is, answered by the sentence that introduces it.
_DEFINITION = re.compile(r"^\W*(who|what)(?:\s+(?:is|was|are|were)|'s|’s)\s+([^?!.]+?)\W*$",
                         re.IGNORECASE)
_ARTICLES = {"a", "an", "the"}

# ---- what a question leans on ----------------------------------------------------------
PERSONAL = {"he", "him", "his", "she", "her", "hers"}
ANAPHORA = PERSONAL | {
    "it", "its", "they", "them", "their", "theirs", "this", "that", "these", "those", "there",
    "then", "such", "one", "ones",
}
_OPENER = re.compile(
    r"^\W*(and|but|so|also|then|what about|how about|why|why not|how come|what else|anything "
    r"else)\b", re.IGNORECASE,
)
# A person's name: two or more capitalised words ("Jens Stoltenberg", "Dmitry Peskov"), less
# a title or a nationality before it ("French President"), and not a place or a body ("Eastern
# Europe", "White House"), nor the place after "at"/"in" ("at Camp David").
_FULL_NAME = re.compile(r"\b[A-Z][a-z’'-]+(?:\s+[A-Z][a-z’'-]+)+\b")
_TITLES = {
    "President", "Secretary", "General", "Minister", "Foreign", "Prime", "Chancellor",
    "Spokesman", "Spokeswoman", "Senator", "Governor", "Mr", "Mrs", "Ms", "Dr", "Sir", "King",
    "Queen", "Pope", "Chief", "Defense", "State",
}
# a nationality's adjective ("Russian", "British", "Chinese"), taken off a name of 3+ words
_NATIONALITY = re.compile(r"[A-Z][a-z]+(?:an|ish|ese)$")
_PLACE_BEFORE = re.compile(r"\b(?:at|in|near|into|across)\s+$")
_POSTS = {"Spokesman", "Spokeswoman", "President", "Secretary", "General", "Minister",
          "Chancellor", "Senator", "Governor", "King", "Queen", "Pope", "Chief"}
_NOT_PERSON = {
    "Europe", "European", "Eastern", "Western", "Northern", "Southern", "United", "States",
    "Kingdom", "Union", "Nations", "House", "Department", "Office", "Ministry", "Council",
    "Committee", "Party", "Army", "Forces", "Force", "Sea", "Ocean", "Republic", "City",
    "University", "Street", "News", "Times", "Post", "Bank", "Company", "Court",
    "Agency", "Service", "Organization", "Administration",
}
_SPEECH = re.compile(r"\b(said|says|told|added|announced|indicated|explained|stated)\b")
_SPEAKER = re.compile(r"\b([A-Z][a-z’'-]+) (?:said|says|added|told|stated)\b")
# "it" as the subject of a verb of saying, deciding or acting ("What else did it announce?")
# stands for the body or country the earlier question asked about; "it" of an event ("When did
# it happen?") or as an object ("When did he say it?") is left alone.
_ACTS = (
    r"say|tell|announce|decide|demand|want|ask|respond|reply|react|plan|propose|claim|call|"
    r"send|deploy|order|agree|deny|warn|threaten|report|offer|accuse|blame|promise|pledge|"
    r"indicate|describe|do|add|urge|approve|reject|withdraw|reduce"
)
_IT_ACTS = re.compile(
    rf"\b(?:did|does|do|has|have|had|will|would|could|can|might|may)\s+(it)\s+(?:also\s+)?"
    rf"(?:{_ACTS})\b", re.IGNORECASE,
)
# A run of capitalised words or acronyms ("the UK Foreign Office", "NATO", "Secretary of State").
_PROPER = re.compile(r"\b(?:(the)\s+)?([A-Z][\w’'-]*(?:\s+(?:of\s+)?[A-Z][\w’'-]*)*)")
_TIME_WORDS = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "January",
    "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December",
}

# ---- texts -------------------------------------------------------------------------------
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
_CLOSING = (".", "!", "?", "”", '"', "’", "'")


@dataclass(frozen=True)
class QuestionFacts:
    """What one question asks for and leans on, read once."""

    text: str
    kind: str | None  # "quantity" ("how many", "how long") or "time" ("when"), else None
    # "overview" (what a document says as a whole), "definition" ("Who is X?"), or None
    asks: str | None
    subject: tuple[str, ...]  # the words of the X a definition question asks about
    key_words: tuple[str, ...]  # names and numbers, of the question and what it is searched with
    words: frozenset[str]  # its words, lower case
    length: int  # its words, counted as split by spaces
    content_words: int  # words beyond stopwords and pronouns
    anaphora: bool  # holds a pronoun or another word that points back ("they", "there")
    opener: bool  # opens as a follow-up does ("and", "what about", "why")


def read_question(text: str) -> QuestionFacts:
    """The facts of `text`."""
    words = [w.lower() for w in WORD.findall(text)]
    stop = stopwords()
    content = [w for w in words if w not in stop and w not in ANAPHORA]
    subject = tuple(defined(text))
    return QuestionFacts(
        text=text,
        kind=answer_kind(text),
        asks="overview" if _OVERVIEW.match(text) else "definition" if subject else None,
        subject=subject,
        key_words=tuple(key_words(text)),
        words=frozenset(words),
        length=len(text.split()),
        content_words=len(content),
        anaphora=any(w in ANAPHORA for w in words),
        opener=_OPENER.match(text) is not None,
    )


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """NLTK's English stopwords: the copy llama-index-core ships (its `globals_helper`'s),
    read from the file so that a question need not import LlamaIndex."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("llama_index.core")  # finds it without importing it
    folder = Path(next(iter(spec.submodule_search_locations)))
    words = folder / "_static" / "nltk_cache" / "corpora" / "stopwords" / "english"
    return frozenset(words.read_text(encoding="utf-8").split())


def answer_kind(question: str) -> str | None:
    """"quantity" when the answer is a number or an amount, "time" when it is a date or a
    time, else None."""
    if _ASKS_QUANTITY.search(question):
        return "quantity"
    return "time" if _ASKS_TIME.search(question) else None


def holds_kind(text: str, kind: str) -> bool:
    """Whether `text` says a quantity (a digit, a number word) or a time (a date, a day, a
    time word) as `kind` asks."""
    return bool(_QUANTITY.search(text) or kind == "time" and _TIME.search(text))


def defined(question: str) -> list[str]:
    """What a "Who is X?" or "What is X?" question asks to be introduced: X's words, when X is
    a name ("Jens Stoltenberg", "the Kremlin") or "a"/"an" and at most three words ("a
    deterrent"); [] for any other question ("What is the capital of France?")."""
    m = _DEFINITION.match(question)
    if not m:
        return []
    words = WORD.findall(m.group(2))
    if any(w.endswith(("'s", "’s")) for w in words):
        return []  # "Who is NATO's Secretary-General?" asks who holds a post
    article = words[0].lower() if words and words[0].lower() in _ARTICLES else None
    words = words[1:] if article else words
    if not words or len(words) > 4:
        return []
    if all(w[:1].isupper() or any(c.isdigit() for c in w) for w in words):
        return words
    if m.group(1).lower() == "what" and article in ("a", "an") and len(words) <= 3:
        return words
    return []


def names_all(text: str, words: Sequence[str]) -> bool:
    """Whether `text` holds every one of `words` as a word (case ignored)."""
    return all(re.search(rf"\b{re.escape(w)}\b", text, re.IGNORECASE) for w in words)


def introduces(text: str, words: Sequence[str]) -> bool:
    """Whether `text` says what `words` name is: "X is a ...", "X, the ...", "X (born ...)",
    or a post before the name ("NATO Secretary-General Jens Stoltenberg", "spokesman X")."""
    name = r"\W+".join(re.escape(w) for w in words)
    if re.search(rf"\b{name}(?:\s+(?:is|was|are|were)\s+(?:a|an|the|one)\b|\s*,\s*(?:a|an|the|"
                 rf"who)\b|\s*\()", text, re.IGNORECASE):
        return True
    before = re.search(rf"([\w-]+)\s+{name}\b", text, re.IGNORECASE)
    return before is not None and any(
        part.capitalize() in _POSTS for part in before.group(1).split("-"))


def key_words(question: str) -> list[str]:
    """Names and numbers of the question: capitalised words past the first, words with digits."""
    words = WORD.findall(question)
    return [
        w for i, w in enumerate(words)
        if any(c.isdigit() for c in w) or (i > 0 and w[:1].isupper())
        or (len(w) > 1 and w.isupper())
    ]


def lower_words(text: str) -> set[str]:
    return {w.lower() for w in WORD.findall(text)}


# ---- what a text holds -------------------------------------------------------------------
def is_heading_line(text: str, before: str, after: str) -> bool:
    """A line of its own without closing punctuation: a title, heading or caption."""
    starts_line = not before.strip() or before.rstrip(" \t").endswith("\n")
    ends_line = not after.strip() or after.lstrip(" \t").startswith("\n")
    return starts_line and ends_line and not text.rstrip().rstrip("*_").endswith(_CLOSING)


# Markdown's structure at the start of a line: headings, quotes, list markers
MARKDOWN_BLOCK = re.compile(r"(?:#{1,6}[ \t]+|>[ \t]?|(?:[-*+]|\d{1,3}[.)])[ \t]+)+")
_ORPHAN = re.compile(r"(\*\*|__)[ \t]+")  # a bold lead's closing `**`, cut from it
_BOLD_LEAD = re.compile(r"(\*\*|__)(?:(?!\1).)+?(?:\1)?", re.DOTALL)


def markdown_trim(text: str, line_start: bool) -> tuple[int, int]:
    """The span of `text` without Markdown's markers at its edges (quotes keep exact offsets):
    `## `, `1. `, `- ` starting a line, a bold lead's `**` cut into it, `**` around it all."""
    start, end = 0, len(text)
    if line_start and (block := MARKDOWN_BLOCK.match(text)):
        start = block.end()
    orphan = _ORPHAN.match(text, start)  # "** Priya owns ..."
    if orphan:
        start = orphan.end()
    for mark in ("**", "__"):
        inner = text[start:end]
        if len(inner) > 4 and inner.startswith(mark) and inner.endswith(mark) and (
                mark not in inner[2:-2]):
            start, end = start + 2, end - 2
    return start, end


def is_question(text: str) -> bool:
    """A sentence that asks ("What did Russia demand?" on a quiz page): it states nothing."""
    return text.rstrip(" \t\n\"'”’»)*_").endswith("?")


def is_structure(text: str, before: str, after: str, max_words: int = 12) -> bool:
    """Structure, not a sentence: a title, heading or caption line (`is_heading_line`), a
    Markdown heading, a list item's bold lead ("1. **CI migration.**" before its sentence)."""
    if is_heading_line(text, before, after):
        return True
    if before.strip() and not before.rstrip(" \t").endswith("\n"):
        return False  # not at the start of a line
    if (block := MARKDOWN_BLOCK.match(text)) and block.group().lstrip().startswith("#"):
        return True  # a Markdown heading
    rest = text[block.end() if block else 0 :]
    lead = _BOLD_LEAD.fullmatch(rest)
    if not lead or len(rest.split()) > max_words:
        return False
    if rest.endswith(lead.group(1)):  # closed: a lead when the line goes on after it
        return bool(after.strip()) and not after.lstrip(" \t").startswith("\n")
    return after.startswith(lead.group(1))  # its closing `**` cut off into the next sentence


def is_heading_paragraph(last_char: str, words: int, max_words: int) -> bool:
    """A paragraph of at most `max_words` words that does not end as a sentence does."""
    return words <= max_words and last_char not in ".!?:;\"'”’)»"


# Abbreviations a sentence splitter may end a sentence after ("at 3 p.m. ET", "the U.S. Army")
_ABBREVIATION = re.compile(
    r"(?:\b(?:[ap]\.m|[A-Za-z]\.[A-Za-z](?:\.[A-Za-z])*|Mr|Mrs|Ms|Dr|St|Jr|Sr|No|Nos|vs|etc|"
    r"Inc|Ltd|Co|Corp|Gen|Gov|Sen|Rep|Lt|Col|Sgt|Capt|Prof|Rev|Fig|approx|ca|Jan|Feb|Mar|Apr|"
    r"Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec))\.$")


def continues(before: str, gap: str, text: str) -> bool:
    """The sentence `text` is a piece of the one `before` it, cut off by the splitter: it starts
    in lower case or has no letter, or `before` ends with an abbreviation ("at 3 p.m." keeps its
    "ET to discuss Russia."); never across a paragraph, list item or heading."""
    if (_PARAGRAPH_BREAK.search(gap) or "\n" in gap and MARKDOWN_BLOCK.match(text)
            or _ORPHAN.match(text)):  # a new paragraph, list item or heading; after a bold lead
        return False
    return (text[:1].islower() or not any(ch.isalpha() for ch in text)
            or _ABBREVIATION.search(before.rstrip()) is not None)


def last_person(text: str) -> str | None:
    """The person a text names: a full name next to a speech verb, else a surname before one,
    else the last full name in it."""
    names = []
    for m in _FULL_NAME.finditer(text):
        if _PLACE_BEFORE.search(text[max(0, m.start() - 8) : m.start()]):
            continue  # "at Camp David": a place
        words = m.group(0).split()
        while words and (words[0] in _TITLES
                         or len(words) > 2 and _NATIONALITY.match(words[0])):
            words.pop(0)
        if len(words) >= 2 and not _NOT_PERSON.intersection(words):
            names.append((" ".join(words), m))
    for name, m in names:
        if _SPEECH.search(text[max(0, m.start() - 12) : m.end() + 12]):
            return name
    speaker = _SPEAKER.search(text)  # "..., Stoltenberg said."
    if speaker and speaker.group(1) not in _TITLES | _NOT_PERSON:
        return speaker.group(1)
    return names[-1][0] if names else None


def asked_about(question: str) -> str | None:
    """The body, place or country a question names first, with its article ("the UK Foreign
    Office" in "What did the UK Foreign Office say on Saturday?"), or None: its opening word,
    days and months, and people and their posts (he/she stand for those) do not count."""
    for m in _PROPER.finditer(question):
        words = m.group(2).split()
        while words and words[-1] in _TIME_WORDS:
            words.pop()
        if m.start(2) == len(question) - len(question.lstrip()) or not words:
            continue  # the question's first word is capitalised anyway
        if len(words) >= 2 and not _NOT_PERSON.intersection(words):
            continue  # a person or a person's post ("Jens Stoltenberg", "US Secretary of State")
        name = " ".join(words)
        return f"the {name}" if m.group(1) else name
    return None


def resolve_pronouns(question: str, person: str | None) -> str:
    """Replace he/she/him/his/her with the person's name."""
    if not person:
        return question

    def swap(m: re.Match) -> str:
        word = m.group(0).lower()
        following = question[m.end() :].lstrip()
        possessive = word in ("his", "hers") or (
            word == "her" and following[:1].isalpha() and not following.startswith(("say", "do"))
        )
        return f"{person}’s" if possessive else person

    return re.sub(r"\b(he|him|his|she|her|hers)\b", swap, question, flags=re.IGNORECASE)


def resolve_it(question: str, actor: str | None) -> str:
    """Replace "it" as the subject of a verb of saying or acting with `actor`."""
    m = _IT_ACTS.search(question) if actor else None
    if m is None:
        return question
    return f"{question[: m.start(1)]}{actor}{question[m.end(1) :]}"
