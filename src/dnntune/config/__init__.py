"""Typed, frozen configuration of a tuning run: one small group of settings per stage.

Every setting is defined once, as a field of its group made with :func:`setting`: its name,
type, default, help text, check and whether it is part of a study's identity. The keywords of
:func:`dnntune.tune`, the CLI's options and the identity stored with a study all follow from
those fields (:data:`SETTINGS`), so adding a setting touches its definition, the code that uses
it and its test.

Names chosen by the user (task, metric, sampler, pruner) are ``StrEnum`` members; each enum is
the single registry key of its family and also feeds the CLI's help.
"""

from dnntune.config._choices import (
    ActivationName,
    ArchitectureName,
    EmbeddingName,
    MetricName,
    NumericScaling,
    OptimizerName,
    PrunerName,
    SamplerName,
    Task,
    parse_choice,
)
from dnntune.config._groups import (
    CONFIG_FORMAT,
    MAX_SEED,
    SETTINGS,
    Columns,
    Preprocessing,
    Run,
    Search,
    Training,
    TuneConfig,
)
from dnntune.config._setting import Setting

__all__ = [
    "CONFIG_FORMAT",
    "MAX_SEED",
    "SETTINGS",
    "ActivationName",
    "ArchitectureName",
    "Columns",
    "EmbeddingName",
    "MetricName",
    "NumericScaling",
    "OptimizerName",
    "Preprocessing",
    "PrunerName",
    "Run",
    "SamplerName",
    "Search",
    "Setting",
    "Task",
    "Training",
    "TuneConfig",
    "parse_choice",
]
