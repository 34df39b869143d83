"""The names a user chooses from (task, metric, optimizer, activation, architecture,
embedding, sampler, pruner): one ``StrEnum`` per family, the single registry key of its family,
which also feeds the CLI's help."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from dnntune.exceptions import ConfigError

__all__ = [
    "ActivationName",
    "ArchitectureName",
    "EmbeddingName",
    "MetricName",
    "OptimizerName",
    "PrunerName",
    "SamplerName",
    "Task",
    "parse_choice",
]

E = TypeVar("E", bound=StrEnum)


class Task(StrEnum):
    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"
    MULTILABEL = "multilabel"


class MetricName(StrEnum):
    ROC_AUC = "roc_auc"
    LOGLOSS = "logloss"
    ACCURACY = "accuracy"
    RMSE = "rmse"
    MAE = "mae"
    R2 = "r2"


class OptimizerName(StrEnum):
    """Optimizers a trial can use; stored in the study as these strings."""

    ADAM = "Adam"
    ADAMW = "AdamW"
    SGD = "SGD"
    RMSPROP = "RMSprop"


class ActivationName(StrEnum):
    RELU = "relu"
    GELU = "gelu"
    SILU = "silu"
    TANH = "tanh"
    LEAKY_RELU = "leaky_relu"
    ELU = "elu"


class ArchitectureName(StrEnum):
    MLP = "mlp"
    TABM = "tabm"
    TABM_MINI = "tabm-mini"


class EmbeddingName(StrEnum):
    NONE = "none"
    PERIODIC = "periodic"
    PIECEWISE_LINEAR = "piecewise_linear"


class NumericScaling(StrEnum):
    STANDARD = "standard"
    ROBUST = "robust"


class SamplerName(StrEnum):
    GRID = "grid"
    RANDOM = "random"
    TPE = "tpe"
    GP = "gp"
    CMAES = "cmaes"
    QMC = "qmc"


class PrunerName(StrEnum):
    NONE = "none"
    MEDIAN = "median"
    HYPERBAND = "hyperband"


def parse_choice(enum: type[E], value: str | E, what: str) -> E:
    """Return ``enum(value)`` or raise a :class:`ConfigError` listing the valid names."""
    if isinstance(value, enum):
        return value
    try:
        return enum(str(value).strip().lower())
    except ValueError:
        valid = ", ".join(m.value for m in enum)
        raise ConfigError(f"unknown {what} {value!r}; choose one of: {valid}") from None
