"""Infer the learning task from the target columns and encode the target as numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dnntune._names import setting_example, setting_name
from dnntune.config import Task
from dnntune.exceptions import DataError

__all__ = ["MAX_CLASSES", "Target", "class_label", "encode_target", "infer_task"]

MAX_CLASSES = 30  # an integer target with more distinct values than this is a regression
MIN_COMBINATION = 20  # multilabel: rarer label combinations share one stratum of the folds


def _is_integral(values: pd.Series) -> bool:
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return pd.api.types.is_bool_dtype(values)
    arr = values.to_numpy(dtype=float)
    return bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))


def infer_task(y: pd.DataFrame) -> Task:
    """Binary for two values, multiclass for labels or few integers, else regression.

    Several target columns mean multilabel when each has two values, else a regression with
    one output per column.
    """
    if y.shape[1] > 1:
        if all(y[c].nunique() == 2 for c in y.columns):
            return Task.MULTILABEL
        return Task.REGRESSION
    col = y.iloc[:, 0]
    n_unique = col.nunique()
    if n_unique <= 2:
        return Task.BINARY
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        return Task.MULTICLASS
    if _is_integral(col) and n_unique <= MAX_CLASSES:
        return Task.MULTICLASS
    return Task.REGRESSION


def class_label(value: Any) -> Any:
    """A JSON-friendly Python scalar for a class label."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class Target:
    """The encoded target: class codes (int64), 0/1 label matrix, or float values."""

    task: Task
    columns: tuple[str, ...]
    values: np.ndarray
    classes: list[Any] = field(default_factory=list)

    @property
    def n_outputs(self) -> int:
        if self.task is Task.MULTICLASS:
            return len(self.classes)
        if self.task in (Task.MULTILABEL, Task.REGRESSION):
            return len(self.columns)
        return 1

    @property
    def stratify(self) -> np.ndarray | None:
        """Labels to stratify the folds on: the class, or for multilabel the combination of
        labels (combinations rarer than ``MIN_COMBINATION`` rows share one stratum, which joins
        the most common one if still that rare); None for regression."""
        if self.task in (Task.BINARY, Task.MULTICLASS):
            return self.values
        if self.task is Task.MULTILABEL:
            _, keys = np.unique(self.values, axis=0, return_inverse=True)
            keys = keys.reshape(-1)
            counts = np.bincount(keys)
            rare = counts[keys] < MIN_COMBINATION
            if rare.any():
                keys = np.where(rare, len(counts), keys)
                if rare.sum() < MIN_COMBINATION:
                    keys[rare] = int(np.argmax(counts))
            return np.unique(keys, return_inverse=True)[1].reshape(-1)
        return None


def encode_target(y: pd.DataFrame, task: Task) -> Target:
    """Encode ``y`` (rows with a missing target already removed) for ``task``."""
    columns = tuple(str(c) for c in y.columns)
    if task is Task.MULTILABEL:
        mats = []
        for name in columns:
            levels = sorted(y[name].unique(), key=str)
            if len(levels) != 2:
                raise DataError(
                    f"multilabel target column {name!r} has {len(levels)} distinct values; "
                    "each label column needs exactly two (e.g. 0/1)"
                )
            mats.append((y[name].astype(str) == str(levels[1])).to_numpy(np.float32))
        return Target(task, columns, np.stack(mats, axis=1), classes=list(columns))
    if task is Task.REGRESSION:
        for name in columns:
            _check_regression(y[name], name)
        values = y.to_numpy(np.float32)
        return Target(task, columns, values[:, 0] if len(columns) == 1 else values)
    if len(columns) != 1:
        raise DataError(
            f"{setting_example('task', task.value)} takes one {setting_name('target')} column, "
            f"but got {len(columns)}: {', '.join(columns)}; pass one column, or use "
            f"{setting_example('task', 'multilabel')} or {setting_example('task', 'regression')}"
        )
    col = y.iloc[:, 0]
    codes, uniques = pd.factorize(col, sort=True)
    classes = [class_label(v) for v in uniques]
    if len(classes) < 2:
        raise DataError(
            f"target {columns[0]!r} has a single class ({classes[0]!r}) in all "
            f"{len(col)} rows; a classifier needs at least two classes"
        )
    if task is Task.BINARY and len(classes) > 2:
        raise DataError(
            f"{setting_example('task', 'binary')} needs two classes, but target {columns[0]!r} "
            f"has {len(classes)}; use {setting_example('task', 'multiclass')}"
        )
    return Target(task, columns, codes.astype(np.int64), classes=classes)


def _check_regression(col: pd.Series, name: str) -> None:
    """A regression target column: numbers, not all the same."""
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        sample = ", ".join(repr(v) for v in col.drop_duplicates().head(3))
        raise DataError(
            f"regression target {name!r} is not numeric (values such as {sample}); "
            f"pick a numeric target or use {setting_example('task', 'binary')} or "
            f"{setting_example('task', 'multiclass')}"
        )
    if col.nunique() < 2:
        value = col.iloc[0].item() if hasattr(col.iloc[0], "item") else col.iloc[0]
        raise DataError(
            f"regression target {name!r} has one value ({value!r}) in all "
            f"{len(col)} rows; there is nothing to learn"
        )
