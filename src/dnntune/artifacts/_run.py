"""The run folder's records: what a model records of its run, and ``summary.json``,
``best_params.json`` and ``trials.csv``.

``summary.json`` has one writer, :func:`write_summary`: the study writes the whole summary
with :func:`write_run_outputs`, the ensemble selection adds its entry with
:func:`record_in_summary`; both go through it (an atomic replace).
"""

from __future__ import annotations

import dataclasses
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

from dnntune.artifacts._files import atomic_path, sha256, write_json
from dnntune.artifacts._folder import read_json
from dnntune.artifacts._manifest import FoldNetwork, Member, ModelManifest
from dnntune.baseline import BASELINE_ATTR
from dnntune.config import MetricName, Task, TuneConfig
from dnntune.data import Dataset
from dnntune.engine import Metric
from dnntune.exceptions import DataError

__all__ = [
    "OUT_OF_FOLD",
    "SUMMARY",
    "RunRecord",
    "RunScores",
    "Score",
    "read_summary",
    "record_in_summary",
    "run_record",
    "state_counts",
    "torch_versions",
    "trial_state",
    "write_run_outputs",
    "write_summary",
]

SUMMARY = "summary.json"


def torch_versions() -> dict[str, str]:
    from dnntune import __version__

    return {
        "dnntune": __version__,
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "python": platform.python_version(),
    }


@dataclass(frozen=True)
class RunRecord:
    """What a model folder records of the run that made it (task, metric, columns, data,
    versions, settings), and, not stored, each dataset row's file row and fold, for the
    out-of-fold file."""

    task: Task
    metric: MetricName
    direction: str | None
    columns: list[str]
    ignored_columns: dict[str, str]
    target: list[str]
    classes: list[Any] | None
    data: dict[str, Any] | None = None
    config: dict[str, Any] | None = field(default=None, repr=False)
    row_ids: np.ndarray | None = field(default=None, repr=False)
    fold_ids: np.ndarray | None = field(default=None, repr=False)

    def manifest(
        self, members: tuple[Member, ...], folds: tuple[FoldNetwork, ...], **fields: Any
    ) -> ModelManifest:
        """The manifest of a model this run delivers."""
        # Every field but the row maps is the manifest's field of the same name.
        stored = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("row_ids", "fold_ids")
        }
        return ModelManifest(
            **stored,
            members=members,
            folds=folds,
            versions=torch_versions(),
            **fields,
        )

    def file_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The file row and the fold of each of the dataset's ``rows``."""
        ids = self.row_ids[rows] if self.row_ids is not None else rows
        folds = self.fold_ids[rows] if self.fold_ids is not None else np.zeros(len(rows), int)
        return ids, folds


def run_record(config: TuneConfig | None, dataset: Dataset, metric: Metric) -> RunRecord:
    """The record of a run on ``dataset`` (``config`` None: an estimator's, with no file)."""
    source = Path(dataset.source)
    data = {
        "source": dataset.source,
        "rows": dataset.n_rows,
        "sha256": sha256(source) if source.is_file() else None,
    }
    return RunRecord(
        task=dataset.task,
        metric=metric.name,
        direction=metric.direction,
        columns=dataset.plan.features,
        ignored_columns=dataset.plan.dropped,
        target=list(dataset.target.columns),
        classes=dataset.target.classes or None,
        data=data if config is not None else None,
        config=config.to_dict() if config is not None else None,
        row_ids=dataset.row_ids,
        fold_ids=dataset.folds,
    )


# How every candidate of a run is compared: its out-of-fold predictions (each row predicted by
# the fold model that did not train on it), pooled over the folds and scored once.
OUT_OF_FOLD = "out-of-fold"


@dataclass(frozen=True)
class Score:
    """One candidate's score: out of fold (what candidates are compared on) and, where it has
    one, the mean of its ``n_folds`` fold scores (what the study optimizes)."""

    candidate: str
    out_of_fold: float | None
    fold_mean: float | None = None
    n_folds: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            OUT_OF_FOLD: self.out_of_fold,
            f"{self.n_folds}-fold mean": self.fold_mean,
        }


@dataclass(frozen=True)
class RunScores:
    """The delivered model, the best trial alone and the baseline, scored the same way on the
    study's metric; the delivered model's score is the run's headline."""

    metric: str
    direction: str
    delivered: Score | None
    best_trial: Score | None
    baseline: Score | None

    def candidates(self) -> list[Score]:
        return [s for s in (self.delivered, self.best_trial, self.baseline) if s is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "direction": self.direction,
            "estimator": OUT_OF_FOLD,
            **{
                key: score.to_dict() if score is not None else None
                for key, score in (
                    ("delivered", self.delivered),
                    ("best_trial", self.best_trial),
                    ("baseline", self.baseline),
                )
            },
        }

    def lines(self) -> list[str]:
        """The comparison for the terminal, the delivered model first."""
        out = [
            f"Scores ({self.metric}, {self.direction}d; {OUT_OF_FOLD}: every row predicted by "
            "the fold model that did not train on it):"
        ]
        width = max(len(s.candidate) for s in self.candidates())
        for s in self.candidates():
            value = "n/a" if s.out_of_fold is None else f"{s.out_of_fold:.6f}"
            mean = "" if s.fold_mean is None else f"  ({s.n_folds}-fold mean {s.fold_mean:.6f})"
            out.append(f"  {s.candidate + ':':<{width + 1}} {value}{mean}")
        return out


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """A run folder's summary.json, refused in one line when it is missing or not JSON."""
    path = Path(run_dir) / SUMMARY
    if not path.is_file():
        raise DataError(f"no {SUMMARY} in {str(run_dir)!r}; pass a run folder of dnntune tune")
    summary = read_json(path, "readable JSON", "run dnntune tune again to rewrite it")
    if not isinstance(summary, dict) or not isinstance(summary.get("study"), str):
        raise DataError(f"{str(path)!r} is not the summary of a dnntune run (no study name)")
    return summary


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """The one writer of ``summary.json``."""
    write_json(run_dir / SUMMARY, summary)


def record_in_summary(run_dir: Path, key: str, value: Any) -> None:
    """Set one entry of an existing ``summary.json`` (the ensemble's selection)."""
    if not (run_dir / SUMMARY).is_file():
        return
    summary = read_summary(run_dir)
    summary[key] = value
    write_summary(run_dir, summary)


def trial_state(trial: optuna.trial.FrozenTrial) -> str:
    """A trial's state as a user reads it: Optuna's, but "cut" for a trial the study's
    deadline ended (failed in Optuna's terms, queued to run again; not a poor value)."""
    if trial.state is TrialState.FAIL and trial.user_attrs.get("stop_reason") == "timeout":
        return "cut"
    return trial.state.name.lower()


def state_counts(trials: list[optuna.trial.FrozenTrial]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in trials:
        counts[trial_state(t)] = counts.get(trial_state(t), 0) + 1
    return counts


def _epochs(trials: list[optuna.trial.FrozenTrial]) -> dict[str, Any]:
    """Epochs saved by early stopping and pruning: of the trials that ended that way or were
    cut by the deadline, not of failed ones (out of memory, interrupted), which record no
    epochs run."""
    ended = [
        t
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or trial_state(t) == "cut"
    ]

    def count(t: optuna.trial.FrozenTrial, key: str) -> int:
        return int(t.user_attrs.get(key, 0))

    run = sum(count(t, "epochs_run") for t in ended)
    budget = sum(count(t, "epochs_budget") for t in ended)
    pruned = sum(
        count(t, "epochs_budget") - count(t, "epochs_run")
        for t in ended
        if t.state is TrialState.PRUNED
    )
    return {
        "run": run,
        "budget": budget,
        "saved_share": round(1 - run / budget, 4) if budget else None,
        "saved_by_pruning_share": round(pruned / budget, 4) if budget else None,
    }


def write_run_outputs(
    study: optuna.Study, config: TuneConfig, dataset: Dataset, metric: Metric, wall: float
) -> None:
    """summary.json, best_params.json (when a trial completed) and trials.csv of a run."""
    run_dir = config.run_dir
    trials = study.get_trials(deepcopy=False)
    counts = state_counts(trials)
    complete = [
        t
        for t in trials
        if t.state is TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
    ]
    best = study.best_trial if complete else None
    summary = {
        "study": study.study_name,
        "metric": metric.name.value,
        "direction": metric.direction,
        "task": dataset.task.value,
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "best_params": best.params if best else None,
        "trials": counts,
        "wall_time_s": round(wall, 2),
        "epochs": _epochs(trials),
        "auto_stop": study.user_attrs.get("auto_stop"),
        "baseline": study.user_attrs.get(BASELINE_ATTR),
        "data": {"source": dataset.source, "rows": dataset.n_rows, "folds": dataset.n_folds},
        "sampler": config.search.sampler.value,
        "pruner": config.search.pruner.value,
        "config": config.to_dict(),
    }
    write_summary(run_dir, summary)
    if best:
        write_json(run_dir / "best_params.json", best.params)
    frame = study.trials_dataframe()
    # The per-epoch timeline is long and lives in the study; the table keeps one row per trial.
    frame = frame.drop(columns=["user_attrs_report_seconds"], errors="ignore")
    with atomic_path(run_dir / "trials.csv") as tmp:
        frame.to_csv(tmp, index=False)
