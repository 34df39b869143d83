"""Pruner by name: one registry from :class:`PrunerName` to an Optuna pruner.

Steps are ``fold * epoch_slot + epoch`` (see :mod:`dnntune.objective`), so ``max_steps`` is the
number of folds a trial runs times the largest epoch count.

``median`` compares a trial's *current* cross-validation estimate with the median of the
completed trials at the same fold and epoch. Optuna's :class:`~optuna.pruners.MedianPruner`
alone compares the trial's best value over all its steps, which would let a trial that was good
on fold 0 and falls behind on a later fold run to the end; :class:`CurrentValueMedianPruner`
hands it only the latest step. ``hyperband`` already judges the value at each rung's step.
"""

from __future__ import annotations

import copy

import optuna
from optuna.pruners import BasePruner, HyperbandPruner, MedianPruner, NopPruner

from dnntune.config import PrunerName

__all__ = ["CurrentValueMedianPruner", "make_pruner"]


class CurrentValueMedianPruner(BasePruner):
    """Optuna's median rule applied to the latest reported value only."""

    def __init__(self, *, n_startup_trials: int = 5, n_warmup_steps: int = 0) -> None:
        self._median = MedianPruner(
            n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps
        )

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        latest = copy.copy(trial)
        latest.intermediate_values = {step: trial.intermediate_values[step]}
        return self._median.prune(study, latest)


def make_pruner(name: PrunerName, *, epoch_slot: int, max_steps: int) -> BasePruner:
    if name is PrunerName.NONE:
        return NopPruner()
    if name is PrunerName.MEDIAN:
        # Let each trial train a few epochs of its first fold before judging it.
        return CurrentValueMedianPruner(
            n_startup_trials=5, n_warmup_steps=min(3, max(epoch_slot - 1, 0))
        )
    if name is PrunerName.HYPERBAND:
        return HyperbandPruner(
            min_resource=max(1, epoch_slot // 4), max_resource=max_steps, reduction_factor=3
        )
    raise AssertionError(f"no pruner registered for {name}")
