"""Data stage: read tables, infer the task, assign folds, preprocess per fold."""

from dnntune.data._dataset import (
    Dataset,
    build_dataset,
    dataset_from_config,
    fold_table,
    plan_features,
)
from dnntune.data._folds import assign_folds, duplicate_groups, folds_from_column
from dnntune.data._io import Builtin, LoadedTable, load_table
from dnntune.data._prepare import (
    FOLD_CACHE_SHARE,
    FoldCache,
    FoldTensors,
    PreparedFold,
    Scale,
    free_memory,
    prepare_fold,
)
from dnntune.data._preprocess import (
    MISSING,
    OTHER,
    SMOOTH_CLIP,
    ColumnPlan,
    InputLayout,
    Preprocessor,
    category_levels,
    numeric_values,
    plan_columns,
    refuse_unbounded,
    to_days,
    unparsed_dates_note,
    unparsed_values,
)
from dnntune.data._target import Target, class_label, encode_target, infer_task

__all__ = [
    "FOLD_CACHE_SHARE",
    "MISSING",
    "OTHER",
    "SMOOTH_CLIP",
    "Builtin",
    "ColumnPlan",
    "Dataset",
    "FoldCache",
    "FoldTensors",
    "InputLayout",
    "LoadedTable",
    "PreparedFold",
    "Preprocessor",
    "Scale",
    "Target",
    "assign_folds",
    "build_dataset",
    "category_levels",
    "class_label",
    "dataset_from_config",
    "duplicate_groups",
    "encode_target",
    "fold_table",
    "folds_from_column",
    "free_memory",
    "infer_task",
    "load_table",
    "numeric_values",
    "plan_columns",
    "plan_features",
    "prepare_fold",
    "refuse_unbounded",
    "to_days",
    "unparsed_dates_note",
    "unparsed_values",
]
