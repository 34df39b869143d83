"""Estimators as model folders (the format of a tuned run's model, written by the model
folder's own writer), so that no estimator ever needs to be pickled."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dnntune.artifacts import write_model
from dnntune.exceptions import DnntuneError
from dnntune.inference import Predictor
from dnntune.storage import redact


class Estimator(Protocol):
    """What saving reads of a fitted estimator."""

    _predictor: Predictor
    _SAVED: tuple[str, ...]
    n_features_in_: int

    def get_params(self, deep: bool = True) -> dict[str, Any]: ...


__all__ = ["save_estimator"]


def _jsonable(values: Any) -> Any:
    if isinstance(values, dict):
        return {str(k): _jsonable(v) for k, v in values.items()}
    if isinstance(values, list | tuple | np.ndarray):
        return [_jsonable(v) for v in values]
    return values.item() if isinstance(values, np.generic) else values


def _record(estimator: Estimator) -> dict[str, Any]:
    """What the manifest keeps of the estimator: its class, keywords and fitted attributes."""
    classes = getattr(estimator, "classes_", None)
    names = getattr(estimator, "feature_names_in_", None)
    params = estimator.get_params()
    if not isinstance(params.get("random_state"), int | None):
        params.pop("random_state")
    if params.get("storage"):
        params["storage"] = redact(params["storage"])
    return {
        "class": type(estimator).__name__,
        "params": _jsonable(params),
        "n_features_in": estimator.n_features_in_,
        "feature_names_in": None if names is None else _jsonable(names),
        "classes": None if classes is None or isinstance(classes, list) else _jsonable(classes),
        "fitted": {k: _jsonable(getattr(estimator, k)) for k in estimator._SAVED},
    }


def save_estimator(estimator: Estimator, directory: Path) -> Path:
    """The model folder of a fitted estimator: its networks (one, or a study's folds), their
    preprocessing, the estimator's keywords and fitted attributes."""
    loaded = estimator._predictor.loaded
    try:
        with write_model(directory) as writer:
            folds = tuple(
                writer.fold_network(
                    network.trial,
                    network.fold,
                    model.state_dict(),
                    preprocessing=network.preprocessing,
                    y_shift=network.y_shift,
                    y_scale=network.y_scale,
                    score=network.score,
                    best_epoch=network.best_epoch,
                )
                for network, model in zip(loaded.manifest.folds, loaded.models, strict=True)
            )
            manifest = loaded.manifest.replace(
                folds=folds,
                refit=(),
                oof_predictions=None,
                estimator=_record(estimator),
            )
            writer.commit(manifest)
    except DnntuneError as exc:
        raise ValueError(str(exc)) from None
    return directory
