"""Pruning across folds, driven through ask/tell with synthetic reports (no training)."""

from __future__ import annotations

import math

import optuna
import pytest

from dnntune.config import PrunerName
from dnntune.objective import cv_step, running_estimate
from dnntune.pruners import make_pruner

SLOT, FOLDS = 10, 5


def _run_trial(study: optuna.Study, fold_curve) -> optuna.trial.FrozenTrial:
    """Report the running CV estimate like the objective does; stop when told to prune."""
    trial = study.ask()
    finished: list[float] = []
    for k in range(FOLDS):
        best = math.nan
        for epoch in range(1, SLOT + 1):
            score = fold_curve(k, epoch)
            best = score if math.isnan(best) else max(best, score)
            trial.report(running_estimate(finished, best), cv_step(k, epoch, SLOT))
            if trial.should_prune():
                return study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        finished.append(best)
    return study.tell(trial, sum(finished) / len(finished))


def test_steps_order_folds_then_epochs() -> None:
    assert cv_step(0, 1, SLOT) == 1
    assert cv_step(0, SLOT, SLOT) < cv_step(1, 1, SLOT)
    assert running_estimate([0.8, 0.9], 0.7) == pytest.approx(0.8)


def test_median_pruner_stops_a_bad_trial_on_its_first_fold() -> None:
    pruner = make_pruner(PrunerName.MEDIAN, epoch_slot=SLOT, max_steps=FOLDS * SLOT)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for i in range(5):
        t = _run_trial(study, lambda k, e, i=i: 0.80 + 0.01 * i + 0.005 * e)
        assert t.state is optuna.trial.TrialState.COMPLETE
    bad = _run_trial(study, lambda k, e: 0.60 + 0.001 * e)
    assert bad.state is optuna.trial.TrialState.PRUNED
    # Pruned right after the warm-up epochs of fold 0: about 8% of the trial's cost.
    assert bad.last_step == 3
    assert bad.intermediate_values  # partial values are kept for the samplers
    good = _run_trial(study, lambda k, e: 0.90 + 0.001 * e)
    assert good.state is optuna.trial.TrialState.COMPLETE
    assert good.last_step == FOLDS * SLOT


def test_a_trial_bad_only_on_a_later_fold_is_pruned_there() -> None:
    pruner = make_pruner(PrunerName.MEDIAN, epoch_slot=SLOT, max_steps=FOLDS * SLOT)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for _ in range(5):
        _run_trial(study, lambda k, e: 0.85)
    late = _run_trial(study, lambda k, e: 0.86 if k < 2 else 0.5)
    assert late.state is optuna.trial.TrialState.PRUNED
    assert 2 * SLOT < late.last_step <= 3 * SLOT


def test_hyperband_prunes_across_fold_steps() -> None:
    pruner = make_pruner(PrunerName.HYPERBAND, epoch_slot=SLOT, max_steps=FOLDS * SLOT)
    study = optuna.create_study(
        direction="maximize", pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    states = [
        _run_trial(study, lambda k, e, i=i: 0.5 + 0.4 * ((i * 7) % 10) / 10).state
        for i in range(30)
    ]
    assert optuna.trial.TrialState.PRUNED in states
    assert optuna.trial.TrialState.COMPLETE in states


def test_none_never_prunes() -> None:
    pruner = make_pruner(PrunerName.NONE, epoch_slot=SLOT, max_steps=FOLDS * SLOT)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for i in range(8):
        t = _run_trial(study, lambda k, e, i=i: 0.9 - 0.1 * i)
        assert t.state is optuna.trial.TrialState.COMPLETE


def _cv_objective(value_of, spread: float):
    def objective(trial: optuna.Trial) -> float:
        value = value_of(trial.suggest_float("x", 0.0, 1.0))
        trial.set_user_attr("fold_scores", [value - spread, value, value + spread])
        return value

    return objective


def test_auto_stop_when_improvement_is_below_cv_noise() -> None:
    from dnntune.study import AutoStop

    notes: list[str] = []
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    stop = AutoStop(notes.append, min_trials=20)
    # A flat objective measured with noisy folds: nothing left to gain.
    study.optimize(_cv_objective(lambda x: 0.80 + 0.001 * x, 0.1), n_trials=40, callbacks=[stop])
    assert stop.reason is not None and 20 <= len(study.trials) < 40
    assert notes == [stop.reason] and "fell below the cross-validation noise" in stop.reason
    assert study.user_attrs["auto_stop"] == stop.reason


def test_auto_stop_waits_while_improvement_is_likely() -> None:
    from dnntune.study import AutoStop

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    stop = AutoStop(lambda _: None, min_trials=20)
    # A steep objective measured with precise folds: keep going.
    study.optimize(_cv_objective(lambda x: 10.0 * x, 1e-4), n_trials=25, callbacks=[stop])
    assert stop.reason is None and len(study.trials) == 25


def test_the_cli_says_a_cut_trial_was_cut_not_failed() -> None:
    """Optuna logs a trial that raised as failed, with its traceback; the command line's filter
    keeps one line that says the deadline cut it."""
    import logging

    from dnntune._logs import quiet_expected_failures
    from dnntune.exceptions import TrialCut

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    quiet_expected_failures()
    logger, keep = logging.getLogger("optuna.study._optimize"), Keep()
    logger.addHandler(keep)
    study = optuna.create_study()

    def cut(trial: optuna.trial.Trial) -> float:
        raise TrialCut("cut by the study's deadline after 1 of 5 folds")

    try:
        study.optimize(cut, n_trials=1, catch=(TrialCut,))
    finally:
        logger.removeHandler(keep)
    lines = [r.getMessage() for r in records]
    assert lines == ["Trial 0 cut by the study's deadline after 1 of 5 folds."], lines
    assert all(r.exc_info is None for r in records)
