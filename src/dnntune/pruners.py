"""Pruner by name: one registry from :class:`PrunerName` to an Optuna pruner.

Steps are ``fold * epoch_slot + epoch`` (see :mod:`dnntune.objective`), so ``max_steps`` is the
number of folds a trial runs times the largest epoch count.
"""

from __future__ import annotations

from optuna.pruners import BasePruner, HyperbandPruner, MedianPruner, NopPruner

from dnntune.config import PrunerName

__all__ = ["make_pruner"]


def make_pruner(name: PrunerName, *, epoch_slot: int, max_steps: int) -> BasePruner:
    if name is PrunerName.NONE:
        return NopPruner()
    if name is PrunerName.MEDIAN:
        # Let each trial train a few epochs of its first fold before judging it.
        return MedianPruner(n_startup_trials=5, n_warmup_steps=min(3, max(epoch_slot - 1, 0)))
    if name is PrunerName.HYPERBAND:
        return HyperbandPruner(min_resource=max(1, epoch_slot // 4), max_resource=max_steps,
                               reduction_factor=3)
    raise AssertionError(f"no pruner registered for {name}")
