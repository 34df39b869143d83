"""Engine stage: the training loop, optimizers, evaluation and metrics."""

from dnntune.engine._metrics import (
    METRICS,
    Metric,
    default_metric,
    predictions_from_outputs,
    proper_metric,
    resolve_metric,
    to_predictions,
)
from dnntune.engine._optim import OPTIMIZERS, flatten_parameters, make_optimizer, resolve_device
from dnntune.engine._train import FitResult, evaluate, fit, predict_outputs

__all__ = [
    "METRICS",
    "OPTIMIZERS",
    "FitResult",
    "Metric",
    "default_metric",
    "evaluate",
    "fit",
    "flatten_parameters",
    "make_optimizer",
    "predict_outputs",
    "predictions_from_outputs",
    "proper_metric",
    "resolve_device",
    "resolve_metric",
    "to_predictions",
]
