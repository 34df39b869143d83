"""How good is the tuned model on labelled rows the study never saw? A leaderboard.

``evaluate(run_dir, data)`` scores, on the labelled rows of ``data``: the delivered model, the
best trial alone (when an ensemble is delivered), the refit model (when there is one) and the
gradient-boosting baseline fitted on every row the study saw, each with the study's metric and
the task's standard ones (accuracy, log loss, ROC-AUC and Brier score for classes; RMSE, MAE
and R^2 for values), computed by scikit-learn on the same predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dnntune._names import short_list
from dnntune.artifacts import LoadedModel, ModelManifest, load_model, model_dir, write_json
from dnntune.baseline import MODEL, baseline_predictions
from dnntune.config import MetricName, Task, TuneConfig
from dnntune.data import class_label, dataset_from_config, load_table
from dnntune.engine import METRICS
from dnntune.ensemble import Pool
from dnntune.exceptions import DataError
from dnntune.inference import Predictor

__all__ = ["Evaluation", "evaluate"]

_STANDARD = {
    Task.BINARY: ("accuracy", "logloss", "roc_auc", "brier"),
    Task.MULTICLASS: ("accuracy", "logloss", "roc_auc", "brier"),
    Task.MULTILABEL: ("logloss", "roc_auc", "brier"),
    Task.REGRESSION: ("rmse", "mae", "r2"),
}


def _brier(y: np.ndarray, p: np.ndarray, task: Task) -> float:
    """scikit-learn's Brier score (multiclass: over the one-hot rows); for labels, the mean of
    each label's."""
    from sklearn.metrics import brier_score_loss

    if task is Task.BINARY:
        return float(brier_score_loss(y, p))
    if task is Task.MULTILABEL:
        return float(np.mean([brier_score_loss(y[:, j], p[:, j]) for j in range(y.shape[1])]))
    return float(brier_score_loss(y, p, labels=np.arange(p.shape[1])))


def score(name: str, y: np.ndarray, predictions: np.ndarray, task: Task) -> float:
    """One metric of predictions (probabilities or values) against true targets."""
    if name == "brier":
        return _brier(y, predictions, task)
    try:
        return float(METRICS[MetricName(name)](y, predictions, task))
    except ValueError:  # e.g. ROC-AUC on rows of a single class
        return math.nan


@dataclass
class Evaluation:
    """The leaderboard: one row per candidate, its metrics on the labelled rows."""

    metric: str
    direction: str
    rows: int
    data: str
    board: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "rows": self.rows,
            "metric": self.metric,
            "direction": self.direction,
            "leaderboard": self.board,
            "notes": self.notes,
        }

    def table(self) -> str:
        """The leaderboard as text, best first on the study's metric."""
        names = [k for k in self.board[0] if k != "candidate"] if self.board else []
        width = max([len("candidate"), *(len(r["candidate"]) for r in self.board)])
        lines = [f"{'candidate':<{width}}  " + "  ".join(f"{n:>10}" for n in names)]
        for r in self.board:
            cells = "  ".join(f"{r[n]:>10.6f}" for n in names)
            lines.append(f"{r['candidate']:<{width}}  {cells}")
        return "\n".join(lines)


def _truth(frame: pd.DataFrame, manifest: ModelManifest) -> tuple[pd.DataFrame, np.ndarray]:
    """The labelled rows and their targets encoded as the model's (class codes, 0/1 labels or
    values); rows with a missing target are left out."""
    missing = [c for c in manifest.target if c not in frame.columns]
    if missing:
        raise DataError(
            f"the data lacks the target column{'s' if len(missing) > 1 else ''} "
            f"{short_list(missing)}; evaluate needs labelled rows"
        )
    frame = frame.loc[frame[manifest.target].notna().all(axis=1)].reset_index(drop=True)
    if frame.empty:
        raise DataError(f"target {short_list(manifest.target)} is missing in every row")
    y = frame[manifest.target]
    if manifest.task is Task.REGRESSION:
        values = y.to_numpy(np.float64)
        return frame, values[:, 0] if values.shape[1] == 1 else values
    if manifest.task is Task.MULTILABEL:
        ok = y.isin([0, 1, True, False]).all().all()
        if not ok:
            raise DataError("evaluate reads multilabel targets as 0/1 columns; recode them")
        return frame, y.to_numpy(np.float64)
    classes = {_key(c): i for i, c in enumerate(manifest.classes or [])}
    labels = y.iloc[:, 0].map(lambda v: classes.get(_key(v)))
    unknown = y.iloc[:, 0][labels.isna()].unique().tolist()
    if unknown:
        raise DataError(
            f"target {manifest.target[0]!r} has labels the model never saw: "
            f"{short_list([str(u) for u in unknown])}; the model knows "
            f"{short_list(list(classes))}"
        )
    return frame, labels.to_numpy(np.int64)


def _key(label: Any) -> str:
    """A class label as the model stored it (an integral number without '.0'), as text."""
    return str(class_label(label))


def _row(name: str, y: np.ndarray, p: np.ndarray, task: Task, metric: str) -> dict[str, Any]:
    names = [metric, *(m for m in _STANDARD[task] if m != metric)]
    return {"candidate": name, **{m: score(m, y, p, task) for m in names}}


def evaluate(
    run_dir: str | Path, data: str | Path, *, baseline: bool = True, output: Path | None = None
) -> Evaluation:
    """Score the run's candidates on the labelled rows of ``data`` (a table with the target
    column); write the leaderboard as JSON to ``output`` when given."""
    directory = model_dir(run_dir)
    delivered = load_model(directory)
    manifest = delivered.manifest
    table = load_table(str(data))
    frame, y = _truth(table.frame, manifest)
    task, metric = manifest.task, manifest.metric.value
    out = Evaluation(metric, manifest.direction or "", len(frame), table.source)
    if len(frame) < len(table.frame):
        out.notes.append(f"left out {len(table.frame) - len(frame)} rows with a missing target")
    candidates: list[tuple[str, LoadedModel]] = []
    kind = (
        f"ensemble of {len(manifest.members)} trials"
        if manifest.is_ensemble
        else (f"trial {manifest.members[0].trial}")
    )
    candidates.append((f"delivered model ({kind})", delivered))
    if manifest.is_ensemble and manifest.best_trial is not None:
        pool = Pool(directory.parent, 0, METRICS[manifest.metric])
        alone = pool.loaded(manifest.best_trial, manifest)
        if alone is not None:
            candidates.append((f"best trial {manifest.best_trial} alone", alone))
        else:
            out.notes.append("the best trial alone is not in the pool; it is left out")
    if manifest.refit:
        candidates.append(("refit model (all rows)", load_model(directory, refit=True)))
    for name, loaded in candidates:
        predictor = Predictor(loaded)
        out.board.append(_row(name, y, predictor.predict_array(frame), task, metric))
        out.notes += [n for n in predictor.notes if n not in out.notes]
    if baseline and manifest.config is not None:
        try:
            dataset = dataset_from_config(TuneConfig.from_dict(manifest.config))
        except DataError as exc:
            out.notes.append(f"the baseline is left out: the study's rows cannot be read ({exc})")
        else:
            seed = int(manifest.config.get("seed", 42))
            predictions = baseline_predictions(dataset, frame, seed=seed)
            name = f"baseline {MODEL} (the study's rows)"
            out.board.append(_row(name, y, predictions, task, metric))
    sign = -1.0 if out.direction == "maximize" else 1.0
    out.board.sort(key=lambda r: (math.isnan(r[metric]), sign * r[metric]))
    if output is not None:
        write_json(output, out.to_dict())
    return out
