"""A progress bar over a loop, or the plain items when no bar is wanted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def progress_bar(items: Sequence, desc: str | None, unit: str = "it") -> Iterable:
    """`items` under a tqdm bar labelled `desc` (none when `desc` is None or not a terminal)."""
    if desc is None:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, disable=None, leave=False)
