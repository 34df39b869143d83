"""Use a tuned model: ``dnntune.load(RUN_DIR).predict(frame)``.

The fold models of the best trial form an averaging ensemble (probabilities or values are
averaged); a delivered ensemble of several trials weighs each trial's fold models by the
trial's weight. With ``refit=True`` the models trained on all rows are used instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dnntune._names import did_you_mean, setting_name, short_list
from dnntune.artifacts import LoadedModel, ModelManifest, load_model, prediction_frame
from dnntune.config import Task
from dnntune.data import refuse_unbounded, unparsed_dates_note, unparsed_values
from dnntune.engine import predict_outputs, predictions_from_outputs
from dnntune.exceptions import DataError

__all__ = ["Predictor", "load"]


@dataclass
class Predictor:
    """A loaded model with its preprocessing; ``notes`` collects what ``predict`` noticed."""

    loaded: LoadedModel
    notes: list[str] = field(default_factory=list)

    @property
    def manifest(self) -> ModelManifest:
        return self.loaded.manifest

    @property
    def task(self) -> Task:
        return self.manifest.task

    @property
    def required_columns(self) -> list[str]:
        return list(self.manifest.columns)

    def check_columns(self, frame: pd.DataFrame) -> None:
        """Raise for missing columns (listed by name); note extra ones."""
        known = {
            *self.required_columns,
            *self.manifest.ignored_columns,
            *self.manifest.target,
        }
        extra = [c for c in frame.columns if c not in known]
        missing = [c for c in self.required_columns if c not in set(frame.columns)]
        if missing:
            hint = did_you_mean(missing[0], extra) if extra else ""
            raise DataError(
                f"the data lacks {len(missing)} column{'s' if len(missing) > 1 else ''} the model "
                f"needs: {short_list(missing)}{hint}; add them (values may be empty)"
            )
        if extra:
            self.notes.append(
                f"ignored {len(extra)} column(s) the model does not use: {short_list(extra)}"
            )

    def check_values(self, frame: pd.DataFrame) -> None:
        """Raise for text in a column the model reads as numbers; note unreadable dates.

        Empty cells are missing values (imputed as in training). Text in a column of numbers
        would silently become one too, so it is refused, naming the column and the value. A
        date column may hold a few values that are not dates, as in training (where they were
        noted and treated as missing): they are predicted as missing, with a note.
        """
        plan = self.loaded.preprocessors[0].plan
        for name in plan.numeric:
            bad = unparsed_values(frame[name])
            if len(bad):
                what, fix = "1 value that is not a number", "fix it or leave the cell empty"
                if len(bad) > 1:
                    what = f"{len(bad)} values that are not numbers"
                    fix = "fix them or leave those cells empty"
                raise DataError(
                    f"the model reads column {name!r} as numbers, but the data has {what}, e.g. "
                    f"{bad.iloc[0]!r} in data row {bad.index[0] + 1}; {fix} (a missing value)"
                )
            refuse_unbounded(frame[name], name)
        for name in plan.datetime:
            self.notes += unparsed_dates_note(name, frame[name])

    def predict_array(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities (classification) or values (regression): the networks' weighted
        mean."""
        self.check_columns(frame)
        self.check_values(frame)
        parts = []
        for pre, model, shift, scale in zip(
            self.loaded.preprocessors,
            self.loaded.models,
            self.loaded.y_shifts,
            self.loaded.y_scales,
            strict=True,
        ):
            x = torch.from_numpy(pre.transform(frame))
            outputs = predict_outputs(model, x)
            parts.append(predictions_from_outputs(outputs, self.task, y_shift=shift, y_scale=scale))
        out = np.tensordot(self.loaded.shares(), np.stack(parts), axes=1)
        if not np.isfinite(out).all():
            bad = int((~np.isfinite(out.reshape(len(out), -1))).any(axis=1).sum())
            raise DataError(
                f"the model predicts no finite number for {bad} of {len(out)} rows: its model "
                "folder is damaged or its networks diverged; restore the folder or tune again"
            )
        return out

    def predict(self, frame: pd.DataFrame, *, id_column: str | None = None) -> pd.DataFrame:
        """Probability columns and labels, or values; the ID column first when asked."""
        if id_column is not None and id_column not in frame.columns:
            raise DataError(
                f"{setting_name('id_column')} {id_column!r} not in the data"
                f"{did_you_mean(id_column, frame.columns)}"
            )
        out = prediction_frame(
            self.predict_array(frame),
            self.task,
            self.manifest.classes or [],
            self.manifest.target,
        )
        if id_column is not None:
            out.insert(0, id_column, frame[id_column].to_numpy())
        return out


def load(run_dir: str | Path, *, refit: bool = False) -> Predictor:
    """Load a run folder (or its ``model/`` folder) written by ``dnntune tune``."""
    return Predictor(load_model(run_dir, refit=refit))
