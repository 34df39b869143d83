"""The command line's logging: Optuna's lines for trials that end in an expected way, without
their tracebacks; no lines from the ONNX exporter about packages dnntune does not use."""

from __future__ import annotations

import logging
import re

from dnntune.exceptions import TrialCut, TrialOutOfMemory

__all__ = ["quiet_expected_failures", "quiet_exporter"]

# The logger that reports failed trials (a filter on a parent would not see its records).
_TRIALS_LOGGER = "optuna.study._optimize"


class _NoExpectedTraceback(logging.Filter):
    """Optuna logs a failed trial with its error's traceback. For an interrupt (a deliberate
    Ctrl-C), a configuration too large for memory or a trial the deadline cut, that is a page
    of library frames that says nothing the line does not: keep the line, drop the
    traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Optuna follows each failure's line with "Trial N failed with value None.", which
        # says nothing more about a trial that raised.
        message = record.getMessage()
        if message.endswith(" failed with value None."):
            return False
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, KeyboardInterrupt | TrialOutOfMemory | TrialCut):
            return True
        record.exc_info = None
        record.exc_text = None
        number = re.match(r"Trial (\d+) failed", message)
        if isinstance(error, TrialCut) and number:  # not a failure: say what happened
            record.msg, record.args = f"Trial {number[1]} {error}.", ()
        return True


def quiet_expected_failures() -> None:
    """Install the filter once (idempotent)."""
    logger = logging.getLogger(_TRIALS_LOGGER)
    if not any(isinstance(f, _NoExpectedTraceback) for f in logger.filters):
        logger.addFilter(_NoExpectedTraceback())


def quiet_exporter() -> None:
    """torch.onnx logs a warning per torchvision operator it cannot register when torchvision
    is not installed; dnntune's models use none of them."""
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
