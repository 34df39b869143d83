"""The numbers behind the report's plots, computed from a study (tests check these)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from dnntune.baseline import BASELINE_ATTR, Baseline

__all__ = [
    "Curve",
    "baseline_of",
    "best_fold_scores",
    "best_so_far",
    "importances",
    "learning_curves",
    "state_counts",
    "top_pair",
    "trial_table",
]


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]


def baseline_of(study: optuna.Study) -> Baseline | None:
    """The gradient-boosting baseline the study stored (None without one)."""
    return Baseline.from_dict(study.user_attrs.get(BASELINE_ATTR))


def state_counts(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    return counts


def best_so_far(study: optuna.Study) -> pd.DataFrame:
    """Completed trials in order with their value and the best value up to each."""
    trials = _complete(study)
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    best = -math.inf if maximize else math.inf
    rows = []
    for t in trials:
        assert t.value is not None
        best = max(best, t.value) if maximize else min(best, t.value)
        rows.append(
            {
                "number": t.number,
                "value": t.value,
                "best": best,
                "seconds": (t.datetime_complete - trials[0].datetime_start).total_seconds()
                if t.datetime_complete and trials[0].datetime_start
                else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=["number", "value", "best", "seconds"])


def importances(study: optuna.Study) -> dict[str, float]:
    """Parameter importances (Optuna's default evaluator), summing to 1; empty when undefined."""
    trials = _complete(study)
    if len(trials) < 2:
        return {}
    try:
        values = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}
    total = sum(values.values())
    if not values or total <= 0:
        return {}
    return {k: v / total for k, v in values.items()}


def top_pair(imp: dict[str, float]) -> tuple[str, str] | None:
    ranked = sorted(imp, key=lambda k: imp[k], reverse=True)
    return (ranked[0], ranked[1]) if len(ranked) >= 2 else None


def best_fold_scores(study: optuna.Study) -> list[float]:
    """The per-fold scores of the best trial, as the objective recorded them."""
    if not _complete(study):
        return []
    return list(study.best_trial.user_attrs.get("fold_scores", []))


@dataclass
class Curve:
    number: int
    state: str
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


def learning_curves(study: optuna.Study) -> list[Curve]:
    """Each trial's reported running CV estimates by step (fold * epochs + epoch)."""
    curves = []
    for t in study.get_trials(deepcopy=False):
        if t.intermediate_values:
            steps = sorted(t.intermediate_values)
            curves.append(
                Curve(
                    t.number, t.state.name.lower(), steps, [t.intermediate_values[s] for s in steps]
                )
            )
    return curves


def trial_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value (for a pruned trial: its last running CV
    estimate), duration, parameters, and why it stopped early."""
    rows: list[dict[str, Any]] = []
    for t in study.get_trials(deepcopy=False):
        duration = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        note = ""
        if t.user_attrs.get("stop_reason") == "timeout":
            note = "stopped by --timeout"
        elif t.state is TrialState.PRUNED:
            note = f"pruned at fold {t.user_attrs.get('pruned_at_fold', '?')}, step {t.last_step}"
        rows.append(
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "value": t.value,
                "seconds": duration,
                **t.params,
                "note": note,
            }
        )
    return pd.DataFrame(rows)
