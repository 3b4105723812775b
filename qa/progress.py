"""A progress bar over a loop, or the plain items when no bar is wanted; one line said on
stderr about what qa did on its own."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence


def progress_bar(items: Sequence, desc: str | None, unit: str = "it") -> Iterable:
    """`items` under a tqdm bar labelled `desc` (none when `desc` is None or not a terminal)."""
    if desc is None:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, disable=None, leave=False)


def say(message: str) -> None:
    """`message` as one line on stderr, after "qa: ": what qa did on its own that costs the user
    time (a cache made again), said to whoever runs it, the `qa` command or a Python program."""
    from qa.schema import one_line

    print(f"qa: {one_line(message)}", file=sys.stderr, flush=True)


def say_made(what: str, path: object, missing: bool, seconds: float) -> None:
    """Say that a cache qa keeps (the query model export, the sentence scorer) was made."""
    how = "was missing; made it" if missing else "was damaged or out of date; made it again"
    say(f"{what} at {path} {how} ({seconds:.0f} s)")
