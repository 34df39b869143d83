"""Estimators from model folders (an estimator's ``save``, or a tuned run's model): nothing
is unpickled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dnntune.artifacts import LoadedModel, load_model
from dnntune.config import Task
from dnntune.exceptions import DnntuneError
from dnntune.inference import Predictor
from dnntune.sklearn._base import Estimator
from dnntune.sklearn._single import DNNClassifier, DNNEstimator, DNNRegressor
from dnntune.sklearn._tuned import TunedDNNClassifier, TunedDNNRegressor

__all__ = ["estimator_from", "load"]


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


_CLASSES: dict[str, type[Estimator]] = {
    k.__name__: k for k in (DNNClassifier, DNNRegressor, TunedDNNClassifier, TunedDNNRegressor)
}


def estimator_from(loaded: LoadedModel) -> Any:
    """The estimator that predicts what ``loaded`` predicts."""
    manifest = loaded.manifest
    task = manifest.task
    saved = manifest.estimator
    if saved:
        kind = _CLASSES.get(saved.get("class", ""))
        if kind is None:
            raise ValueError(f"the model folder names an unknown estimator {saved.get('class')!r}")
    else:
        kind = DNNRegressor if task is Task.REGRESSION else DNNClassifier
    keywords = set(kind().get_params())
    params = saved["params"] if saved else manifest.members[0].params
    estimator = kind(**{k: v for k, v in params.items() if k in keywords})
    estimator._predictor = Predictor(loaded)
    if isinstance(estimator, DNNEstimator):
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
        estimator.n_features_in_ = len(manifest.columns)
        estimator._by_name = True
        epochs = [f.best_epoch for f in manifest.folds if f.best_epoch is not None]
        estimator.best_epoch_ = estimator.n_epochs_ = int(np.median(epochs)) if epochs else 0
        estimator.validation_score_ = manifest.best_value
    if task is Task.MULTILABEL:
        estimator.classes_ = [np.array([0, 1]) for _ in manifest.target]
    elif task is not Task.REGRESSION:
        classes = saved["classes"] if saved else manifest.classes
        estimator.classes_ = np.asarray(classes)
    return estimator
