"""Ctrl-C and SIGTERM during a command: an interrupt that cannot be lost.

The command-line handler raises :class:`Interrupted` where the main thread happens to be. When
that is a weakref callback or a ``__del__`` run by the garbage collector (SQLAlchemy and
PyTorch have such callbacks), Python prints "Exception ignored in ..." and drops the
exception: the run would go on as if no signal had come. The handler therefore also records
the request, and the training loop calls :func:`raise_if_interrupted` after every epoch and
before every fold, which raises it again; the dropped one is not printed.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any

__all__ = ["Interrupted", "install", "raise_if_interrupted"]


class _Signal:
    came = False  # set by the handler; read by raise_if_interrupted


class Interrupted(KeyboardInterrupt):
    """Raised by the SIGINT/SIGTERM handler. A subclass on purpose: CPython 3.11 remembers a
    plain KeyboardInterrupt that passes through ``exec`` of a string (dataclasses build their
    ``__init__`` that way) and then ends the process with SIGINT (-2) instead of our exit code
    130, even though the interrupt was handled."""

    def __repr__(self) -> str:  # how Optuna names the error of the trial it marks failed
        return "interrupted (Ctrl-C or SIGTERM)"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM ends a run like Ctrl-C: Optuna marks the running trial failed, outputs are written.
    _Signal.came = True
    raise Interrupted


def _unraisable(hook: Any) -> Any:
    """``sys.unraisablehook`` that stays silent about a dropped :class:`Interrupted`."""

    def quiet(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, Interrupted):
            hook(unraisable)

    quiet.dnntune = True  # type: ignore[attr-defined]
    return quiet


def install() -> None:
    """SIGINT and SIGTERM raise :class:`Interrupted` (the CLI sets them again after the heavy
    imports, in case a library reset them)."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    if not getattr(sys.unraisablehook, "dnntune", False):
        sys.unraisablehook = _unraisable(sys.unraisablehook)


def raise_if_interrupted() -> None:
    """Raise :class:`Interrupted` if a signal came whose exception Python may have dropped."""
    if _Signal.came:
        raise Interrupted
