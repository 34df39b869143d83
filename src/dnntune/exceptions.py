"""The errors dnntune raises for bad input.

Every error says what is wrong, the offending name and value, and how to fix it. The CLI prints
``str(error)`` on one line (or one line per problem for :class:`SpaceError`) and exits with 2.
"""

from __future__ import annotations

from collections.abc import Sequence

from dnntune._names import render

__all__ = [
    "ConfigError",
    "DataError",
    "DnntuneError",
    "NoModelError",
    "SpaceError",
    "StorageError",
    "TrialCut",
    "TrialOutOfMemory",
]


class DnntuneError(Exception):
    """Base class of the errors caused by the user's input, not by a bug.

    Settings named in the message read as keyword arguments (``folds``); :meth:`cli_message`
    names them as the command line's options (``--folds``)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.template = message

    def __str__(self) -> str:
        return render(self.template)

    def cli_message(self) -> str:
        return render(self.template, flags=True)


class DataError(DnntuneError):
    """The table, its columns or its target cannot be used as asked."""


class ConfigError(DnntuneError):
    """An option has a value outside its valid set or range."""


class StorageError(DnntuneError):
    """The study storage cannot be opened, or the study in it does not match."""


class NoModelError(DnntuneError):
    """A study has no completed trial, so there is no best trial or model to give."""


class SpaceError(DnntuneError):
    """A search space is invalid; ``problems`` lists every problem found, one per entry."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        n = len(self.problems)
        head = f"invalid search space {source}: {n} problem{'s' if n != 1 else ''}"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


class TrialCut(Exception):
    """A trial the study's deadline cut before its last fold: not a poor configuration, so not
    pruned; it is recorded failed with ``stop_reason`` 'timeout' and queued to run first when
    the study resumes (``optimize(catch=...)`` goes on)."""

    def __repr__(self) -> str:  # how Optuna names the error in its "Trial N failed" line
        return str(self)


class TrialOutOfMemory(Exception):
    """A trial's configuration did not fit in the device's memory: not bad input, and not the
    end of the study, which marks the trial failed and continues (``optimize(catch=...)``)."""

    def __repr__(self) -> str:  # how Optuna names the error in its "Trial N failed" line
        return str(self)
