"""The settings of a tuning run, one frozen group per stage, composed into :class:`TuneConfig`;
:data:`SETTINGS` lists every one by name."""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from dnntune._names import setting_name
from dnntune._redact import redact
from dnntune.config._choices import (
    MetricName,
    NumericScaling,
    PrunerName,
    SamplerName,
    Task,
)
from dnntune.config._setting import (
    Group,
    Setting,
    at_least,
    setting,
)
from dnntune.exceptions import ConfigError

__all__ = [
    "CONFIG_FORMAT",
    "GROUPS",
    "MAX_SEED",
    "SETTINGS",
    "Columns",
    "Preprocessing",
    "Run",
    "Search",
    "Training",
    "TuneConfig",
]

# The format of a stored study identity; a study stored in another format is refused.
CONFIG_FORMAT = 1


# --- the checks of single settings ---


def _positive(v: Any) -> str | None:
    if v is None or (v > 0 and math.isfinite(v)):
        return None
    return f"must be a positive number of seconds, but got {v}"


# NumPy's and scikit-learn's seeds: 32-bit unsigned integers.
MAX_SEED = 2**32 - 1


def _seed(v: int | None) -> str | None:
    if v is None or 0 <= v <= MAX_SEED:
        return None
    return f"must be between 0 and {MAX_SEED}, but got {v}"


def _bins(v: int) -> str | None:
    if v == 0 or 2 <= v <= 1024:
        return None
    return f"must be 0 (off) or between 2 and 1024, but got {v}"


_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _study_name(v: str | None) -> str | None:
    if v is None or _STUDY_NAME.match(v):
        return None
    return f"{v!r} is not a valid name; use letters, digits, '_', '.', '-'"


def _device(v: str) -> str | None:
    if v in ("auto", "cpu", "cuda") or v.startswith("cuda:"):
        return None
    return f"must be auto, cpu, cuda or cuda:N, but got {v!r}"


def _choices(enum: type[StrEnum]) -> str:
    return ", ".join(m.value for m in enum)


# --- the groups, one per stage -------------------------------------------------------------


@dataclass(frozen=True)
class Columns(Group):
    """The table, its columns and how its rows are split into folds (the data stage)."""

    data: str = setting(
        "builtin:breast_cancer",
        "CSV/TSV(.gz)/Parquet file, or builtin:breast_cancer|digits|diabetes.",
        identity=True,
    )
    target: tuple[str, ...] = setting(
        (),
        "Target column; several (comma-separated): multilabel when each has two values, else a "
        "regression per column.",
        identity=True,
    )
    drop: tuple[str, ...] = setting((), "Columns to ignore (comma-separated).", identity=True)
    categorical: tuple[str, ...] = setting(
        (),
        "Columns to one-hot encode whatever their values, e.g. numeric codes (comma-separated).",
        identity=True,
    )
    task: Task | None = setting(None, f"Force the task: {_choices(Task)}.", identity=True)
    folds: int = setting(5, "Number of cross-validation folds.", check=at_least(2), identity=True)
    fold_column: str | None = setting(None, "Use this existing fold column.", identity=True)
    fold_seed: int | None = setting(
        None,
        f"Seed of the fold split only (default: {setting_name('seed')}): other seeds, the "
        "same folds.",
        check=_seed,
    )
    group_duplicates: bool = setting(
        False,
        "Keep rows with identical features in one fold (no copy of a training row is "
        "validated on).",
        identity=True,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        # A set of columns: in any order, the same study.
        object.__setattr__(self, "categorical", tuple(sorted(set(self.categorical))))

    def _cross_checks(self) -> list[str]:
        if self.group_duplicates and self.fold_column is not None:
            return [
                f"{setting_name('group_duplicates')} and {setting_name('fold_column')} both "
                "decide the folds; use one of them"
            ]
        return []


@dataclass(frozen=True)
class Preprocessing(Group):
    """How each fold's training rows are turned into the network's inputs."""

    numeric_bins: int = setting(
        32,
        "Quantile bins encoded beside each numeric column (at most one per 500 training "
        "rows); 0 turns them off.",
        check=_bins,
        identity=True,
    )
    numeric_scaling: NumericScaling = setting(
        NumericScaling.STANDARD,
        f"How numeric columns are scaled: {_choices(NumericScaling)}; standard: minus the "
        "mean, over the standard deviation; robust: minus the median, over the interquartile "
        "range / 1.349, then smoothly clipped to (-3, 3) (x / sqrt(1 + (x/3)^2)), as RealMLP "
        "does.",
        identity=True,
    )
    copy_encoding: bool = setting(
        False,
        "When training rows repeat each other, give each row the cross-fitted mean target "
        "of its identical training rows and their count as inputs; it pays only where new "
        "rows have exact copies in training (ignored with "
        f"{setting_name('group_duplicates')}).",
        identity=True,
    )


@dataclass(frozen=True)
class Training(Group):
    """How each trial trains and is scored on its folds."""

    metric: MetricName | None = setting(
        None,
        f"Metric: {_choices(MetricName)} (default: roc_auc / logloss / rmse by task).",
        identity=True,
    )
    max_folds: int | None = setting(
        None, f"Folds each trial runs (<= {setting_name('folds')}).", check=at_least(1)
    )
    patience: int = setting(5, "Early-stopping patience in epochs.", check=at_least(1))
    device: str = setting("auto", "auto, cpu, cuda or cuda:N.", check=_device)


@dataclass(frozen=True)
class Search(Group):
    """What is searched, by which sampler and pruner, for how long."""

    sampler: SamplerName = setting(SamplerName.TPE, f"Sampler: {_choices(SamplerName)}.")
    pruner: PrunerName = setting(PrunerName.MEDIAN, f"Pruner: {_choices(PrunerName)}.")
    space: str | None = setting(
        None,
        "Search space: a named space (default, classic, mlp, mlp-plr, mlp-ple, tabm, "
        "tabm-mini-ple) or a YAML/TOML space file.",
    )
    trials: int | None = setting(
        None,
        "Total finished trials the study should hold (default 20 without "
        f"{setting_name('timeout')}).",
        check=at_least(1),
    )
    timeout: float | None = setting(
        None, "Seconds for the whole study, the trial in flight included.", check=_positive
    )
    grid_points: int = setting(3, "Grid sampler: points per continuous range.", check=at_least(2))
    warm_start: bool = setting(
        True, "Start with the space's default configuration, then its 'starts'."
    )
    auto_stop: bool = setting(
        False, "Stop when further improvement is below the cross-validation noise."
    )
    baseline: bool = setting(
        True,
        "First cross-validate scikit-learn's HistGradientBoosting (its defaults) on the study's "
        "folds and metric, for comparison (its time counts in the timeout).",
    )
    ensemble: bool = setting(
        True,
        "After the trials, blend the best trials' out-of-fold predictions by greedy ensemble "
        "selection and deliver the blend when it scores better than the best trial.",
    )
    ensemble_pool: int = setting(
        50,
        "Best trials whose fold models and out-of-fold predictions the run folder keeps for "
        "the ensemble.",
        check=at_least(2),
    )
    ensemble_rounds: int = setting(
        20,
        "Rounds of ensemble selection: at most that many trials, weights in steps of 1/N.",
        check=at_least(1),
    )

    @property
    def n_trials(self) -> int | None:
        """Trials to aim for: the given count, 20 when neither a count nor a timeout is set."""
        if self.trials is None and self.timeout is None:
            return 20
        return self.trials


@dataclass(frozen=True)
class Run(Group):
    """Where the study and its outputs live, and how many processes share it."""

    study: str | None = setting(None, "Study name (default: from data/target).", check=_study_name)
    storage: str | None = setting(None, "Optuna storage URL (default: sqlite in the run folder).")
    output_dir: str | None = setting(None, "Run folder (default runs/STUDY).")
    mlflow: str | None = setting(
        None,
        "MLflow tracking URI: one MLflow run for the study, a nested run per trial, the model as "
        "artifacts (default: $DNNTUNE_MLFLOW_TRACKING_URI; needs dnntune[mlflow]).",
    )
    jobs: int = setting(
        1,
        f"Worker processes sharing the study (journal file or {setting_name('storage')}).",
        check=at_least(1),
    )


GROUPS: dict[str, type[Group]] = {
    "columns": Columns,
    "preprocessing": Preprocessing,
    "training": Training,
    "search": Search,
    "run": Run,
}


@dataclass(frozen=True)
class TuneConfig(Group):
    """Everything that defines a tuning run, by stage; saved in the study and beside the
    outputs. Build it from flat keywords with :meth:`of`; each stage receives its group.

    ``search.trials`` is the total number of finished (complete or pruned) trials the study
    should hold: running the same configuration again resumes and only runs the missing ones.
    """

    columns: Columns = field(default_factory=Columns)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    training: Training = field(default_factory=Training)
    search: Search = field(default_factory=Search)
    run: Run = field(default_factory=Run)
    seed: int = setting(42, "One seed for folds, sampler and training.", check=_seed)

    def _cross_checks(self) -> list[str]:
        max_folds, folds = self.training.max_folds, self.columns.folds
        if max_folds is not None and max_folds > folds:
            return [
                f"{setting_name('max_folds')} must be between 1 and "
                f"{setting_name('folds')}={folds}, but got {max_folds}"
            ]
        return []

    @classmethod
    def of(cls, **values: Any) -> TuneConfig:
        """The configuration from flat keywords (``data=``, ``folds=``, ``sampler=``...),
        every problem reported at once; unknown names are refused with a suggestion."""
        _check_names(values)
        groups: dict[str, Any] = {}
        problems: list[str] = []
        for name, group in GROUPS.items():
            mine = {k: v for k, v in values.items() if k in SETTINGS and SETTINGS[k].group == name}
            try:
                groups[name] = group(**mine)
            except ConfigError as exc:
                problems.append(exc.template)
        if problems:
            raise ConfigError("; ".join(problems))
        return cls(**groups, **({"seed": values["seed"]} if "seed" in values else {}))

    def replace(self, **values: Any) -> TuneConfig:
        """This configuration with some settings changed (flat keywords, as :meth:`of`)."""
        return TuneConfig.of(**{**self.to_dict(raw=True), **values})

    @property
    def split_seed(self) -> int:
        """The seed of the fold split: ``fold_seed``, or ``seed`` when that is not set."""
        return self.seed if self.columns.fold_seed is None else self.columns.fold_seed

    @property
    def copies(self) -> bool:
        """Whether the copy encoding is in play: asked for, and folds that can put a copy of a
        training row among the validation rows (not ``group_duplicates``, where training rows
        would learn from copies no validation row has)."""
        return self.preprocessing.copy_encoding and not self.columns.group_duplicates

    @property
    def fold_preprocessing(self) -> Preprocessing:
        """The preprocessing each fold is given: the copy encoding only where it is in play."""
        return dataclasses.replace(self.preprocessing, copy_encoding=self.copies)

    @property
    def study_name(self) -> str:
        if self.run.study:
            return self.run.study
        stem = Path(self.columns.data.removeprefix("builtin:")).name
        for suffix in (".gz", ".csv", ".tsv", ".parquet", ".pq", ".txt"):
            stem = stem.removesuffix(suffix)
        target = "-".join(self.columns.target)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{stem}-{target}" if target else stem)
        return name.strip("_.-")[:100] or "study"

    @property
    def run_dir(self) -> Path:
        out = self.run.output_dir
        return Path(out) if out else Path("runs") / self.study_name

    def to_dict(self, *, raw: bool = False) -> dict[str, Any]:
        """Every setting by name, as JSON values (the storage URL's password hidden unless
        ``raw``)."""
        out: dict[str, Any] = {}
        for s in SETTINGS.values():
            value = getattr(getattr(self, s.group) if s.group else self, s.name)
            out[s.name] = list(value) if isinstance(value, tuple) else value
            if isinstance(value, StrEnum):
                out[s.name] = value.value
        for name in ("storage", "mlflow"):
            if out[name] and not raw:
                out[name] = redact(out[name])
        return out

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any], **overrides: Any) -> TuneConfig:
        """The configuration :meth:`to_dict` recorded, with ``overrides``."""
        _check_names(stored)
        return cls.of(**{**stored, **overrides})

    def identity(self) -> dict[str, Any]:
        """What must match for a study to be resumed with this configuration: the format, the
        identity settings, the seed of the folds and whether copies are encoded."""
        values = self.to_dict()
        out = {s.name: values[s.name] for s in SETTINGS.values() if s.field.metadata["identity"]}
        return {
            "format": CONFIG_FORMAT,
            **out,
            "fold_seed": self.split_seed,
            "copy_encoding": self.copies,
        }


def _settings() -> dict[str, Setting]:
    out: dict[str, Setting] = {}
    for name, group in GROUPS.items():
        hints = typing.get_type_hints(group)
        for f in dataclasses.fields(group):  # type: ignore[arg-type]
            out[f.name] = Setting(f.name, name, f, hints[f.name])
    seed = next(f for f in dataclasses.fields(TuneConfig) if f.name == "seed")
    out["seed"] = Setting("seed", None, seed, int)
    return out


# Every setting by name, in the order of the groups.
SETTINGS: dict[str, Setting] = _settings()


def _check_names(values: Iterable[str]) -> None:
    from dnntune._names import did_you_mean

    unknown = [k for k in values if k not in SETTINGS]
    if unknown:
        raise ConfigError(
            f"unknown setting {unknown[0]!r}{did_you_mean(unknown[0], SETTINGS)}; "
            f"the settings are: {', '.join(SETTINGS)}"
        )
