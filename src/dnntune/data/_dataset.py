"""From a table and the user's column choices to features, an encoded target and folds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dnntune._names import did_you_mean, short_list
from dnntune.config import Task, TuneConfig
from dnntune.data._folds import assign_folds, duplicate_groups, folds_from_column
from dnntune.data._io import LoadedTable, load_table
from dnntune.data._preprocess import ColumnPlan, plan_columns
from dnntune.data._target import Target, encode_target, infer_task
from dnntune.exceptions import DataError

__all__ = ["Dataset", "build_dataset", "dataset_from_config", "fold_table"]


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
        f"{option} column{'s' if len(missing) > 1 else ''} {short_list(missing)} not in the "
        f"table{hints}; the table has {len(frame.columns)} columns: "
        f"{short_list(list(frame.columns))}"
    )


def build_dataset(
    table: LoadedTable,
    *,
    target: tuple[str, ...] = (),
    drop: tuple[str, ...] = (),
    task: Task | None = None,
    folds: int = 5,
    fold_column: str | None = None,
    seed: int = 42,
    group_duplicates: bool = False,
    categorical: tuple[str, ...] = (),
) -> Dataset:
    """Validate the column choices, encode the target and assign folds.

    ``categorical`` names feature columns to one-hot encode whatever their values (see
    :func:`plan_columns`).

    ``group_duplicates`` keeps rows with identical features in one fold, so a validation fold
    never holds a copy of a training row; without it, a note reports their share when it is
    at least ``DUPLICATE_NOTE_SHARE``.
    """
    frame = table.frame
    target = target or table.default_target
    if not target:
        raise DataError(
            f"no --target given for {table.name!r}; name the column to predict, e.g. "
            f"--target {frame.columns[-1]}"
        )
    _check_columns(frame, target, "--target")
    _check_columns(frame, drop, "--drop")
    _check_columns(frame, categorical, "--categorical")
    if fold_column is not None:
        _check_columns(frame, (fold_column,), "--fold-column")
    clash = set(target) & ({*drop} | {fold_column})
    if clash:
        raise DataError(f"column {short_list(sorted(clash))} is both the target and dropped")
    unused = sorted(set(categorical) & {*target, *drop, fold_column})
    if unused:
        raise DataError(
            f"--categorical column {short_list(unused)} is not a feature (it is the target, "
            "dropped or the fold column); name feature columns only"
        )

    notes: list[str] = []
    y = frame[list(target)]
    has_target = y.notna().all(axis=1).to_numpy()
    row_ids = np.flatnonzero(has_target)
    if not has_target.all():
        notes.append(f"dropped {int((~has_target).sum())} rows with a missing target")
        frame = frame.loc[has_target].reset_index(drop=True)
        y = y.loc[has_target].reset_index(drop=True)
    if len(frame) == 0:
        raise DataError(f"target {short_list(target)} is missing in every row of {table.name!r}")

    task = task or infer_task(y)
    encoded = encode_target(y, task)
    excluded = {*target, *drop} | ({fold_column} if fold_column else set())
    features = frame[[c for c in frame.columns if c not in excluded]]
    if features.shape[1] == 0:
        raise DataError("no feature columns left after removing the target and --drop columns")
    plan = plan_columns(features, categorical)
    if not plan.features:
        raise DataError(
            "every feature column was dropped as constant or ID-like: " + "; ".join(plan.notes())
        )
    if fold_column is not None:
        fold_ids = folds_from_column(frame[fold_column])
    else:
        groups = duplicate_groups(features[plan.features])
        copied = 1.0 - (int(groups.max()) + 1) / len(groups)  # ids are 0..distinct-1
        if not group_duplicates and copied >= DUPLICATE_NOTE_SHARE:
            notes.append(
                f"{copied:.0%} of the rows repeat another row's features; random folds put "
                "copies on both sides, so scores also reward recalling them; "
                "--group-duplicates keeps copies in one fold"
            )
        fold_ids = assign_folds(encoded, folds, seed, groups if group_duplicates else None)
    notes += plan.notes()
    return Dataset(features, encoded, fold_ids, plan, table.source, notes, row_ids)


# Share of rows that copy another row's features from which build_dataset says so.
DUPLICATE_NOTE_SHARE = 0.05


def dataset_from_config(config: TuneConfig) -> Dataset:
    """Read ``config.data`` and build the dataset its column, task and fold settings describe."""
    return build_dataset(
        load_table(config.data),
        target=config.target,
        drop=config.drop,
        task=config.task,
        folds=config.folds,
        fold_column=config.fold_column,
        seed=config.split_seed,
        group_duplicates=config.group_duplicates,
        categorical=config.categorical,
    )


def fold_table(
    table: LoadedTable,
    *,
    target: tuple[str, ...] = (),
    folds: int = 5,
    seed: int = 42,
    column: str = "kfold",
    group_duplicates: bool = False,
    drop: tuple[str, ...] = (),
    categorical: tuple[str, ...] = (),
    task: Task | None = None,
) -> pd.DataFrame:
    """The table with a fold column added (rows with a missing target are left out): the
    folds ``tune`` splits with the same settings. ``drop``, ``categorical`` and ``task`` are
    tune's: the task decides whether the folds are stratified, and the feature columns which
    rows are copies for ``group_duplicates``. Dropped columns stay in the table written."""
    if column in table.frame.columns:
        raise DataError(
            f"the table already has a column {column!r}; pass another name with --fold-column"
        )
    dataset = build_dataset(
        table,
        target=target,
        drop=drop,
        task=task,
        folds=folds,
        seed=seed,
        group_duplicates=group_duplicates,
        categorical=categorical,
    )
    target = target or table.default_target
    frame = table.frame.loc[table.frame[list(target)].notna().all(axis=1)].reset_index(drop=True)
    return frame.assign(**{column: dataset.folds})
