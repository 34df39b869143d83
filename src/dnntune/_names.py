"""Helpers for error messages: close-name suggestions and short lists."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest candidates, or ``""``."""
    pool = [str(c) for c in candidates]
    close = difflib.get_close_matches(name, pool, n=n, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in pool}
        close = [lowered[c] for c in difflib.get_close_matches(name.lower(), lowered, n=n)]
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def short_list(names: Iterable[str], limit: int = 5) -> str:
    """Join names for a message, showing at most ``limit`` and counting the rest."""
    items = [str(n) for n in names]
    shown = ", ".join(repr(n) for n in items[:limit])
    rest = len(items) - limit
    return shown + (f" and {rest} more" if rest > 0 else "")
