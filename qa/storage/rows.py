"""Passage keys to a segment's rows: what a scoped search (qa/answering/scope.py) looks up in each
segment's BM25 postings and vectors, whose keys are stored in ascending order."""

from __future__ import annotations

import numpy as np


def rows_in(keys: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The rows (ascending) of `keys` (ascending, a segment's) whose key `allowed` (ascending)
    holds."""
    keys = np.asarray(keys)
    at = np.searchsorted(keys, allowed)
    inside = at < len(keys)
    at = at[inside]
    return at[keys[at] == allowed[inside]]
