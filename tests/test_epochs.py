"""Epochs per fold chosen from the time limit (``dnntune.study._epochs``)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

import dnntune
from dnntune.study import _epochs
from dnntune.study._epochs import (
    BUDGET_EPOCHS_ATTR,
    BUDGET_TRIALS,
    MAX_BUDGET_EPOCHS,
    budget_epochs,
    scaled_patience,
)
from dnntune.study._probe import TrialEstimate
from dnntune.testing import TINY_SPACE, write_space

# The tiny space with the epochs left to dnntune (the default: 20).
OPEN_SPACE = TINY_SPACE.replace("epochs: 4\n", "")


def test_budget_epochs_afford_the_trials_between_the_default_and_the_cap() -> None:
    assert BUDGET_TRIALS == 10
    # 10 trials x 5 folds x 80 epochs x 0.01 s = 40 s.
    assert budget_epochs(40.0, 0.01, 5, 20) == 80
    assert budget_epochs(40.0, 0.01, 5, 20, trials=20) == 40  # more trials asked: fewer epochs
    assert budget_epochs(40.0, 0.01, 5, 20, trials=3) == 80  # fewer: still BUDGET_TRIALS
    assert budget_epochs(5.0, 0.01, 5, 20) == 20  # never below the default
    assert budget_epochs(1e6, 0.01, 5, 20) == MAX_BUDGET_EPOCHS
    assert budget_epochs(40.0, float("nan"), 5, 20) == 20
    assert budget_epochs(40.0, 0.0, 5, 20) == 20
    assert scaled_patience(5, 40, 20) == 10
    assert scaled_patience(5, 20, 20) == 5
    assert scaled_patience(8, 21, 20) == 8


def _fake_probe(monkeypatch: pytest.MonkeyPatch, per_epoch: float | None, calls: list[int]) -> None:
    """A probe that reports ``per_epoch`` seconds an epoch (None: fails the test if called)."""

    def probe(objective: object) -> TrialEstimate:
        calls.append(1)
        assert per_epoch is not None, "the probe ran where no epochs were to be chosen"
        return TrialEstimate(folds=2, epochs=20, per_epoch=per_epoch, per_fold=0.0)

    monkeypatch.setattr(_epochs, "probe_trial", probe)


def _settings(tmp_path: Path, credit_g: Path, space: str = OPEN_SPACE) -> dict[str, object]:
    tmp_path.mkdir(exist_ok=True)
    return {
        "data": str(credit_g),
        "target": ("target",),
        "folds": 2,
        "baseline": False,
        "ensemble": False,
        "space": str(write_space(tmp_path / "s.yaml", space)),
        "output_dir": str(tmp_path / "run"),
    }


def test_a_time_limit_chooses_every_trials_epochs_and_a_resumed_study_keeps_them(
    tmp_path: Path, credit_g: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An epoch of 20 ms within 20 s: BUDGET_TRIALS (10) trials of 2 folds afford 30 to 50
    epochs in the time left (more than the default 20). Every trial trains them, with
    patience in proportion, the pruner's steps follow them (fold 1 starts at step epochs + 1),
    the choice is said and stored; a resumed study trains the same epochs without probing
    again, whatever its own limit."""
    calls: list[int] = []
    _fake_probe(monkeypatch, 0.02, calls)
    notes: list[str] = []
    settings = _settings(tmp_path, credit_g)
    first = dnntune.tune(trials=2, timeout=20.0, on_note=notes.append, **settings)
    plan = first.study.user_attrs[BUDGET_EPOCHS_ATTR]
    epochs = plan["epochs"]
    assert 30 <= epochs <= 50 and calls == [1], plan
    assert abs(epochs - budget_epochs(plan["seconds_left"], 0.02, 2, 20)) <= 1, plan
    assert plan["patience"] == scaled_patience(5, epochs, 20)
    said = [n for n in notes if "epochs per fold" in n]
    assert said and said[0].startswith(f"{epochs} epochs per fold (patience {plan['patience']})")
    assert f"{BUDGET_TRIALS} trials of the first configuration" in said[0]
    assert first.best is not None and first.best.params["epochs"] == epochs
    for trial in first.study.trials:
        assert trial.user_attrs["epochs_budget"] == 2 * epochs
        steps = sorted(trial.intermediate_values)
        assert min(steps) >= 1 and max(steps) <= 2 * epochs
        if trial.state is optuna.trial.TrialState.COMPLETE:
            # Fold 1's steps follow fold 0's epochs: epochs + 1 onwards.
            assert epochs + 1 in steps
    _fake_probe(monkeypatch, None, calls)
    again = dnntune.tune(trials=3, timeout=100.0, **settings)
    resumed = again.study.trials[2]
    assert resumed.user_attrs["epochs_budget"] == 2 * epochs
    assert again.study.user_attrs[BUDGET_EPOCHS_ATTR] == plan


def test_epochs_are_not_chosen_without_a_limit_or_where_the_space_sets_them(
    tmp_path: Path, credit_g: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    _fake_probe(monkeypatch, None, calls)
    fixed = dnntune.tune(trials=1, timeout=30.0, **_settings(tmp_path / "a", credit_g, TINY_SPACE))
    assert BUDGET_EPOCHS_ATTR not in fixed.study.user_attrs
    assert fixed.study.trials[0].user_attrs["epochs_budget"] == 2 * 4
    unlimited = dnntune.tune(trials=1, **_settings(tmp_path / "b", credit_g))
    assert BUDGET_EPOCHS_ATTR not in unlimited.study.user_attrs
    assert unlimited.study.trials[0].user_attrs["epochs_budget"] == 2 * 20
    # 8 s: more than 20 epochs would need epochs under FASTEST_EPOCH; no probe runs.
    short = dnntune.tune(trials=1, timeout=8.0, **_settings(tmp_path / "c", credit_g))
    assert BUDGET_EPOCHS_ATTR not in short.study.user_attrs


def test_the_probe_times_the_epochs_of_a_real_fold(tmp_path: Path, credit_g: Path) -> None:
    """Without a fake: a time limit far longer than any trial gives the most epochs, and the
    stored seconds per epoch are a real measurement."""
    result = dnntune.tune(trials=1, timeout=3600.0, max_folds=1, **_settings(tmp_path, credit_g))
    plan = result.study.user_attrs[BUDGET_EPOCHS_ATTR]
    assert 0 < plan["seconds_per_epoch"] < 1.0, plan
    assert plan["epochs"] == MAX_BUDGET_EPOCHS
    assert result.study.trials[0].state is optuna.trial.TrialState.COMPLETE
