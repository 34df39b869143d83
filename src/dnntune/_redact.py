"""Keep passwords of storage URLs out of every message, file and study attribute."""

from __future__ import annotations

import re

__all__ = ["redact"]


def redact(text: str) -> str:
    """Hide the password of every URL in ``text``: ``postgresql://u:secret@h/db`` ->
    ``postgresql://u:***@h/db``; works for percent-encoded passwords too."""

    def hide(match: re.Match[str]) -> str:
        return f"{match.group(1)}***@"

    # user:password@ inside scheme://...; the password runs to the last '@' before the host.
    return re.sub(r"(://[^:/@\s]*:)[^\s]*@", hide, text)
