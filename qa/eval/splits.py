"""Which SQuAD article serves which role, in one place for every script that fits or measures.

- fit: weights may be learned and rules chosen on it;
- validation: choices between models, thresholds and rules; never trained on;
- test: touched once, at the end of a piece of work, for its closing note.

The 23 articles of `squad-dev-half` (SQuAD v1.1) keep the fit/validation split that
`qa/eval/squad.py` made for `eval/squad/` (by SHA-256 of the title among the 23), except that
"Force" moves from validation to test. `squad2-dev-even` (SQuAD 2.0) holds 7 of the same
articles and takes their roles: 5 fit, "Scottish_Parliament" validation, "Force" test.
"""

from __future__ import annotations

FIT, VALIDATION, TEST = "fit", "validation", "test"

# Fixed lists rather than recomputed: the SHA-256 order depends on which titles a file holds.
FIT_ARTICLES = frozenset({
    "American_Broadcasting_Company", "Civil_disobedience", "Construction", "Ctenophora",
    "European_Union_law", "Genghis_Khan", "Huguenot", "Islamism", "Oxygen", "Packet_switching",
    "Rhine", "Sky_(United_Kingdom)", "Teacher", "United_Methodist_Church", "Warsaw",
})
VALIDATION_ARTICLES = frozenset({
    "Apollo_program", "Doctor_Who", "Prime_number", "Scottish_Parliament", "Super_Bowl_50",
    "University_of_Chicago", "Victoria_(Australia)",
})
TEST_ARTICLES = frozenset({"Force"})


def article_role(title: str) -> str:
    """FIT, VALIDATION or TEST; an article of neither SQuAD file is a KeyError."""
    for role, titles in ((FIT, FIT_ARTICLES), (VALIDATION, VALIDATION_ARTICLES),
                         (TEST, TEST_ARTICLES)):
        if title in titles:
            return role
    raise KeyError(f"not an article of the project's SQuAD files: {title}")
