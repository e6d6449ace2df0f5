"""Crash points, for the tests that prove a crash at any point loses nothing.

`SPINDEX_CRASH_AT="<point>:<n>"` makes the process kill itself with SIGKILL the n-th time it
reaches `crash_point("<point>")`: no cleanup, no flush, exactly like a node dying. Unset (the
normal case), a crash point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

POINTS = ("download", "embed", "index_write", "prune", "commit", "committed")
_hits: Counter[str] = Counter()


def crash_point(point: str) -> None:
    """Die here if SPINDEX_CRASH_AT names this point and its hit count has been reached."""
    spec = os.environ.get("SPINDEX_CRASH_AT")
    if not spec:
        return
    name, _, count = spec.partition(":")
    if name != point:
        return
    _hits[point] += 1
    if _hits[point] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
