"""The classic search space of the original DNN-tuning scripts."""

from __future__ import annotations

from dnntune.space._params import CategoricalParam, FloatParam, IntParam, Param, SearchSpace
from dnntune.space._rules import fixed_defaults

__all__ = ["default_space"]


def default_space() -> SearchSpace:
    """optimizer {Adam, SGD, AdamW}, num_layers 1-7, hidden_size 16-128, dropout 0.1-0.5,
    learning_rate 1e-5-1e-3 (log). Each has a default: the first trial starts there."""
    params: dict[str, Param] = {
        "optimizer": CategoricalParam("optimizer", ("Adam", "SGD", "AdamW"), default="AdamW"),
        "num_layers": IntParam("num_layers", 1, 7, default=3),
        "hidden_size": IntParam("hidden_size", 16, 128, default=128),
        "dropout": FloatParam("dropout", 0.1, 0.5, default=0.1),
        "learning_rate": FloatParam("learning_rate", 1e-5, 1e-3, log=True, default=1e-3),
    }
    return SearchSpace(params=params, source="default", fixed_defaults=fixed_defaults())
