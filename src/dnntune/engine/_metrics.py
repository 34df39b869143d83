"""Validation metrics computed from the model's raw outputs, one registry keyed by name."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.special import expit, softmax

from dnntune.config import MetricName, Task, parse_choice
from dnntune.exceptions import ConfigError

__all__ = [
    "METRICS",
    "Metric",
    "default_metric",
    "predictions_from_outputs",
    "resolve_metric",
    "to_predictions",
]


def to_predictions(outputs: np.ndarray, task: Task) -> np.ndarray:
    """Probabilities (classification) or values (regression, already de-standardized)."""
    if task in (Task.BINARY, Task.MULTILABEL):
        return expit(outputs)
    if task is Task.MULTICLASS:
        return softmax(outputs, axis=1)
    return outputs


def predictions_from_outputs(
    outputs: np.ndarray,
    task: Task,
    *,
    y_shift: float | list[float] = 0.0,
    y_scale: float | list[float] = 1.0,
) -> np.ndarray:
    """Model outputs (rows, n_out) to probabilities or values in the target's units.

    Binary and one-target regression give a 1-D array; multiclass, multilabel and regression
    on several targets (a shift and a scale per target) a 2-D one.
    """
    if task is Task.REGRESSION:
        if outputs.shape[1] == 1:
            return outputs[:, 0] * _one(y_scale) + _one(y_shift)
        return outputs * np.asarray(y_scale) + np.asarray(y_shift)
    if task is Task.BINARY:
        return to_predictions(outputs[:, 0], task)
    return to_predictions(outputs, task)


def _one(value: float | list[float]) -> float:
    return value[0] if isinstance(value, list) else value


def _skm() -> Any:
    """scikit-learn's metrics, imported on first use: scikit-learn takes seconds to import, and
    predict, show and report, and any input error, never compute a metric."""
    from sklearn import metrics

    return metrics


def _binary_proba(p: np.ndarray) -> np.ndarray:
    return p[:, 0] if p.ndim == 2 else p


def _roc_auc(y: np.ndarray, p: np.ndarray, task: Task) -> float:
    if task is Task.BINARY:
        return float(_skm().roc_auc_score(y, _binary_proba(p)))
    if task is Task.MULTICLASS:
        return float(
            _skm().roc_auc_score(
                y, p, multi_class="ovr", average="macro", labels=np.arange(p.shape[1])
            )
        )
    # Multilabel: the mean over labels that have both classes in this fold.
    defined = [j for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
    if not defined:
        return math.nan
    return float(np.mean([_skm().roc_auc_score(y[:, j], p[:, j]) for j in defined]))


def _logloss(y: np.ndarray, p: np.ndarray, task: Task) -> float:
    if task is Task.BINARY:
        return float(_skm().log_loss(y, _binary_proba(p), labels=[0, 1]))
    if task is Task.MULTILABEL:  # the mean of each label's binary log loss
        return float(
            np.mean([_skm().log_loss(y[:, j], p[:, j], labels=[0, 1]) for j in range(y.shape[1])])
        )
    # float32 probabilities sum to 1 within float32's precision only, which scikit-learn's
    # check (in float64) warns about: renormalized in float64 they sum to 1 exactly.
    p = np.asarray(p, dtype=np.float64)
    p = p / p.sum(axis=1, keepdims=True)
    return float(_skm().log_loss(y, p, labels=np.arange(p.shape[1])))


def _accuracy(y: np.ndarray, p: np.ndarray, task: Task) -> float:
    if task is Task.BINARY:
        return float(np.mean((_binary_proba(p) >= 0.5) == y))
    return float(np.mean(p.argmax(axis=1) == y))


def _rmse(y: np.ndarray, p: np.ndarray, task: Task) -> float:
    """The RMSE; for several targets, the mean of their RMSEs (scikit-learn's average)."""
    squared = (p.reshape(y.shape) - y) ** 2
    return float(np.mean(np.sqrt(np.mean(squared, axis=0))))


def _mae(y: np.ndarray, p: np.ndarray, task: Task) -> float:
    return float(np.mean(np.abs(p.reshape(y.shape) - y)))


def _r2(y: np.ndarray, p: np.ndarray, task: Task) -> float:
    return float(_skm().r2_score(y, p.reshape(y.shape)))


@dataclass(frozen=True)
class Metric:
    name: MetricName
    fn: Callable[[np.ndarray, np.ndarray, Task], float]
    direction: str  # "maximize" or "minimize"
    tasks: tuple[Task, ...]

    def __call__(self, y_true: np.ndarray, predictions: np.ndarray, task: Task) -> float:
        return self.fn(y_true, predictions, task)

    @property
    def optuna_direction(self) -> Literal["minimize", "maximize"]:
        return "maximize" if self.direction == "maximize" else "minimize"

    def better(self, a: float, b: float) -> bool:
        """Whether score ``a`` is strictly better than ``b``."""
        return a > b if self.direction == "maximize" else a < b


_CLS = (Task.BINARY, Task.MULTICLASS)
METRICS: dict[MetricName, Metric] = {
    MetricName.ROC_AUC: Metric(MetricName.ROC_AUC, _roc_auc, "maximize", (*_CLS, Task.MULTILABEL)),
    MetricName.LOGLOSS: Metric(MetricName.LOGLOSS, _logloss, "minimize", (*_CLS, Task.MULTILABEL)),
    MetricName.ACCURACY: Metric(MetricName.ACCURACY, _accuracy, "maximize", _CLS),
    MetricName.RMSE: Metric(MetricName.RMSE, _rmse, "minimize", (Task.REGRESSION,)),
    MetricName.MAE: Metric(MetricName.MAE, _mae, "minimize", (Task.REGRESSION,)),
    MetricName.R2: Metric(MetricName.R2, _r2, "maximize", (Task.REGRESSION,)),
}

_DEFAULTS = {
    Task.BINARY: MetricName.ROC_AUC,
    Task.MULTICLASS: MetricName.LOGLOSS,
    Task.REGRESSION: MetricName.RMSE,
    Task.MULTILABEL: MetricName.ROC_AUC,
}


def proper_metric(task: Task) -> Metric:
    """The task's proper scoring rule: log loss for classes and labels, the (root) squared
    error for values. It rewards honest probabilities, where a ranking metric such as ROC-AUC
    would not notice squeezed ones."""
    return METRICS[MetricName.RMSE if task is Task.REGRESSION else MetricName.LOGLOSS]


def default_metric(task: Task) -> Metric:
    return METRICS[_DEFAULTS[task]]


def resolve_metric(name: str | MetricName | None, task: Task) -> Metric:
    """The metric named ``name`` (or the task's default), checked against the task."""
    if name is None:
        return default_metric(task)
    metric = METRICS[parse_choice(MetricName, name, "metric")]
    if task not in metric.tasks:
        valid = ", ".join(m.value for m, v in METRICS.items() if task in v.tasks)
        raise ConfigError(
            f"metric {metric.name.value!r} does not apply to a {task.value} task; "
            f"choose one of: {valid}"
        )
    return metric
