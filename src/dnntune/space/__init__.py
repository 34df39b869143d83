"""Search space stage: parameter types, the default space, space files and ``suggest``."""

from dnntune.space._default import default_space
from dnntune.space._file import load_space, parse_space
from dnntune.space._named import NAMED_SPACES
from dnntune.space._params import (
    CategoricalParam,
    FixedParam,
    FloatParam,
    IntParam,
    Param,
    SearchSpace,
    suggest,
)
from dnntune.space._rules import PARAMETERS, fixed_defaults

__all__ = [
    "NAMED_SPACES",
    "PARAMETERS",
    "CategoricalParam",
    "FixedParam",
    "FloatParam",
    "IntParam",
    "Param",
    "SearchSpace",
    "default_space",
    "fixed_defaults",
    "load_space",
    "parse_space",
    "suggest",
]
