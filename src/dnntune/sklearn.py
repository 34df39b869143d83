"""dnntune networks as scikit-learn estimators.

``DNNClassifier`` and ``DNNRegressor`` train one network configuration with dnntune's own
preprocessing (fitted in ``fit`` only) and training loop, with early stopping on a held-out
``validation_fraction`` of the rows. ``TunedDNNClassifier`` and ``TunedDNNRegressor`` run a
dnntune study in ``fit`` (the objective of ``dnntune tune``: cross-validation, pruning across
folds, the warm start) and predict with its delivered model. All four take NumPy arrays (every
column a number; missing values allowed) and pandas DataFrames (text, dates and missing values
handled as ``dnntune tune`` does), and work in ``Pipeline``, ``cross_val_score``,
``GridSearchCV`` and Optuna's ``OptunaSearchCV``.

``save(path)`` writes a model folder (safetensors + JSON, the format of a tuned run's model) and
:func:`load` reads one back, from this module or from ``dnntune tune``, as an estimator, so no
estimator ever needs to be pickled.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch
from optuna.trial import TrialState
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
    saved_trial,
    sha256,
    torch_versions,
    write_json,
)
from dnntune.config import MetricName, Preprocessing, Task, TuneConfig
from dnntune.data import (
    ColumnPlan,
    Dataset,
    Target,
    assign_folds,
    duplicate_groups,
    encode_target,
    plan_columns,
    prepare_fold,
    refuse_unbounded,
)
from dnntune.engine import METRICS, fit, resolve_device
from dnntune.exceptions import DnntuneError
from dnntune.inference import Predictor
from dnntune.model import make_model
from dnntune.objective import (
    MODEL_PARAMS,
    TRAINING_PARAMS,
    auto_batch_size,
    model_kwargs,
    training_kwargs,
)
from dnntune.space import SearchSpace, load_space, parse_space
from dnntune.storage import MEMORY, redact
from dnntune.study import tune_config

__all__ = ["DNNClassifier", "DNNRegressor", "TunedDNNClassifier", "TunedDNNRegressor", "load"]

# What early stopping watches on the validation rows.
_STOPPING = {
    Task.BINARY: MetricName.LOGLOSS,
    Task.MULTICLASS: MetricName.LOGLOSS,
    Task.MULTILABEL: MetricName.ROC_AUC,
    Task.REGRESSION: MetricName.RMSE,
}


class _Estimator(BaseEstimator):
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
        """``X``, ``y`` as the features, encoded target and column plan dnntune trains on."""
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
        return frame, target, plan

    def _outputs(self, X: Any) -> np.ndarray:
        """Probabilities (classification) or values (regression) for ``X``."""
        check_is_fitted(self, "_predictor")
        frame = self._features(X, reset=False)
        try:
            return self._predictor.predict_array(frame)
        except DnntuneError as exc:
            raise ValueError(str(exc)) from None

    def _target(self, y: Any, n_rows: int) -> Target:  # pragma: no cover - in the mixins
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Write the fitted model as a model folder: weights in safetensors, the rest in JSON
        (read back with :func:`load` or ``dnntune.load``)."""
        check_is_fitted(self, "_predictor")
        return _save(self, Path(path))

    def _plan(self, frame: pd.DataFrame) -> ColumnPlan:
        """Columns of numbers are quantities, as in an array (constant ones carry nothing),
        unless ``categorical`` names them; text, categories, booleans, dates and the columns
        named follow ``dnntune tune``'s rules."""
        named = self._categorical(frame)
        numbers = [
            c
            for c in frame
            if c not in named
            and pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c])
        ]
        constant = {
            c: "constant (one value in every row)"
            for c in numbers
            if frame[c].nunique(dropna=False) <= 1
        }
        others = plan_columns(frame[[c for c in frame if c not in set(numbers)]], named)
        return ColumnPlan(
            numeric=[c for c in numbers if c not in constant],
            categorical=others.categorical,
            datetime=others.datetime,
            dropped={**constant, **others.dropped},
            hints=others.hints,
        )

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


class _DNNEstimator(_Estimator):
    """The shared body of :class:`DNNClassifier` and :class:`DNNRegressor`."""

    _SAVED = ("best_epoch_", "n_epochs_", "validation_score_")

    def __init__(
        self,
        *,
        architecture: str = "mlp",
        num_embeddings: str = "none",
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
        d_embedding: int = 16,
        n_frequencies: int = 48,
        frequency_scale: float = 0.01,
        numeric_bins: int = 32,
        categorical: Any = None,
        patience: int = 5,
        validation_fraction: float = 0.1,
        device: str = "auto",
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.architecture = architecture
        self.num_embeddings = num_embeddings
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
        self.d_embedding = d_embedding
        self.n_frequencies = n_frequencies
        self.frequency_scale = frequency_scale
        self.numeric_bins = numeric_bins
        self.categorical = categorical
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> _DNNEstimator:
        """Train one network on ``X``, ``y`` (early stopping on ``validation_fraction`` of the
        rows, when there are enough)."""
        frame, target, plan = self._checked(X, y)
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
            model = make_model(
                layout=prepared.preprocessor.layout(),
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
            "folds": [{"fold": 0, "weights": "model.safetensors", "best_epoch": result.best_epoch}],
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


class _TunedEstimator(_Estimator):
    """The shared body of :class:`TunedDNNClassifier` and :class:`TunedDNNRegressor`."""

    _SAVED = ("best_params_", "best_score_", "best_trial_", "baseline_", "ensemble_")

    def __init__(
        self,
        *,
        space: str | dict[str, Any] | None = None,
        sampler: str = "tpe",
        pruner: str = "median",
        trials: int | None = None,
        timeout: float | None = None,
        folds: int = 5,
        max_folds: int | None = None,
        metric: str | None = None,
        patience: int = 5,
        numeric_bins: int = 32,
        categorical: Any = None,
        copy_encoding: bool = False,
        group_duplicates: bool = False,
        grid_points: int = 3,
        warm_start: bool = True,
        auto_stop: bool = False,
        baseline: bool = True,
        ensemble: bool = True,
        storage: str | None = None,
        study: str | None = None,
        output_dir: str | None = None,
        device: str = "auto",
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.space = space
        self.sampler = sampler
        self.pruner = pruner
        self.trials = trials
        self.timeout = timeout
        self.folds = folds
        self.max_folds = max_folds
        self.metric = metric
        self.patience = patience
        self.numeric_bins = numeric_bins
        self.categorical = categorical
        self.copy_encoding = copy_encoding
        self.group_duplicates = group_duplicates
        self.grid_points = grid_points
        self.warm_start = warm_start
        self.auto_stop = auto_stop
        self.baseline = baseline
        self.ensemble = ensemble
        self.storage = storage
        self.study = study
        self.output_dir = output_dir
        self.device = device
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> _TunedEstimator:
        """Run the study on ``X``, ``y`` (or resume it: the same rows, settings and
        ``storage``), then keep its delivered model: the ensemble of its best trials, or the
        best trial alone."""
        frame, target, plan = self._checked(X, y)
        seed = _seed(self.random_state)
        output_dir = self.output_dir
        run_dir = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="dnntune-"))
        temporary = not output_dir
        try:
            config = self._config(frame, target, seed, run_dir)
            groups = duplicate_groups(frame[plan.features]) if self.group_duplicates else None
            folds = assign_folds(target, config.columns.folds, config.split_seed, groups)
            dataset = Dataset(frame, target, folds, plan, source="fit")
            result = tune_config(config, dataset=dataset, space=self._space())
            loaded = _delivered(result.study, run_dir)
        except DnntuneError as exc:
            raise ValueError(str(exc)) from None
        finally:
            if temporary:
                shutil.rmtree(run_dir, ignore_errors=True)
        study = result.study
        self.study_ = study
        self.best_params_ = study.best_params
        self.best_score_ = study.best_value
        self.best_trial_ = study.best_trial.number
        self.cv_results_ = cv_results(study, min(self.max_folds or self.folds, self.folds))
        self.best_index_ = int(np.flatnonzero(self.cv_results_["trial"] == self.best_trial_)[0])
        self.baseline_ = result.baseline.to_dict() if result.baseline else None
        self.ensemble_ = _members(loaded.manifest)
        self.models_ = loaded.models
        self.notes_ = list(result.notes)
        self._predictor = Predictor(loaded)
        return self

    def _config(self, frame: pd.DataFrame, target: Target, seed: int, run_dir: Path) -> TuneConfig:
        """The study's settings: this estimator's keywords, the rows by their digest."""
        settings = {name: getattr(self, name) for name in _STUDY_SETTINGS}
        settings["space"] = None  # a space file is read by _space, a dict has no file
        default_storage = MEMORY if self.output_dir is None else None
        return TuneConfig.of(
            **settings,
            data=f"fit:{_digest(frame, target)}",
            target=target.columns,
            task=target.task,
            categorical=self._categorical(frame),
            storage=self.storage or default_storage,
            output_dir=str(run_dir),
            seed=seed,
        )

    def _space(self) -> SearchSpace | None:
        """The ``space`` keyword: None (the default space), a space file or a dict of entries
        as a space file holds them."""
        if self.space is None:
            return None
        if isinstance(self.space, dict):
            return parse_space(self.space, source="the space keyword")
        return load_space(self.space)


def _digest(frame: pd.DataFrame, target: Target) -> str:
    """A short fingerprint of the rows a study is fitted on: a study resumes on the same rows
    only."""
    h = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    h.update(",".join(frame.columns).encode())
    h.update(np.ascontiguousarray(target.values).tobytes())
    return h.hexdigest()[:16]


# The tuned estimators' keywords that are settings of dnntune tune by the same name.
_STUDY_SETTINGS = (
    "sampler",
    "pruner",
    "trials",
    "timeout",
    "folds",
    "max_folds",
    "metric",
    "patience",
    "numeric_bins",
    "copy_encoding",
    "group_duplicates",
    "grid_points",
    "warm_start",
    "auto_stop",
    "baseline",
    "ensemble",
    "study",
    "device",
)


def _members(manifest: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The delivered ensemble's members (``trial`` and ``weight``); None for one trial."""
    members = manifest.get("ensemble", {}).get("members")
    if not members:
        return None
    return [{"trial": int(m["trial"]), "weight": float(m["weight"])} for m in members]


def _delivered(study: optuna.Study, run_dir: Path) -> LoadedModel:
    """The study's delivered model, refused in one line when there is none."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        states = Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False))
        counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
        raise ValueError(
            f"no trial of study {study.study_name!r} completed ({counts}); raise trials or "
            "timeout, or widen the space"
        )
    if saved_trial(run_dir / "model") is None:
        raise ValueError(
            f"the best trial of study {study.study_name!r} ran in an earlier fit whose model "
            "folder is gone; pass output_dir to keep the model beside a stored study"
        )
    return load_model(run_dir)


def cv_results(study: optuna.Study, n_folds: int) -> dict[str, Any]:
    """One entry per finished trial, in the shape of ``GridSearchCV.cv_results_``: ``params``
    and ``param_<name>`` (masked where a trial lacks it), ``split<k>_test_score``,
    ``mean_test_score`` and ``std_test_score`` (NaN for pruned and failed trials), their
    ``rank_test_score`` (1 the best, in the metric's direction), ``mean_fit_time``, and the
    trial's ``trial`` number and ``state``. Scores are the study's metric."""
    from scipy.stats import rankdata

    trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    out: dict[str, Any] = {
        "trial": np.array([t.number for t in trials], dtype=np.int64),
        "state": np.array([t.state.name for t in trials], dtype=object),
    }
    for name in sorted({k for t in trials for k in t.params}):
        column = np.ma.MaskedArray(np.empty(len(trials), dtype=object), mask=True)
        for i, t in enumerate(trials):
            if name in t.params:
                column[i] = t.params[name]
        out[f"param_{name}"] = column
    out["params"] = [dict(t.params) for t in trials]
    scores = np.full((len(trials), n_folds), np.nan)
    for i, t in enumerate(trials):
        if t.state is TrialState.COMPLETE:
            fold_scores = t.user_attrs.get("fold_scores", [])[:n_folds]
            scores[i, : len(fold_scores)] = fold_scores
    for k in range(n_folds):
        out[f"split{k}_test_score"] = scores[:, k]
    complete = np.array([t.state is TrialState.COMPLETE and t.value is not None for t in trials])
    mean = np.array([t.value if ok else np.nan for t, ok in zip(trials, complete, strict=True)])
    mean = np.where(np.isfinite(mean.astype(float)), mean, np.nan).astype(float)
    out["mean_test_score"] = mean
    out["std_test_score"] = np.array(
        [np.nanstd(row) if ok else np.nan for row, ok in zip(scores, complete, strict=True)]
    )
    maximize = study.direction is optuna.study.StudyDirection.MAXIMIZE
    valid = np.isfinite(mean)
    rank = np.full(len(trials), valid.sum() + 1, dtype=np.int32)
    rank[valid] = rankdata(-mean[valid] if maximize else mean[valid], method="min")
    out["rank_test_score"] = rank
    out["mean_fit_time"] = np.array([_fit_time(t) for t in trials])
    return out


def _fit_time(trial: optuna.trial.FrozenTrial) -> float:
    """Seconds per fold the trial trained (its whole time when it trained none)."""
    if trial.datetime_start is None or trial.datetime_complete is None:
        return float("nan")
    seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
    folds = (
        len(trial.user_attrs.get("fold_scores", []))
        or trial.user_attrs.get("pruned_at_fold", 0) + 1
    )
    return seconds / folds


class _Classifying:
    """Targets and outputs of the classifiers."""

    classes_: Any
    _outputs: Any

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.target_tags.multi_output = True  # multilabel indicators
        tags.classifier_tags.multi_label = True
        return tags

    def _target(self, y: Any, n_rows: int) -> Target:
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
        return _encoded(pd.DataFrame({"y": codes}), task)

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


class _Regressing:
    """Targets and outputs of the regressors."""

    _outputs: Any

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.target_tags.multi_output = True  # one output per column of a 2-D y
        return tags

    def _target(self, y: Any, n_rows: int) -> Target:
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
        return _encoded(pd.DataFrame(values, columns=names), Task.REGRESSION)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values, in the target's units."""
        values: np.ndarray = self._outputs(X)
        return values


class DNNClassifier(_Classifying, ClassifierMixin, _DNNEstimator):
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


class DNNRegressor(_Regressing, RegressorMixin, _DNNEstimator):
    """A dnntune network for regression: one target, or several (a 2-D ``y``: one output per
    column). Each target is standardized for training; predictions come back in its units.

    The keywords and fitted attributes are :class:`DNNClassifier`'s, without ``classes_``;
    ``validation_score_`` is the RMSE.
    """


_TUNED_DOC = """

    ``fit`` runs a dnntune study on the rows given, with the objective of ``dnntune tune``
    (cross-validation on ``folds`` folds with the preprocessing fitted per fold, pruning across
    folds, the first trials), and keeps its delivered model, as ``dnntune tune`` delivers it:
    the ensemble of its best trials chosen on their out-of-fold predictions when it scores
    better than the best trial, else the best trial's fold models (``ensemble=False``: always
    the best trial); fold predictions are averaged. The keywords are ``dnntune.tune``'s
    settings of the same name; ``space`` is None (the default space), a space file or a dict
    of its entries, and ``random_state`` is the study's seed (folds, sampler and training).

    The study lives in ``storage``: by default in this process only (``"memory:"``) and, with
    ``output_dir``, in SQLite in that run folder, which then also keeps the model and the
    run's outputs, as ``dnntune tune`` writes them. A fit with the same rows, settings and
    stored study resumes it.

    Fitted attributes: ``study_`` (the ``optuna.Study``), ``best_params_``, ``best_score_``
    (the best trial's cross-validated metric, e.g. ROC-AUC or log loss: see
    ``study_.direction``), ``best_trial_`` (its number), ``best_index_`` (its row in
    ``cv_results_``), ``cv_results_`` (one entry per finished trial, in
    ``GridSearchCV.cv_results_``'s shape), ``baseline_`` (gradient boosting's scores on the
    study's folds, or None), ``ensemble_`` (the delivered ensemble's members,
    ``[{"trial": n, "weight": w}, ...]``, or None for the best trial alone), ``models_`` (the
    delivered fold networks), ``notes_``, ``n_features_in_`` and ``feature_names_in_``.
    """


class TunedDNNClassifier(_Classifying, ClassifierMixin, _TunedEstimator):
    __doc__ = (
        "A dnntune study as a classifier: binary, multiclass, or multilabel (a 2-D ``y`` of 0/1"
        "\n    indicators); ``classes_`` as :class:`DNNClassifier`'s." + _TUNED_DOC
    )


class TunedDNNRegressor(_Regressing, RegressorMixin, _TunedEstimator):
    __doc__ = "A dnntune study as a regressor: one target, or several (a 2-D ``y``)." + _TUNED_DOC


def _encoded(y: pd.DataFrame, task: Task) -> Target:
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


def _validation_split(target: Target, fraction: float, seed: int) -> np.ndarray:
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


def _jsonable(values: Any) -> Any:
    if isinstance(values, dict):
        return {str(k): _jsonable(v) for k, v in values.items()}
    if isinstance(values, list | tuple | np.ndarray):
        return [_jsonable(v) for v in values]
    return values.item() if isinstance(values, np.generic) else values


# Manifest entries of a tuned run's model that name files an estimator's folder does not have.
_RUN_FILES = ("oof_predictions", "refit")


def _save(estimator: _Estimator, directory: Path) -> Path:
    """The model folder of a fitted estimator: its networks (one, or a study's folds), their
    preprocessing, the estimator's keywords and fitted attributes."""
    from safetensors.torch import save_file

    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{str(directory)!r} is a file; pass a folder for the model")
    directory.mkdir(parents=True, exist_ok=True)
    loaded = estimator._predictor.loaded
    manifest = {k: v for k, v in loaded.manifest.items() if k not in _RUN_FILES}
    folds = []
    for i, entry in enumerate(loaded.manifest["folds"]):
        name = entry["weights"]
        with atomic_path(directory / name) as tmp:
            state = loaded.models[i].state_dict().items()
            save_file({k: v.detach().cpu().clone().contiguous() for k, v in state}, str(tmp))
        folds.append(
            {
                **entry,
                "sha256": sha256(directory / name),
                "y_shift": loaded.y_shifts[i],
                "y_scale": loaded.y_scales[i],
                "preprocessing": loaded.preprocessors[i].to_dict(),
            }
        )
    classes = getattr(estimator, "classes_", None)
    names = getattr(estimator, "feature_names_in_", None)
    params = estimator.get_params()
    if not isinstance(params.get("random_state"), int | None):
        params.pop("random_state")
    if params.get("storage"):
        params["storage"] = redact(params["storage"])
    manifest.update(
        {
            "format": "dnntune-model",
            "format_version": FORMAT_VERSION,
            "versions": torch_versions(),
            "folds": folds,
            "estimator": {
                "class": type(estimator).__name__,
                "params": _jsonable(params),
                "n_features_in": estimator.n_features_in_,
                "feature_names_in": None if names is None else _jsonable(names),
                "classes": None
                if classes is None or isinstance(classes, list)
                else _jsonable(classes),
                "fitted": {k: _jsonable(getattr(estimator, k)) for k in estimator._SAVED},
            },
        }
    )
    write_json(directory / MANIFEST, manifest)
    return directory


def load(path: str | Path) -> DNNClassifier | DNNRegressor | TunedDNNClassifier | TunedDNNRegressor:
    """An estimator from a model folder: one saved by ``estimator.save``, or the model of a
    ``dnntune tune`` run as a :class:`DNNClassifier` or :class:`DNNRegressor` averaging its
    folds, as ``dnntune predict`` does. Checked as ``dnntune.load`` checks it; nothing is
    unpickled. A tuned estimator comes back with its model and best trial, without
    ``study_`` and ``cv_results_`` (the study is in its ``storage``, if one was given)."""
    try:
        loaded = load_model(path)
    except DnntuneError as exc:
        raise ValueError(str(exc)) from None
    return estimator_from(loaded)


_CLASSES: dict[str, type[_Estimator]] = {
    k.__name__: k for k in (DNNClassifier, DNNRegressor, TunedDNNClassifier, TunedDNNRegressor)
}


def estimator_from(loaded: LoadedModel) -> Any:
    """The estimator that predicts what ``loaded`` predicts."""
    manifest = loaded.manifest
    task = Task(manifest["task"])
    saved = manifest.get("estimator")
    if saved:
        kind = _CLASSES.get(saved.get("class"))
        if kind is None:
            raise ValueError(f"the model folder names an unknown estimator {saved.get('class')!r}")
    else:
        kind = DNNRegressor if task is Task.REGRESSION else DNNClassifier
    keywords = set(kind().get_params())
    params = saved["params"] if saved else manifest["params"]
    estimator = kind(**{k: v for k, v in params.items() if k in keywords})
    estimator._predictor = Predictor(loaded)
    if isinstance(estimator, _DNNEstimator):
        estimator.model_ = loaded.models[0]
    else:
        estimator.models_ = loaded.models
    if saved:
        estimator.n_features_in_ = saved["n_features_in"]
        if saved["feature_names_in"] is not None:
            estimator.feature_names_in_ = np.asarray(saved["feature_names_in"], dtype=object)
        for name, value in saved["fitted"].items():
            setattr(estimator, name, value)
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
