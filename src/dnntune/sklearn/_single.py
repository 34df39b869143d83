"""One network configuration as an estimator: :class:`DNNClassifier`, :class:`DNNRegressor`.

The rows are checked and preprocessed by the data stage, as ``dnntune tune`` does, and the
network is trained by the study's own ``train_network``, with early stopping on a held-out
``validation_fraction`` of the rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin, RegressorMixin

from dnntune.artifacts import FoldNetwork, LoadedModel, member, run_record
from dnntune.config import MetricName, NumericScaling, Preprocessing, Task, parse_choice
from dnntune.data import Dataset, Target, prepare_fold
from dnntune.engine import METRICS, resolve_device
from dnntune.exceptions import DnntuneError
from dnntune.inference import Predictor
from dnntune.objective import MODEL_PARAMS, TRAINING_PARAMS, auto_batch_size, train_network
from dnntune.sklearn._base import Estimator, seed_of
from dnntune.sklearn._targets import Classifying, Regressing

__all__ = ["DNNClassifier", "DNNEstimator", "DNNRegressor"]


# What early stopping watches on the validation rows.
_STOPPING = {
    Task.BINARY: MetricName.LOGLOSS,
    Task.MULTICLASS: MetricName.LOGLOSS,
    Task.MULTILABEL: MetricName.ROC_AUC,
    Task.REGRESSION: MetricName.RMSE,
}


class DNNEstimator(Estimator):
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
        numeric_scaling: str = "standard",
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
        self.numeric_scaling = numeric_scaling
        self.categorical = categorical
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> DNNEstimator:
        """Train one network on ``X``, ``y`` (early stopping on ``validation_fraction`` of the
        rows, when there are enough)."""
        frame, target, plan = self._checked(X, y)
        seed = seed_of(self.random_state)
        folds = _validation_split(target, self.validation_fraction, seed)
        dataset = Dataset(frame, target, folds, plan, source="fit")
        device = resolve_device(self.device)
        try:
            prepared = prepare_fold(
                dataset,
                0,
                device,
                Preprocessing(
                    numeric_bins=self.numeric_bins,
                    numeric_scaling=parse_choice(
                        NumericScaling, self.numeric_scaling, "numeric_scaling"
                    ),
                ),
            )
        except DnntuneError as exc:
            raise ValueError(str(exc)) from None
        params = self._params(prepared.tensors.n_train)
        d_out = 1 if target.task is Task.BINARY else target.n_outputs
        metric = METRICS[_STOPPING[target.task]]
        validating = prepared.tensors.x_valid.shape[0] > 0
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            model, result = train_network(
                prepared,
                params,
                d_out=d_out,
                metric=metric,
                patience=self.patience if validating else params["epochs"],
                seed=seed,
            )
        score = result.best_score if validating else None
        network = FoldNetwork(
            trial=None,
            weights="model_fold0.safetensors",
            sha256="",  # written by save()
            preprocessing=prepared.preprocessor.to_dict(),
            y_shift=prepared.tensors.y_shift,
            y_scale=prepared.tensors.y_scale,
            fold=0,
            score=score,
            best_epoch=result.best_epoch,
        )
        manifest = run_record(None, dataset, metric).manifest(
            (member(None, 1.0, score, params, d_out),), (network,)
        )
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


class DNNClassifier(Classifying, ClassifierMixin, DNNEstimator):
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


class DNNRegressor(Regressing, RegressorMixin, DNNEstimator):
    """A dnntune network for regression: one target, or several (a 2-D ``y``: one output per
    column). Each target is standardized for training; predictions come back in its units.

    The keywords and fitted attributes are :class:`DNNClassifier`'s, without ``classes_``;
    ``validation_score_`` is the RMSE.
    """


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
