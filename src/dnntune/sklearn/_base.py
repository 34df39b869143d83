"""What every dnntune estimator shares: reading ``X`` into the frame the data stage reads,
``y`` into its encoded target, predicting with the delivered networks, saving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from dnntune.config import Task
from dnntune.data import ColumnPlan, Target, encode_target, plan_features
from dnntune.exceptions import DnntuneError
from dnntune.inference import Predictor
from dnntune.sklearn._save import save_estimator

__all__ = ["Estimator", "encoded", "seed_of"]


class Estimator(BaseEstimator):
    """What every dnntune estimator shares: reading ``X``, predicting, saving."""

    classes_: Any
    categorical: Any
    _predictor: Predictor

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing values are imputed, as dnntune tune does
        return tags

    def _features(self, X: Any, *, reset: bool) -> pd.DataFrame:
        """``X`` as the frame dnntune's preprocessing reads: a DataFrame as it is (text, dates
        and all), an array as numbers (missing values allowed), columns named ``x0``, ``x1``..
        """
        if isinstance(X, pd.DataFrame):
            if reset or not getattr(self, "_by_name", False):
                validate_data(self, X, reset=reset, skip_check_array=True)
            if X.shape[0] == 0 or X.shape[1] == 0:
                raise ValueError(f"the data has shape {X.shape}; it needs rows and columns")
            frame = X.copy()
            frame.columns = [str(c) for c in X.columns]
            return frame.reset_index(drop=True)
        array = validate_data(self, X, reset=reset, dtype="numeric", ensure_all_finite="allow-nan")
        return pd.DataFrame(np.asarray(array, dtype=np.float64)).rename(columns=lambda i: f"x{i}")

    def _checked(self, X: Any, y: Any) -> tuple[pd.DataFrame, Target, ColumnPlan]:
        """``X``, ``y`` as the features, encoded target and column plan dnntune trains on,
        checked as ``dnntune tune`` checks a table's (``data.plan_features``)."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        frame = self._features(X, reset=True)
        if len(frame) < 2:
            raise ValueError(f"n_samples={len(frame)}: a network needs at least 2 rows to fit")
        target, y_frame = self._target(y, len(frame))
        try:
            plan = plan_features(
                frame, y_frame, target, self._categorical(frame), numbers_are_quantities=True
            )
        except DnntuneError as exc:
            raise ValueError(str(exc)) from None
        return frame, target, plan

    def _outputs(self, X: Any) -> np.ndarray:
        """Probabilities (classification) or values (regression) for ``X``."""
        check_is_fitted(self, "_predictor")
        frame = self._features(X, reset=False)
        try:
            return self._predictor.predict_array(frame)
        except DnntuneError as exc:
            raise ValueError(str(exc)) from None

    def _target(
        self, y: Any, n_rows: int
    ) -> tuple[Target, pd.DataFrame]:  # pragma: no cover - in the mixins
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Write the fitted model as a model folder: weights in safetensors, the rest in JSON
        (read back with :func:`load` or ``dnntune.load``)."""
        check_is_fitted(self, "_predictor")
        return save_estimator(self, Path(path))

    def _categorical(self, frame: pd.DataFrame) -> list[str]:
        """The columns ``categorical`` names: by name, or by position (an array's)."""
        chosen = [] if self.categorical is None else list(np.atleast_1d(self.categorical))
        names = []
        for c in chosen:
            if isinstance(c, int | np.integer) and not isinstance(c, bool):
                if not 0 <= c < frame.shape[1]:
                    raise ValueError(f"categorical column {c} is not in X's {frame.shape[1]}")
                names.append(str(frame.columns[c]))
            elif str(c) in frame.columns:
                names.append(str(c))
            else:
                raise ValueError(f"categorical column {c!r} is not a column of X")
        return names


def encoded(y: pd.DataFrame, task: Task) -> tuple[Target, pd.DataFrame]:
    """``y`` encoded by the data stage's ``encode_target``, and ``y`` itself."""
    try:
        return encode_target(y, task), y
    except DnntuneError as exc:
        raise ValueError(str(exc)) from None


def seed_of(random_state: int | np.random.RandomState | None) -> int:
    if isinstance(random_state, int | np.integer):
        return int(random_state)
    rng = (
        random_state if isinstance(random_state, np.random.RandomState) else np.random.mtrand._rand
    )
    return int(rng.randint(np.iinfo(np.int32).max))
