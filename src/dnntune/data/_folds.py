"""Assign each row to a cross-validation fold."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from dnntune._names import setting_example, setting_name
from dnntune.config import Task
from dnntune.data._target import Target
from dnntune.exceptions import DataError

__all__ = ["assign_folds", "duplicate_groups", "folds_from_column"]


def duplicate_groups(features: pd.DataFrame) -> np.ndarray:
    """One group id per distinct feature row: rows with identical values share an id."""
    hashes = pd.util.hash_pandas_object(features, index=False).to_numpy()
    return pd.factorize(hashes)[0].astype(np.int64)


def assign_folds(
    target: Target, n_folds: int, seed: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """Fold ids 0..K-1: stratified for classification (on label combinations for multilabel),
    plain shuffled K-fold for regression. Rows with the same ``groups`` id (0..G-1, as
    :func:`duplicate_groups` gives) share a fold."""
    n = len(target.values)
    if n < n_folds:
        raise DataError(
            f"{setting_name('folds')}={n_folds} needs at least {n_folds} rows, but the table "
            f"has {n}"
        )
    n_groups = 0 if groups is None else int(groups.max()) + 1
    if groups is not None and n_groups < n_folds:
        raise DataError(
            f"{setting_name('group_duplicates')} with {setting_name('folds')}={n_folds} needs "
            f"at least {n_folds} distinct rows, but the table has {n_groups}; use fewer folds"
        )
    # Imported here: scikit-learn takes seconds to import, which input errors need not wait for.
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

    folds = np.empty(n, dtype=np.int64)
    strat = target.stratify
    if strat is not None:
        counts = np.bincount(strat)
        least = int(np.argmin(counts))
        if counts[least] < n_folds and target.task is not Task.MULTILABEL:
            numbers = all(isinstance(c, int) for c in target.classes)
            raise DataError(
                f"class {target.classes[least]!r} of target {target.columns[0]!r} has only "
                f"{counts[least]} rows, fewer than {setting_name('folds')}={n_folds}; use fewer "
                "folds or merge rare classes"
                + (
                    f", or {setting_example('task', 'regression')} if its values are quantities"
                    if numbers
                    else ""
                )
            )
        if groups is not None:
            return _stratified_groups(strat, groups, n_folds, seed)
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            splits = list(splitter.split(np.zeros(n), strat))
    elif groups is None:
        splits = list(KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(np.zeros(n)))
    else:
        # GroupKFold balances fold sizes deterministically; relabelling the groups at random
        # (seeded) breaks its ties differently for each seed.
        relabel = np.random.default_rng(seed).permutation(n_groups)
        splits = list(GroupKFold(n_splits=n_folds).split(np.zeros(n), groups=relabel[groups]))
    for fold, (_, valid) in enumerate(splits):
        folds[valid] = fold
    return folds


def _stratified_groups(
    strat: np.ndarray, groups: np.ndarray, n_folds: int, seed: int
) -> np.ndarray:
    """Stratified folds that keep each group in one fold.

    ``StratifiedGroupKFold`` weighs every group against every fold in Python, which takes
    seconds per ten thousand groups. Most duplicate groups are single rows, so those are split
    by ``StratifiedKFold`` and only the groups of several rows by ``StratifiedGroupKFold``: each
    part is stratified, and so is their union.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    single = np.bincount(groups)[groups] == 1
    whole = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    parts = [
        (single, StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)),
        (~single, whole),
    ]
    folds = np.empty(len(groups), dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a class rarer than the folds
        try:
            for rows, splitter in parts:
                index = np.flatnonzero(rows)
                split = splitter.split(np.zeros(len(index)), strat[index], groups[index])
                for fold, (_, valid) in enumerate(split):
                    folds[index[valid]] = fold
        except ValueError:  # a part too small to split in K (a small table): split it whole
            for fold, (_, valid) in enumerate(whole.split(np.zeros(len(groups)), strat, groups)):
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
