"""A dnntune study as an estimator: :class:`TunedDNNClassifier`, :class:`TunedDNNRegressor`.

``fit`` builds the dataset from ``X``, ``y`` with the data stage's checks and runs the study of
``dnntune tune`` on it (``study.run_study``); the estimator predicts with the run's delivered
model folder.
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
from optuna.trial import TrialState
from sklearn.base import ClassifierMixin, RegressorMixin

from dnntune.artifacts import LoadedModel, ModelManifest, load_model, read_manifest, saved_trial
from dnntune.config import TuneConfig
from dnntune.data import Dataset, Target, assign_folds, duplicate_groups
from dnntune.exceptions import DnntuneError
from dnntune.inference import Predictor
from dnntune.sklearn._base import Estimator, seed_of
from dnntune.sklearn._targets import Classifying, Regressing
from dnntune.space import SearchSpace, load_space, parse_space
from dnntune.storage import MEMORY
from dnntune.study import run_study

__all__ = ["TunedDNNClassifier", "TunedDNNRegressor", "TunedEstimator", "cv_results"]


class TunedEstimator(Estimator):
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
        numeric_scaling: str = "standard",
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
        self.numeric_scaling = numeric_scaling
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

    def fit(self, X: Any, y: Any) -> TunedEstimator:
        """Run the study on ``X``, ``y`` (or resume it: the same rows, settings and
        ``storage``), then keep its delivered model: the ensemble of its best trials, or the
        best trial alone."""
        frame, target, plan = self._checked(X, y)
        seed = seed_of(self.random_state)
        output_dir = self.output_dir
        run_dir = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="dnntune-"))
        temporary = not output_dir
        try:
            config = self._config(frame, target, seed, run_dir)
            groups = duplicate_groups(frame[plan.features]) if self.group_duplicates else None
            folds = assign_folds(target, config.columns.folds, config.split_seed, groups)
            dataset = Dataset(frame, target, folds, plan, source="fit")
            result = run_study(config, dataset=dataset, space=self._space())
            loaded = _delivered(result.study, run_dir)
        except DnntuneError as exc:
            raise ValueError(str(exc)) from None
        finally:
            if temporary:
                shutil.rmtree(run_dir, ignore_errors=True)
        study = result.study
        self.study_ = study
        # With no completed trial, the delivered folds of the trial the time limit cut.
        best = study.trials[loaded.manifest.members[0].trial or 0]
        if loaded.manifest.best_trial is not None:
            best = study.best_trial
        self.best_params_ = best.params
        self.best_score_ = (
            best.value if best.value is not None else loaded.manifest.members[0].value
        )
        self.best_trial_ = best.number
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
    "numeric_scaling",
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


def _members(manifest: ModelManifest) -> list[dict[str, Any]] | None:
    """The delivered ensemble's members (``trial`` and ``weight``); None for one trial."""
    if not manifest.is_ensemble:
        return None
    return [{"trial": m.trial, "weight": m.weight} for m in manifest.members]


def _delivered(study: optuna.Study, run_dir: Path) -> LoadedModel:
    """The study's delivered model, refused in one line when there is none."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    saved = run_dir / "model"
    if not done and (saved / "manifest.json").is_file() and read_manifest(saved).cut_by_deadline:
        return load_model(run_dir)  # the folds a trial finished before the time limit
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


class TunedDNNClassifier(Classifying, ClassifierMixin, TunedEstimator):
    __doc__ = (
        "A dnntune study as a classifier: binary, multiclass, or multilabel (a 2-D ``y`` of 0/1"
        "\n    indicators); ``classes_`` as :class:`DNNClassifier`'s." + _TUNED_DOC
    )


class TunedDNNRegressor(Regressing, RegressorMixin, TunedEstimator):
    __doc__ = "A dnntune study as a regressor: one target, or several (a 2-D ``y``)." + _TUNED_DOC
