"""Predictions as tables: the columns ``predict`` writes and the out-of-fold file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dnntune.config import Task
from dnntune.engine import predictions_from_outputs
from dnntune.objective import TrialModels

__all__ = ["OutOfFold", "oof_frame", "out_of_fold", "prediction_frame"]


def prediction_frame(
    predictions: np.ndarray, task: Task, classes: Sequence[Any], targets: Sequence[str]
) -> pd.DataFrame:
    """Probabilities and labels (classification) or values (regression) as named columns."""
    if task is Task.REGRESSION:
        if predictions.ndim == 2:  # several targets
            return pd.DataFrame(
                {f"prediction_{t}": predictions[:, j] for j, t in enumerate(targets)}
            )
        return pd.DataFrame({"prediction": predictions})
    if task is Task.BINARY:
        proba = np.stack([1.0 - predictions, predictions], axis=1)
    else:
        proba = predictions
    if task is Task.MULTILABEL:
        out = {f"proba_{t}": proba[:, j] for j, t in enumerate(targets)}
        out.update({str(t): (proba[:, j] >= 0.5).astype(int) for j, t in enumerate(targets)})
        return pd.DataFrame(out)
    out = {f"proba_{c}": proba[:, j] for j, c in enumerate(classes)}
    labels = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    frame = pd.DataFrame(out)
    frame["prediction"] = labels
    return frame


@dataclass
class OutOfFold:
    """Out-of-fold predictions: dataset rows (sorted), predictions (probabilities or values,
    in the target's units) and the true targets of those rows."""

    rows: np.ndarray
    predictions: np.ndarray
    truth: np.ndarray


def out_of_fold(best: TrialModels, task: Task) -> OutOfFold | None:
    """The out-of-fold predictions of a trial's fold models (None when it ran no fold)."""
    parts, rows, truth = [], [], []
    for fold, outputs, valid in zip(best.folds, best.oof_outputs, best.valid_rows, strict=True):
        t = fold.tensors
        parts.append(predictions_from_outputs(outputs, task, y_shift=t.y_shift, y_scale=t.y_scale))
        rows.append(valid)
        truth.append(t.y_valid_eval)
    if not parts:
        return None
    all_rows = np.concatenate(rows)
    order = np.argsort(all_rows, kind="stable")
    return OutOfFold(all_rows[order], np.concatenate(parts)[order], np.concatenate(truth)[order])


def oof_frame(
    oof: OutOfFold,
    row_ids: np.ndarray,
    folds: np.ndarray,
    task: Task,
    classes: Sequence[Any] | None,
    targets: Sequence[str],
) -> pd.DataFrame:
    """Out-of-fold predictions as the model folder's CSV: the file row and the fold of each
    predicted row (``row_ids`` and ``folds`` given per predicted row), then the prediction
    columns."""
    frame = prediction_frame(oof.predictions, task, classes or [], targets)
    frame.insert(0, "fold", folds)
    frame.insert(0, "row", row_ids)
    return frame
