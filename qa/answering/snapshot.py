"""What one question reads: a `Snapshot` of the index (one committed state and its reader),
and the `Trace` of the question through the query path."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from qa.answering.chat import Resolution
from qa.answering.read import Reader, make_reader
from qa.answering.reading import Reading
from qa.answering.scope import Where, passage_keys
from qa.models.sentence_vectors import SentenceVectors
from qa.schema import Answer, Passage
from qa.settings import Settings
from qa.storage.index import PassageIndex

SCOPES_KEPT = 8  # scopes whose passage keys a snapshot keeps (a million passages: 8 MB each)


class Snapshot:
    """One index generation as questions read it: the index and its reader (made on first
    use). Nothing changes what it reads once made (`version` moves on past a state it is not
    to read: another process's rebuild with other settings); the sentence-vector cache is the
    engine's, shared by every snapshot."""

    def __init__(
        self,
        index: PassageIndex,
        settings: Settings,
        vectors: SentenceVectors,
        generation: Path | None = None,
        scored: SentenceVectors | None = None,
    ) -> None:
        self.index = index
        self.settings = settings
        self.vectors = vectors
        self.scored = scored  # the learned scorer's vectors (qa/models/scorer.py), when it is on
        self.generation = generation  # the folder it was read from
        self.fingerprint = index.fingerprint  # the settings it was built with
        self.version: tuple[int, ...] | None = None  # IndexStore.version() when it was read
        self._scopes: dict[Where, np.ndarray] = {}  # the last few scopes' passage keys

    def scope(self, where: Where | None) -> np.ndarray | None:
        """The passage keys a question scoped by `where` may return (None: every one);
        `BadFilter` when it names no indexed document."""
        if where is None:
            return None
        keys = self._scopes.get(where)
        if keys is None:
            keys = passage_keys(self.index, where)
            while len(self._scopes) >= SCOPES_KEPT:
                self._scopes.pop(next(iter(self._scopes)), None)
            self._scopes[where] = keys
        return keys

    @cached_property
    def reader(self) -> Reader:
        return make_reader(self.index, self.vectors, self.settings.answer, self.scored)


@dataclass(frozen=True)
class Trace:
    """One question through the query path: what each step made of it."""

    resolution: Resolution
    passages: list[Passage]
    reading: Reading
    answer: Answer
