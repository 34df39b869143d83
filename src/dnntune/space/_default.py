"""The default search space (``--space default``, or no ``--space``)."""

from __future__ import annotations

from dnntune.space._file import parse_space
from dnntune.space._params import SearchSpace

__all__ = ["default_space"]


def default_space() -> SearchSpace:
    """The named space ``default``: optimizer {Adam, SGD, AdamW}, num_layers 1-7, hidden_size
    16-128, dropout 0.1-0.5, learning_rate 1e-5-1e-3 (log), num_embeddings {none,
    piecewise_linear, periodic}. Each has a default: the first trial starts there."""
    return parse_space("default")
