"""dnntune networks as scikit-learn estimators: ``DNNClassifier`` and ``DNNRegressor``.

One network configuration, trained with dnntune's own preprocessing (fitted in ``fit`` only)
and training loop, with early stopping on a held-out ``validation_fraction`` of the rows. They
take NumPy arrays (every column a number; missing values allowed) and pandas DataFrames (text,
dates and missing values handled as ``dnntune tune`` does), and work in ``Pipeline``,
``cross_val_score``, ``GridSearchCV`` and Optuna's ``OptunaSearchCV``.

``save(path)`` writes a model folder (safetensors + JSON, the format of a tuned run's model) and
:func:`load` reads one back, from this module or from ``dnntune tune``, as an estimator, so no
estimator ever needs to be pickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import (
    check_array,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from dnntune.artifacts import (
    FORMAT_VERSION,
    MANIFEST,
    LoadedModel,
    atomic_path,
    load_model,
    sha256,
    torch_versions,
    write_json,
)
from dnntune.config import MetricName, Preprocessing, Task
from dnntune.data import (
    ColumnPlan,
    Dataset,
    encode_target,
    plan_columns,
    prepare_fold,
    refuse_unbounded,
)
from dnntune.engine import METRICS, fit, resolve_device
from dnntune.exceptions import DnntuneError
from dnntune.inference import Predictor
from dnntune.model import make_mlp
from dnntune.objective import (
    MODEL_PARAMS,
    TRAINING_PARAMS,
    auto_batch_size,
    model_kwargs,
    training_kwargs,
)

__all__ = ["DNNClassifier", "DNNRegressor", "load"]

# What early stopping watches on the validation rows.
_STOPPING = {
    Task.BINARY: MetricName.LOGLOSS,
    Task.MULTICLASS: MetricName.LOGLOSS,
    Task.MULTILABEL: MetricName.ROC_AUC,
    Task.REGRESSION: MetricName.RMSE,
}


class _DNNEstimator(BaseEstimator):
    """The shared body of :class:`DNNClassifier` and :class:`DNNRegressor`."""

    classes_: Any

    def __init__(
        self,
        *,
        optimizer: str = "AdamW",
        num_layers: int = 3,
        hidden_size: int = 128,
        dropout: float = 0.1,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        batch_size: int | None = None,
        epochs: int = 20,
        lr_schedule: str = "cosine",
        activation: str = "relu",
        batch_norm: bool = True,
        ensemble_size: int = 1,
        numeric_bins: int = 32,
        patience: int = 5,
        validation_fraction: float = 0.1,
        device: str = "auto",
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.lr_schedule = lr_schedule
        self.activation = activation
        self.batch_norm = batch_norm
        self.ensemble_size = ensemble_size
        self.numeric_bins = numeric_bins
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state

    # -- scikit-learn's contract ------------------------------------------------------------

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

    @staticmethod
    def _plan(frame: pd.DataFrame) -> ColumnPlan:
        """Columns of numbers are quantities, as in an array (constant ones carry nothing);
        text, categories, booleans and dates follow ``dnntune tune``'s rules."""
        numbers = [
            c
            for c in frame
            if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
        ]
        constant = {
            c: "constant (one value in every row)"
            for c in numbers
            if frame[c].nunique(dropna=False) <= 1
        }
        others = plan_columns(frame[[c for c in frame if c not in set(numbers)]])
        return ColumnPlan(
            numeric=[c for c in numbers if c not in constant],
            categorical=others.categorical,
            datetime=others.datetime,
            dropped={**constant, **others.dropped},
            hints=others.hints,
        )

    def fit(self, X: Any, y: Any) -> _DNNEstimator:
        """Train one network on ``X``, ``y`` (early stopping on ``validation_fraction`` of the
        rows, when there are enough)."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        frame = self._features(X, reset=True)
        if len(frame) < 2:
            raise ValueError(f"n_samples={len(frame)}: a network needs at least 2 rows to fit")
        target = self._target(y, len(frame))
        plan = self._plan(frame)
        try:
            for name in plan.numeric:  # an array's were checked; a DataFrame's are here
                refuse_unbounded(frame[name], name)
        except DnntuneError as exc:
            raise ValueError(str(exc)) from None
        seed = _seed(self.random_state)
        folds = _validation_split(target, self.validation_fraction, seed)
        dataset = Dataset(frame, target, folds, plan, source="fit")
        device = resolve_device(self.device)
        try:
            prepared = prepare_fold(
                dataset, 0, device, Preprocessing(numeric_bins=self.numeric_bins)
            )
        except DnntuneError as exc:
            raise ValueError(str(exc)) from None
        params = self._params(prepared.tensors.n_train)
        d_out = 1 if target.task is Task.BINARY else target.n_outputs
        metric = METRICS[_STOPPING[target.task]]
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            model = make_mlp(
                d_in=prepared.preprocessor.n_features,
                d_out=d_out,
                **model_kwargs(params),
            ).to(device)
            validating = prepared.tensors.x_valid.shape[0] > 0
            result = fit(
                model,
                prepared.tensors,
                metric=metric,
                **training_kwargs(params),
                patience=self.patience if validating else params["epochs"],
                generator=torch.Generator(device=device).manual_seed(seed),
            )
        manifest = {
            "task": target.task.value,
            "metric": metric.name.value,
            "columns": plan.features,
            "ignored_columns": plan.dropped,
            "target": list(target.columns),
            "classes": target.classes,
            "params": params,
            "architecture": {"d_out": d_out, **model_kwargs(params)},
        }
        loaded = LoadedModel(
            manifest,
            [prepared.preprocessor],
            [model.cpu().eval()],
            [prepared.tensors.y_shift],
            [prepared.tensors.y_scale],
        )
        self.model_ = model
        self.n_epochs_ = result.epochs_run
        self.best_epoch_ = result.best_epoch
        self.validation_score_ = result.best_score if validating else None
        self._predictor = Predictor(loaded)
        return self

    def _params(self, n_train: int) -> dict[str, Any]:
        params = {name: getattr(self, name) for name in (*MODEL_PARAMS, *TRAINING_PARAMS)}
        params["batch_size"] = params["batch_size"] or auto_batch_size(n_train)
        return params

    def _outputs(self, X: Any) -> np.ndarray:
        """Probabilities (classification) or values (regression) for ``X``."""
        check_is_fitted(self, "model_")
        frame = self._features(X, reset=False)
        try:
            return self._predictor.predict_array(frame)
        except DnntuneError as exc:
            raise ValueError(str(exc)) from None

    def _target(self, y: Any, n_rows: int) -> Any:  # pragma: no cover - each kind has its own
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Write the fitted model as a model folder: weights in safetensors, the rest in JSON
        (read back with :func:`load` or ``dnntune.load``)."""
        check_is_fitted(self, "model_")
        return _save(self, Path(path))


class DNNClassifier(ClassifierMixin, _DNNEstimator):
    """A dnntune network for classification: binary, multiclass, or multilabel (a 2-D ``y`` of
    0/1 indicators).

    Every keyword has the value of dnntune's default configuration (the first trial of a
    study); ``epochs``, ``patience`` and ``validation_fraction`` control early stopping,
    ``device`` is ``"auto"`` (CUDA when available), ``cpu`` or ``cuda``, and ``random_state``
    fixes the initialization, the batches and the validation split.

    Fitted attributes: ``classes_``, ``n_features_in_``, ``feature_names_in_`` (DataFrames with
    string column names), ``model_`` (the ``torch.nn.Module``), ``best_epoch_``, ``n_epochs_``
    and ``validation_score_`` (log loss, or ROC-AUC for multilabel; None without validation).
    """

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # multilabel indicators
        tags.classifier_tags.multi_label = True
        return tags

    def _target(self, y: Any, n_rows: int) -> Any:
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
            return _encoded(labels, Task.MULTILABEL)
        if kind not in ("binary", "multiclass"):
            raise ValueError(
                f"Unknown label type: {kind!r}; DNNClassifier takes class labels or "
                "multilabel 0/1 indicators"
            )
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"y has a single class ({self.classes_[0]!r}); a classifier needs at least two "
                "classes"
            )
        task = Task.BINARY if len(self.classes_) == 2 else Task.MULTICLASS
        return _encoded(pd.DataFrame({"y": codes}), task)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_`` (multilabel: one column
        per label, the probability of 1)."""
        out = self._outputs(X)
        if isinstance(self.classes_, list):  # multilabel
            return out
        if out.ndim == 1:
            return np.stack([1.0 - out, out], axis=1)
        return out

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        if isinstance(self.classes_, list):
            return (proba >= 0.5).astype(int)
        return self.classes_[proba.argmax(axis=1)]


class DNNRegressor(RegressorMixin, _DNNEstimator):
    """A dnntune network for regression (one target; the target is standardized for training
    and predictions come back in its units).

    The keywords and fitted attributes are :class:`DNNClassifier`'s, without ``classes_``;
    ``validation_score_`` is the RMSE.
    """

    def _target(self, y: Any, n_rows: int) -> Any:
        y = np.asarray(y) if not isinstance(y, pd.Series | pd.DataFrame) else y.to_numpy()
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.ndim != 1:
            raise ValueError(f"y has shape {y.shape}; DNNRegressor predicts one target")
        values = check_array(
            y.reshape(-1, 1), dtype=np.float64, ensure_all_finite=True, ensure_min_samples=1
        ).ravel()
        if len(values) != n_rows:
            raise ValueError(f"X has {n_rows} rows but y has {len(values)}")
        if np.ptp(values) == 0:
            raise ValueError(
                f"y has one value ({values[0]!r}) in every row; there is nothing to learn"
            )
        return _encoded(pd.DataFrame({"y": values}), Task.REGRESSION)

    def predict(self, X: Any) -> np.ndarray:
        return self._outputs(X)


def _encoded(y: pd.DataFrame, task: Task) -> Any:
    try:
        return encode_target(y, task)
    except DnntuneError as exc:
        raise ValueError(str(exc)) from None


def _seed(random_state: int | np.random.RandomState | None) -> int:
    if isinstance(random_state, int | np.integer):
        return int(random_state)
    rng = (
        random_state if isinstance(random_state, np.random.RandomState) else np.random.mtrand._rand
    )
    return int(rng.randint(np.iinfo(np.int32).max))


def _validation_split(target: Any, fraction: float, seed: int) -> np.ndarray:
    """Fold ids: 0 for the validation rows (stratified when the classes allow), 1 for the
    training rows; no validation rows when ``fraction`` leaves less than one, or fewer than
    two rows to train on."""
    from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

    n = len(target.values)
    folds = np.ones(n, dtype=np.int64)
    n_valid = round(fraction * n)
    if not 0 <= fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), but got {fraction!r}")
    if n_valid < 1 or n - n_valid < 2:
        return folds
    rows = np.zeros(n)
    try:
        split = StratifiedShuffleSplit(1, test_size=n_valid, random_state=seed)
        _, valid = next(split.split(rows, target.stratify))
    except (ValueError, TypeError):  # a class too rare, or regression: a plain split
        _, valid = next(ShuffleSplit(1, test_size=n_valid, random_state=seed).split(rows))
    folds[valid] = 0
    return folds


def _jsonable(values: Any) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(values).tolist()]


def _save(estimator: _DNNEstimator, directory: Path) -> Path:
    """The model folder of a fitted estimator: one network, its preprocessing, its keywords."""
    from safetensors.torch import save_file

    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{str(directory)!r} is a file; pass a folder for the model")
    directory.mkdir(parents=True, exist_ok=True)
    fitted = estimator._predictor
    manifest = dict(fitted.manifest)
    name = "model.safetensors"
    with atomic_path(directory / name) as tmp:
        state = estimator.model_.state_dict().items()
        save_file({k: v.detach().cpu().clone().contiguous() for k, v in state}, str(tmp))
    classes = getattr(estimator, "classes_", None)
    names = getattr(estimator, "feature_names_in_", None)
    manifest.update(
        {
            "format": "dnntune-model",
            "format_version": FORMAT_VERSION,
            "versions": torch_versions(),
            "folds": [
                {
                    "fold": 0,
                    "weights": name,
                    "sha256": sha256(directory / name),
                    "best_epoch": estimator.best_epoch_,
                    "y_shift": fitted.loaded.y_shifts[0],
                    "y_scale": fitted.loaded.y_scales[0],
                    "preprocessing": fitted.loaded.preprocessors[0].to_dict(),
                }
            ],
            "estimator": {
                "class": type(estimator).__name__,
                "params": {
                    k: v
                    for k, v in estimator.get_params().items()
                    if k != "random_state" or isinstance(v, int | None)
                },
                "n_features_in": estimator.n_features_in_,
                "feature_names_in": None if names is None else _jsonable(names),
                "classes": None
                if classes is None or isinstance(classes, list)
                else _jsonable(classes),
                "best_epoch": estimator.best_epoch_,
                "n_epochs": estimator.n_epochs_,
                "validation_score": estimator.validation_score_,
            },
        }
    )
    write_json(directory / MANIFEST, manifest)
    return directory


def load(path: str | Path) -> DNNClassifier | DNNRegressor:
    """An estimator from a model folder: one saved by ``estimator.save`` or the model of a
    ``dnntune tune`` run (its fold models averaged, as ``dnntune predict`` does). Checked as
    ``dnntune.load`` checks it; nothing is unpickled."""
    try:
        loaded = load_model(path)
    except DnntuneError as exc:
        raise ValueError(str(exc)) from None
    return estimator_from(loaded)


def estimator_from(loaded: LoadedModel) -> DNNClassifier | DNNRegressor:
    """The estimator that predicts what ``loaded`` predicts."""
    manifest = loaded.manifest
    task = Task(manifest["task"])
    kind = DNNRegressor if task is Task.REGRESSION else DNNClassifier
    saved = manifest.get("estimator")
    keywords = set(kind().get_params())
    params = saved["params"] if saved else manifest["params"]
    estimator = kind(**{k: v for k, v in params.items() if k in keywords})
    estimator.model_ = loaded.models[0]
    estimator._predictor = Predictor(loaded)
    if saved:
        estimator.n_features_in_ = saved["n_features_in"]
        if saved["feature_names_in"] is not None:
            estimator.feature_names_in_ = np.asarray(saved["feature_names_in"], dtype=object)
        estimator.best_epoch_ = saved["best_epoch"]
        estimator.n_epochs_ = saved["n_epochs"]
        estimator.validation_score_ = saved["validation_score"]
    else:  # a tuned run's folds: columns are found by name, as dnntune predict finds them
        estimator.n_features_in_ = len(manifest["columns"])
        estimator._by_name = True
        epochs = [f["best_epoch"] for f in manifest["folds"]]
        estimator.best_epoch_ = estimator.n_epochs_ = int(np.median(epochs))
        estimator.validation_score_ = manifest.get("value")
    if task is Task.MULTILABEL:
        estimator.classes_ = [np.array([0, 1]) for _ in manifest["target"]]
    elif task is not Task.REGRESSION:
        classes = saved["classes"] if saved else manifest["classes"]
        estimator.classes_ = np.asarray(classes)
    return estimator
