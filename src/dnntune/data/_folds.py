"""Assign each row to a cross-validation fold."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from dnntune.config import Task
from dnntune.data._target import Target
from dnntune.exceptions import DataError

__all__ = ["assign_folds", "folds_from_column"]


def assign_folds(target: Target, n_folds: int, seed: int) -> np.ndarray:
    """Fold ids 0..K-1: stratified for classification (on label combinations for multilabel),
    plain shuffled K-fold for regression."""
    n = len(target.values)
    if n < n_folds:
        raise DataError(f"--folds={n_folds} needs at least {n_folds} rows, but the table has {n}")
    folds = np.empty(n, dtype=np.int64)
    strat = target.stratify
    if strat is not None:
        counts = np.bincount(strat)
        least = int(np.argmin(counts))
        if counts[least] < n_folds and target.task is not Task.MULTILABEL:
            raise DataError(
                f"class {target.classes[least]!r} of target {target.columns[0]!r} has only "
                f"{counts[least]} rows, fewer than --folds={n_folds}; use fewer folds or "
                "merge rare classes"
            )
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            splits = list(splitter.split(np.zeros(n), strat))
    else:
        splits = list(KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(np.zeros(n)))
    for fold, (_, valid) in enumerate(splits):
        folds[valid] = fold
    return folds


def folds_from_column(column: pd.Series) -> np.ndarray:
    """Fold ids from an existing column (e.g. ``kfold`` of a ``train_folds.csv``)."""
    if column.isna().any():
        raise DataError(
            f"fold column {column.name!r} has {int(column.isna().sum())} missing values; "
            "every row needs a fold"
        )
    codes, uniques = pd.factorize(column, sort=True)
    if len(uniques) < 2:
        raise DataError(
            f"fold column {column.name!r} has a single value; it needs at least two folds"
        )
    return codes.astype(np.int64)
