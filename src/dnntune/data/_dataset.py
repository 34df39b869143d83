"""From a table and the user's column choices to features, an encoded target and folds."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dnntune._names import Message, did_you_mean, setting_example, setting_name, short_list
from dnntune.config import Columns, Task, TuneConfig
from dnntune.data._folds import assign_folds, duplicate_groups, folds_from_column
from dnntune.data._io import LoadedTable, load_table
from dnntune.data._preprocess import ColumnPlan, plan_columns, refuse_unbounded
from dnntune.data._target import Target, encode_target, infer_task
from dnntune.exceptions import DataError

__all__ = ["Dataset", "build_dataset", "dataset_from_config", "fold_table", "plan_features"]


@dataclass
class Dataset:
    """A table ready for cross-validation. ``features`` still holds raw values."""

    features: pd.DataFrame
    target: Target
    folds: np.ndarray
    plan: ColumnPlan
    source: str
    notes: list[str] = field(default_factory=list)
    row_ids: np.ndarray | None = None  # each row's position in the file (missing targets removed)

    @property
    def task(self) -> Task:
        return self.target.task

    @property
    def n_rows(self) -> int:
        return len(self.features)

    @property
    def n_folds(self) -> int:
        return int(self.folds.max()) + 1


def _check_columns(frame: pd.DataFrame, names: tuple[str, ...], option: str) -> None:
    missing = [n for n in names if n not in frame.columns]
    if not missing:
        return
    hints = "".join(did_you_mean(m, frame.columns) for m in missing[:1])
    raise DataError(
        f"{setting_name(option)} column{'s' if len(missing) > 1 else ''} {short_list(missing)} "
        f"not in the table{hints}; the table has {len(frame.columns)} columns: "
        f"{short_list(list(frame.columns))}"
    )


def _check_choices(frame: pd.DataFrame, columns: Columns, target: tuple[str, ...]) -> None:
    """Every column named exists, and none has two roles."""
    _check_columns(frame, target, "target")
    _check_columns(frame, columns.drop, "drop")
    _check_columns(frame, columns.categorical, "categorical")
    if columns.fold_column is not None:
        _check_columns(frame, (columns.fold_column,), "fold_column")
    clash = set(target) & ({*columns.drop} | {columns.fold_column})
    if clash:
        raise DataError(f"column {short_list(sorted(clash))} is both the target and dropped")
    unused = sorted(set(columns.categorical) & {*target, *columns.drop, columns.fold_column})
    if unused:
        raise DataError(
            f"{setting_name('categorical')} column {short_list(unused)} is not a feature (it is "
            "the target, dropped or the fold column); name feature columns only"
        )


def _with_target(
    frame: pd.DataFrame, target: tuple[str, ...], name: str, notes: list[str]
) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows whose target is present, and their positions in the file."""
    has_target = frame[list(target)].notna().all(axis=1).to_numpy()
    if not has_target.any():
        raise DataError(f"target {short_list(target)} is missing in every row of {name!r}")
    if not has_target.all():
        notes.append(f"dropped {int((~has_target).sum())} rows with a missing target")
        frame = frame.loc[has_target].reset_index(drop=True)
    return frame, np.flatnonzero(has_target)


def _check_fold_classes(folds: np.ndarray, target: Target, column: str) -> None:
    """A fold column whose folds each hold one class (one that repeats the target, say) leaves
    every fold's validation score undefined for two classes: refuse it."""
    if target.task is not Task.BINARY:
        return
    for k in range(int(folds.max()) + 1):
        classes = np.unique(target.values[folds == k])
        if len(classes) < 2:
            label = target.classes[int(classes[0])]
            raise DataError(
                f"fold {k} of {setting_name('fold_column')} {column!r} holds only class "
                f"{label!r} of target {target.columns[0]!r} (does the column repeat the "
                "target?); each fold needs both classes to be scored: use another fold column, "
                f"or leave {setting_name('fold_column')} unset for stratified folds"
            )


def _fold_ids(
    frame: pd.DataFrame,
    features: pd.DataFrame,
    encoded: Target,
    columns: Columns,
    seed: int,
    notes: list[str],
) -> np.ndarray:
    if columns.fold_column is not None:
        folds = folds_from_column(frame[columns.fold_column])
        _check_fold_classes(folds, encoded, columns.fold_column)
        return folds
    groups = duplicate_groups(features)
    copied = 1.0 - (int(groups.max()) + 1) / len(groups)  # ids are 0..distinct-1
    if not columns.group_duplicates and copied >= DUPLICATE_NOTE_SHARE:
        notes.append(
            f"{copied:.0%} of the rows repeat another row's features; random folds put copies "
            f"on both sides, so scores also reward recalling them; "
            f"{setting_name('group_duplicates')} keeps copies in one fold"
        )
    return assign_folds(encoded, columns.folds, seed, groups if columns.group_duplicates else None)


def plan_features(
    features: pd.DataFrame,
    y: pd.DataFrame,
    target: Target,
    categorical: Collection[str] = (),
    row_ids: np.ndarray | None = None,
    *,
    numbers_are_quantities: bool = False,
) -> ColumnPlan:
    """The role of each feature column (:func:`plan_columns`), refusing a table with no
    feature left, and numbers a network cannot compute with in a numeric column or a
    regression target ``y`` (named by their row in the file, ``row_ids``). The one check of
    features and target that ``tune`` and the estimators share."""
    plan = plan_columns(features, categorical, numbers_are_quantities=numbers_are_quantities)
    if not plan.features:
        raise DataError(
            "every feature column was dropped as constant or ID-like: " + "; ".join(plan.notes())
        )
    for name in plan.numeric:
        refuse_unbounded(features[name], name, row_ids)
    if target.task is Task.REGRESSION:
        for name in y.columns:
            refuse_unbounded(y[name], str(name), row_ids)
    return plan


def build_dataset(table: LoadedTable, columns: Columns, seed: int) -> Dataset:
    """Validate the column choices, encode the target and assign folds (split with ``seed``).

    ``columns.categorical`` names feature columns to one-hot encode whatever their values (see
    :func:`plan_columns`). ``columns.group_duplicates`` keeps rows with identical features in
    one fold, so a validation fold never holds a copy of a training row; without it, a note
    reports their share when it is at least ``DUPLICATE_NOTE_SHARE``.
    """
    target = columns.target or table.default_target
    if not target:
        raise DataError(
            f"no {setting_name('target')} given for {table.name!r}; name the column to "
            f"predict, e.g. {setting_example('target', table.frame.columns[-1])}"
        )
    _check_choices(table.frame, columns, target)
    notes: list[str] = []
    frame, row_ids = _with_target(table.frame, target, table.name, notes)
    encoded = encode_target(frame[list(target)], columns.task or infer_task(frame[list(target)]))
    excluded = {*target, *columns.drop, columns.fold_column}
    features = frame[[c for c in frame.columns if c not in excluded]]
    if features.shape[1] == 0:
        raise DataError(
            f"no feature columns left after removing the target and {setting_name('drop')} columns"
        )
    plan = plan_features(features, frame[list(target)], encoded, columns.categorical, row_ids)
    fold_ids = _fold_ids(frame, features[plan.features], encoded, columns, seed, notes)
    notes += plan.notes()
    messages: list[str] = [Message(n) for n in notes]
    return Dataset(features, encoded, fold_ids, plan, table.source, messages, row_ids)


# Share of rows that copy another row's features from which build_dataset says so.
DUPLICATE_NOTE_SHARE = 0.05


def dataset_from_config(config: TuneConfig) -> Dataset:
    """Read the configured table and build the dataset its columns and folds describe."""
    return build_dataset(load_table(config.columns.data), config.columns, config.split_seed)


def fold_table(table: LoadedTable, config: TuneConfig, *, column: str = "kfold") -> pd.DataFrame:
    """The table with a fold column added (rows with a missing target are left out): the
    folds ``tune`` splits with the same settings. The task decides whether the folds are
    stratified, and the feature columns which rows are copies for ``group_duplicates``.
    Dropped columns stay in the table written."""
    if column in table.frame.columns:
        raise DataError(
            f"the table already has a column {column!r}; pass another name with "
            f"{setting_name('fold_column')}"
        )
    dataset = build_dataset(table, config.columns, config.split_seed)
    target = list(config.columns.target or table.default_target)
    frame = table.frame.loc[table.frame[target].notna().all(axis=1)].reset_index(drop=True)
    return frame.assign(**{column: dataset.folds})
