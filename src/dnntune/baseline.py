"""A gradient-boosting baseline on a study's own folds.

Before its first trial, a study cross-validates scikit-learn's ``HistGradientBoosting`` with
its defaults on exactly the folds its trials run, scored with the study's metric: the answer to
"was a neural network worth it on this table?". The model reads the raw columns the networks
read (the study's dropped columns stay dropped): numbers as they are, missing values included;
categorical columns through its native categorical support, their levels numbered by their
frequency in the fold's training rows (the 254 most frequent; rarer and unseen levels are
missing); dates as days. The classifier and the regressor fit one model per label or target
column where there are several.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from dnntune.config import Task
from dnntune.data import ColumnPlan, Dataset, numeric_values, to_days
from dnntune.engine import Metric

__all__ = [
    "BASELINE_ATTR",
    "MODEL",
    "Baseline",
    "BaselineTooSlow",
    "baseline_predictions",
    "gbdt_baseline",
]

# The study user attribute that holds the baseline, for every process that opens the study.
BASELINE_ATTR = "baseline"
MODEL = "HistGradientBoosting"
# HistGradientBoosting takes at most 255 bins per feature, one of them for missing values.
_MAX_LEVELS = 254


@dataclass(frozen=True)
class Baseline:
    """The baseline's cross-validated scores: ``value``, the mean of its ``fold_scores``, and
    ``oof_value``, the score of its out-of-fold predictions pooled over the folds (the
    estimator the delivered model and the best trial are compared on)."""

    model: str
    metric: str
    value: float
    fold_scores: list[float]
    seconds: float
    oof_value: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, stored: Any) -> Baseline | None:
        """The baseline a study or a summary recorded (None when there is none)."""
        try:
            return cls(**stored)
        except TypeError:
            return None

    def line(self) -> str:
        folds = len(self.fold_scores)
        return (
            f"Baseline {self.model} on the same folds ({self.metric}): out-of-fold "
            f"{self.oof_value:.6f}, {folds}-fold mean {self.value:.6f} ({self.seconds:.1f} s)"
        )


class BaselineTooSlow(Exception):
    """The baseline's first folds show that all of them would not fit its time budget."""


def gbdt_baseline(
    dataset: Dataset,
    metric: Metric,
    n_folds: int,
    *,
    seed: int,
    time_budget: float | None = None,
) -> Baseline:
    """Cross-validate ``HistGradientBoosting`` (its defaults, ``random_state=seed``) on the
    first ``n_folds`` folds of ``dataset``, scored with ``metric``. With ``time_budget``
    (seconds), it stops as soon as the folds done show that all would take longer
    (:class:`BaselineTooSlow`)."""
    started = time.monotonic()
    scores, rows, pooled = [], [], []
    # scikit-learn's threaded helpers each swap the process's warning filters in and out, and
    # two threads doing so can leave one swap in place after the fit: restore the caller's.
    with warnings.catch_warnings():
        for k in range(n_folds):
            train = dataset.folds != k
            x_train, x_valid, categorical = _columns(dataset.plan, dataset.features, train)
            y = dataset.target.values
            predictions = _fit_predict(x_train, y[train], x_valid, dataset, categorical, seed)
            scores.append(float(metric(y[~train], predictions, dataset.task)))
            rows.append(np.flatnonzero(~train))
            pooled.append(predictions)
            spent = time.monotonic() - started
            projected = spent / (k + 1) * n_folds
            if time_budget is not None and k + 1 < n_folds and projected > time_budget:
                raise BaselineTooSlow(
                    f"the baseline's first {k + 1} fold(s) took {spent:.1f} s; its {n_folds} "
                    f"folds would take more than {time_budget:.0f} s, a quarter of the time left"
                )
    value = float(np.mean(scores)) if all(map(math.isfinite, scores)) else math.nan
    order = np.concatenate(rows)
    y = dataset.target.values[order]
    oof_value = float(metric(y, np.concatenate(pooled), dataset.task))
    seconds = round(time.monotonic() - started, 2)
    return Baseline(MODEL, metric.name.value, value, scores, seconds, oof_value)


def baseline_predictions(dataset: Dataset, rows: pd.DataFrame, *, seed: int) -> np.ndarray:
    """Fit the baseline on every row of ``dataset`` and predict ``rows`` (new rows with the
    dataset's feature columns), in the form the study's metrics read."""
    features = dataset.plan.features
    frame = pd.concat([dataset.features[features], rows[features]], ignore_index=True)
    train = np.arange(len(frame)) < dataset.n_rows
    with warnings.catch_warnings():  # as in gbdt_baseline: the caller's filters stay
        x_train, x_rows, categorical = _columns(dataset.plan, frame, train)
        return _fit_predict(x_train, dataset.target.values, x_rows, dataset, categorical, seed)


def _columns(
    plan: ColumnPlan, frame: pd.DataFrame, train: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The feature matrix of the training and validation rows, and which columns are
    categorical (level numbers)."""
    parts, categorical = [], []
    for name in plan.numeric:
        parts.append(numeric_values(frame[name]))
        categorical.append(False)
    for name in plan.categorical:
        parts.append(_levels(frame[name], train))
        categorical.append(True)
    for name in plan.datetime:
        parts.append(to_days(frame[name]))
        categorical.append(False)
    matrix = np.column_stack(parts)
    return matrix[train], matrix[~train], np.array(categorical, dtype=bool)


def _levels(column: pd.Series, train: np.ndarray) -> np.ndarray:
    """Level numbers by frequency in the training rows; rare, unseen and missing: NaN."""
    text = column.astype("string")
    counts = text[train].value_counts(dropna=True)
    kept = counts.index[:_MAX_LEVELS]
    numbers = pd.Series(np.arange(len(kept), dtype=np.float64), index=kept)
    return text.map(numbers).to_numpy(np.float64, na_value=np.nan)


def _fit_predict(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    dataset: Dataset,
    categorical: np.ndarray,
    seed: int,
) -> np.ndarray:
    """Predictions for the validation rows in the form the study's metrics read."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    task = dataset.task
    mask = categorical if categorical.any() else None

    def classifier() -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(categorical_features=mask, random_state=seed)

    if task is Task.REGRESSION:
        columns = y_train.reshape(len(y_train), -1)
        values = [
            HistGradientBoostingRegressor(categorical_features=mask, random_state=seed)
            .fit(x_train, columns[:, j])
            .predict(x_valid)
            for j in range(columns.shape[1])
        ]
        return values[0] if y_train.ndim == 1 else np.stack(values, axis=1)
    if task is Task.MULTILABEL:
        return np.stack(
            [_proba_of(classifier(), x_train, y_train[:, j], x_valid, 2)[:, 1]
             for j in range(y_train.shape[1])],
            axis=1,
        )  # fmt: skip
    proba = _proba_of(classifier(), x_train, y_train, x_valid, len(dataset.target.classes))
    return proba[:, 1] if task is Task.BINARY else proba


def _proba_of(
    model: Any, x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, n_classes: int
) -> np.ndarray:
    """Probabilities of every class 0..n_classes-1 (0 for a class the training rows lack)."""
    labels = np.asarray(y_train).astype(np.int64)
    out = np.zeros((len(x_valid), n_classes))
    present = np.unique(labels)
    if len(present) == 1:  # a label constant in these training rows
        out[:, present[0]] = 1.0
        return out
    model.fit(x_train, labels)
    out[:, model.classes_.astype(np.int64)] = model.predict_proba(x_valid)
    return out
