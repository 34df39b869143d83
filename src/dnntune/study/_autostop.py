"""Stop a study when the best configurations can no longer be told apart."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from dnntune._names import setting_name
from dnntune.config import TuneConfig
from dnntune.objective import Objective


def _auto_stop(
    config: TuneConfig, objective: Objective, note: Callable[[str], None]
) -> list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]]:
    if not config.search.auto_stop:
        return []
    if objective.n_folds < 2:
        note(
            f"{setting_name('auto_stop')} needs at least 2 folds per trial (the CV noise); "
            "it is off"
        )
        return []
    return [AutoStop(note)]


class AutoStop:
    """Stop the study when the best configurations can no longer be told apart.

    After ``min_trials`` completed trials, two numbers are compared:

    * the room for improvement: the mean gap between the ``top`` best values (an estimate of
      what the next record would add, from the spacing at the top of the values found);
    * the cross-validation noise of the best trial: the standard deviation of its fold scores
      times ``sqrt(1/k + 1/(k-1))``, the corrected resampled standard error of a k-fold mean
      (Nadeau and Bengio, 2003), since the folds share most of their training rows.

    When the first falls below the second, further trials are unlikely to find a configuration
    measurably better than the best; the study stops and the reason is recorded.
    """

    def __init__(self, note: Callable[[str], None], min_trials: int = 20, top: int = 5) -> None:
        self.min_trials = min_trials
        self.top = top
        self.note = note
        self.reason: str | None = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        values = [t.value for t in trials if t.value is not None and math.isfinite(t.value)]
        if len(values) < self.min_trials or self.reason is not None:
            return
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        best = sorted(values, reverse=maximize)[: self.top]
        room = abs(best[0] - best[-1]) / (len(best) - 1)
        noise = cv_noise(study.best_trial.user_attrs.get("fold_scores", []))
        if noise is None or not room < noise:
            return
        self.reason = (
            f"auto-stop after {len(values)} completed trials: the estimated room for "
            f"improvement ({room:.4g}) fell below the cross-validation noise ({noise:.4g})"
        )
        self.note(self.reason)
        study.set_user_attr("auto_stop", self.reason)
        study.stop()


def cv_noise(fold_scores: list[float]) -> float | None:
    """The corrected standard error of a k-fold mean score (None for fewer than 2 folds)."""
    k = len(fold_scores)
    if k < 2 or not all(math.isfinite(s) for s in fold_scores):
        return None
    return statistics.stdev(fold_scores) * math.sqrt(1 / k + 1 / (k - 1))
