"""Helpers for error messages: close-name suggestions and short lists."""

from __future__ import annotations

import difflib
import re
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


def first_line(exc: BaseException) -> str:
    """An error's message on one line: its first line, or its type's name when it has none."""
    text = str(exc)
    return text.splitlines()[0] if text.strip() else type(exc).__name__


def short_list(names: Iterable[str], limit: int = 5) -> str:
    """Join names for a message, showing at most ``limit`` and counting the rest."""
    items = [str(n) for n in names]
    shown = ", ".join(repr(n) for n in items[:limit])
    rest = len(items) - limit
    return shown + (f" and {rest} more" if rest > 0 else "")


# Setting names in messages are marked, so that one message names the keyword argument for a
# Python caller (``folds``) and the option for the command line (``--folds``).
_MARK = "\x1f"
_MARKED = re.compile(f"{_MARK}(!?)([a-z_]+)(?:=([^{_MARK}]*))?{_MARK}")


def setting_name(name: str, *, off: bool = False) -> str:
    """``name`` marked as a setting's name, for :func:`render`; ``off``: the setting turned
    off (``copy_encoding=False``, ``--no-copy-encoding``)."""
    return f"{_MARK}{'!' if off else ''}{name}{_MARK}"


def setting_example(name: str, value: object) -> str:
    """A setting given a value, for :func:`render`: ``--target y`` or ``target='y'``."""
    return f"{_MARK}{name}={value}{_MARK}"


def render(text: str, *, flags: bool = False) -> str:
    """``text`` with its marked setting names as keywords, or as CLI flags (``--max-folds``)."""

    def one(m: re.Match[str]) -> str:
        off, name, value = m.group(1), m.group(2), m.group(3)
        if flags:
            flag = ("--no-" if off else "--") + name.replace("_", "-")
            return flag if value is None else f"{flag} {value}"
        if value is not None:
            return f"{name}={value!r}"
        return f"{name}=False" if off else name

    return _MARKED.sub(one, text)


class Message(str):
    """A note as the library's caller reads it (keywords); ``template`` keeps the marks, so
    the CLI can name its flags instead."""

    template: str

    def __new__(cls, template: str) -> Message:
        template = getattr(template, "template", template)
        out = super().__new__(cls, render(template))
        out.template = template
        return out
