"""Typed, frozen configuration of a tuning run, checked once at the boundary.

Names chosen by the user (task, metric, sampler, pruner) are ``StrEnum`` members; each enum is
the single registry key of its family and also feeds the CLI's help.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from dnntune._redact import redact
from dnntune.exceptions import ConfigError

__all__ = [
    "ActivationName",
    "BinEncoding",
    "MetricName",
    "OptimizerName",
    "PrunerName",
    "SamplerName",
    "Task",
    "TuneConfig",
    "parse_choice",
]

E = TypeVar("E", bound=StrEnum)


class Task(StrEnum):
    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"
    MULTILABEL = "multilabel"


class MetricName(StrEnum):
    ROC_AUC = "roc_auc"
    LOGLOSS = "logloss"
    ACCURACY = "accuracy"
    RMSE = "rmse"
    MAE = "mae"
    R2 = "r2"


class OptimizerName(StrEnum):
    """Optimizers a trial can use; stored in the study as these strings."""

    ADAM = "Adam"
    ADAMW = "AdamW"
    SGD = "SGD"
    RMSPROP = "RMSprop"


class ActivationName(StrEnum):
    RELU = "relu"
    GELU = "gelu"
    SILU = "silu"
    TANH = "tanh"
    LEAKY_RELU = "leaky_relu"
    ELU = "elu"


class SamplerName(StrEnum):
    GRID = "grid"
    RANDOM = "random"
    TPE = "tpe"
    GP = "gp"
    CMAES = "cmaes"
    QMC = "qmc"


class BinEncoding(StrEnum):
    """How a numeric value's quantile bin reaches the model (see data.Preprocessor)."""

    LINEAR = "linear"  # 1 for the bins below the value, its position (0-1) inside its own, 0 above
    ONEHOT = "onehot"  # a 1 in the value's bin only (the previous release's encoding)


class PrunerName(StrEnum):
    NONE = "none"
    MEDIAN = "median"
    HYPERBAND = "hyperband"


def parse_choice(enum: type[E], value: str | E, what: str) -> E:
    """Return ``enum(value)`` or raise a :class:`ConfigError` listing the valid names."""
    if isinstance(value, enum):
        return value
    try:
        return enum(str(value).strip().lower())
    except ValueError:
        valid = ", ".join(m.value for m in enum)
        raise ConfigError(f"unknown {what} {value!r}; choose one of: {valid}") from None


# Settings that name columns: a comma-separated string or a sequence, stored as a tuple.
_COLUMN_SETTINGS = ("target", "drop", "categorical")
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


# Quantile bins encoded beside each numeric column (see data.Preprocessor).
NUMERIC_BINS = 32


@dataclass(frozen=True)
class TuneConfig:
    """Everything that defines a tuning run; saved in the study and beside the outputs.

    ``trials`` is the total number of finished (complete or pruned) trials the study should
    hold: running the same configuration again resumes and only runs the missing ones.
    """

    data: str = "builtin:breast_cancer"
    target: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()  # feature columns one-hot encoded whatever their values
    task: Task | None = None
    metric: MetricName | None = None
    folds: int = 5
    max_folds: int | None = None
    fold_column: str | None = None
    sampler: SamplerName = SamplerName.TPE
    pruner: PrunerName = PrunerName.MEDIAN
    trials: int | None = None
    timeout: float | None = None
    seed: int = 42
    fold_seed: int | None = None  # the fold split's seed when it differs from ``seed``
    space: str | None = None
    grid_points: int = 3
    patience: int = 5
    numeric_bins: int = NUMERIC_BINS
    bin_encoding: BinEncoding = BinEncoding.LINEAR
    group_duplicates: bool = False
    copy_encoding: bool = True
    study: str | None = None
    storage: str | None = None
    output_dir: str | None = None
    warm_start: bool = True
    device: str = "auto"
    jobs: int = 1
    auto_stop: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Accept plain strings from Python callers: tune(sampler="random", target="y").
        coerce = {
            "task": (Task, "task"),
            "metric": (MetricName, "metric"),
            "sampler": (SamplerName, "sampler"),
            "pruner": (PrunerName, "pruner"),
            "bin_encoding": (BinEncoding, "bin encoding"),
        }
        for name, (enum, what) in coerce.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, enum):
                object.__setattr__(self, name, parse_choice(enum, value, what))
        for name in _COLUMN_SETTINGS:
            value = getattr(self, name)
            if isinstance(value, str):
                value = tuple(v.strip() for v in value.split(",") if v.strip())
            object.__setattr__(self, name, tuple(value))
        # A set of columns: in any order, the same study.
        object.__setattr__(self, "categorical", tuple(sorted(set(self.categorical))))
        problems: list[str] = []
        if self.folds < 2:
            problems.append(f"--folds must be at least 2, but got {self.folds}")
        if self.max_folds is not None and not 1 <= self.max_folds <= self.folds:
            problems.append(
                f"--max-folds must be between 1 and --folds={self.folds}, but got {self.max_folds}"
            )
        if self.trials is not None and self.trials < 1:
            problems.append(f"--trials must be at least 1, but got {self.trials}")
        if self.timeout is not None and self.timeout <= 0:
            problems.append(f"--timeout must be a positive number of seconds, got {self.timeout}")
        if self.jobs < 1:
            problems.append(f"--jobs must be at least 1, but got {self.jobs}")
        if self.grid_points < 2:
            problems.append(f"--grid-points must be at least 2, but got {self.grid_points}")
        if self.patience < 1:
            problems.append(f"--patience must be at least 1, but got {self.patience}")
        if self.numeric_bins == 1 or not 0 <= self.numeric_bins <= 1024:
            problems.append(
                f"--numeric-bins must be 0 (off) or between 2 and 1024, got {self.numeric_bins}"
            )
        if self.group_duplicates and self.fold_column is not None:
            problems.append(
                "--group-duplicates and --fold-column both decide the folds; use one of them"
            )
        if self.study is not None and not _STUDY_NAME.match(self.study):
            problems.append(
                f"--study {self.study!r} is not a valid name; use letters, digits, '_', '.', '-'"
            )
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            problems.append(f"--device must be auto, cpu, cuda or cuda:N, but got {self.device!r}")
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def n_trials(self) -> int | None:
        """Trials to aim for: the given count, 20 when neither a count nor a timeout is set."""
        if self.trials is None and self.timeout is None:
            return 20
        return self.trials

    @property
    def split_seed(self) -> int:
        """The seed of the fold split: ``fold_seed``, or ``seed`` when that is not set."""
        return self.seed if self.fold_seed is None else self.fold_seed

    @property
    def study_name(self) -> str:
        if self.study:
            return self.study
        stem = self.data.removeprefix("builtin:")
        stem = Path(stem).name
        for suffix in (".gz", ".csv", ".tsv", ".parquet", ".pq", ".txt"):
            stem = stem.removesuffix(suffix)
        target = "-".join(self.target) if self.target else ""
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{stem}-{target}" if target else stem)
        return name.strip("_.-")[:100] or "study"

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) if self.output_dir else Path("runs") / self.study_name

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, StrEnum):
                value = value.value
            out[f.name] = value
        if self.storage:
            out["storage"] = redact(self.storage)
        return out

    @property
    def copies(self) -> bool:
        """Whether the copy encoding is in play: asked for, and folds that can put a copy of a
        training row among the validation rows (not ``group_duplicates``, where training rows
        would learn from copies no validation row has)."""
        return self.copy_encoding and not self.group_duplicates

    def identity(self) -> dict[str, Any]:
        """The settings that must match for a study to be resumed with this configuration."""
        keys = (
            "data",
            "target",
            "drop",
            "categorical",
            "task",
            "metric",
            "folds",
            "fold_column",
            "seed",
            "fold_seed",
            "numeric_bins",
            "bin_encoding",
            "group_duplicates",
            "copy_encoding",
        )
        full = {**self.to_dict(), "fold_seed": self.split_seed, "copy_encoding": self.copies}
        return stored_identity({k: full[k] for k in keys})

    @classmethod
    def from_stored(cls, stored: dict[str, Any], **overrides: Any) -> TuneConfig:
        """The configuration a study or model folder recorded (``to_dict`` output), with
        ``overrides``. Keys it lacks because an older dnntune wrote it get the value that
        version used, not today's default; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {**BEFORE_THEY_EXISTED, **{k: v for k, v in stored.items() if k in names}}
        for key in _COLUMN_SETTINGS:
            values[key] = tuple(values.get(key) or ())
        values.update(overrides)
        return cls(**values)


# Settings added after the first release, with the behaviour of the versions before them.
BEFORE_THEY_EXISTED: dict[str, Any] = {
    "numeric_bins": 0,
    "bin_encoding": BinEncoding.ONEHOT.value,
    "group_duplicates": False,
    "categorical": [],
    "copy_encoding": False,
}


def stored_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """A study identity (``TuneConfig.identity``, or one an older dnntune stored) in today's
    terms: missing settings get their old behaviour, and the bin encoding counts only when
    there are bins."""
    out = {**BEFORE_THEY_EXISTED, **identity}
    if out.get("fold_seed") is None:  # the folds came from the one seed
        out["fold_seed"] = out.get("seed")
    if not out.get("numeric_bins"):
        out["bin_encoding"] = None
    return out
