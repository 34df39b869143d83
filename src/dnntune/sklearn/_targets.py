"""The classifiers' and regressors' targets (checked as scikit-learn checks them, then
encoded by the data stage) and outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, column_or_1d

from dnntune.config import Task
from dnntune.data import Target
from dnntune.sklearn._base import encoded

__all__ = ["Classifying", "Regressing"]


class Classifying:
    """Targets and outputs of the classifiers."""

    classes_: Any
    _outputs: Any

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.target_tags.multi_output = True  # multilabel indicators
        tags.classifier_tags.multi_label = True
        return tags

    def _target(self, y: Any, n_rows: int) -> tuple[Target, pd.DataFrame]:
        y = np.asarray(y) if not isinstance(y, pd.Series | pd.DataFrame) else y.to_numpy()
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if len(y) != n_rows:
            raise ValueError(f"X has {n_rows} rows but y has {len(y)}")
        kind = type_of_target(y)
        if kind == "multilabel-indicator":
            self.classes_ = [np.array([0, 1]) for _ in range(y.shape[1])]
            labels = pd.DataFrame(y.astype(int), columns=[f"y{j}" for j in range(y.shape[1])])
            return encoded(labels, Task.MULTILABEL)
        if kind not in ("binary", "multiclass"):
            raise ValueError(
                f"Unknown label type: {kind!r}; {type(self).__name__} takes class labels or "
                "multilabel 0/1 indicators"
            )
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"y has a single class ({self.classes_[0]!r}); a classifier needs at least two "
                "classes"
            )
        task = Task.BINARY if len(self.classes_) == 2 else Task.MULTICLASS
        return encoded(pd.DataFrame({"y": codes}), task)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_`` (multilabel: one column
        per label, the probability of 1)."""
        out: np.ndarray = self._outputs(X)
        if isinstance(self.classes_, list):  # multilabel
            return out
        if out.ndim == 1:
            return np.stack([1.0 - out, out], axis=1)
        return out

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (multilabel: 0/1 per label, 1 from a probability of 0.5)."""
        proba = self.predict_proba(X)
        if isinstance(self.classes_, list):
            return (proba >= 0.5).astype(int)
        labels: np.ndarray = self.classes_[proba.argmax(axis=1)]
        return labels


class Regressing:
    """Targets and outputs of the regressors."""

    _outputs: Any

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.target_tags.multi_output = True  # one output per column of a 2-D y
        return tags

    def _target(self, y: Any, n_rows: int) -> tuple[Target, pd.DataFrame]:
        y = np.asarray(y) if not isinstance(y, pd.Series | pd.DataFrame) else y.to_numpy()
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.ndim not in (1, 2) or y.size == 0:
            raise ValueError(f"y has shape {y.shape}; {type(self).__name__} takes a 1-D or 2-D y")
        values = check_array(
            y.reshape(len(y), -1),
            dtype=np.float64,
            ensure_all_finite=True,
            ensure_min_samples=1,
        )
        if len(values) != n_rows:
            raise ValueError(f"X has {n_rows} rows but y has {len(values)}")
        constant = [j for j in range(values.shape[1]) if np.ptp(values[:, j]) == 0]
        if constant:
            which = "y" if y.ndim == 1 else f"column {constant[0]} of y"
            raise ValueError(
                f"{which} has one value ({values[0, constant[0]]!r}) in every row; there is "
                "nothing to learn"
            )
        names = ["y"] if y.ndim == 1 else [f"y{j}" for j in range(values.shape[1])]
        return encoded(pd.DataFrame(values, columns=names), Task.REGRESSION)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values, in the target's units."""
        values: np.ndarray = self._outputs(X)
        return values
