"""Sampler by name: one registry from :class:`SamplerName` to an Optuna sampler.

Strategies worth stating:

* ``grid`` discretizes each continuous range into ``grid_points`` values (log-spaced for log
  ranges) unless the space file gives explicit ``grid:`` values; the study stops when the grid is
  exhausted.
* ``cmaes`` searches the numeric parameters with CMA-ES; categorical ones (the optimizer, the
  activation) are drawn by a TPE sampler independently of CMA-ES, since CMA-ES has no model of
  unordered choices.
* ``qmc`` draws numeric parameters from a scrambled Sobol sequence; categorical ones as ``cmaes``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import optuna
from optuna.samplers import (
    BaseSampler,
    CmaEsSampler,
    GPSampler,
    GridSampler,
    QMCSampler,
    RandomSampler,
    TPESampler,
)

from dnntune.config import SamplerName
from dnntune.space import CategoricalParam, SearchSpace

__all__ = ["SamplerChoice", "make_sampler"]


@dataclass(frozen=True)
class SamplerChoice:
    sampler: BaseSampler
    note: str | None = None


def _categoricals(space: SearchSpace) -> list[str]:
    return [k for k, p in space.tuned.items() if isinstance(p, CategoricalParam)]


def make_sampler(
    name: SamplerName, *, space: SearchSpace, seed: int, grid_points: int = 3
) -> SamplerChoice:
    """The Optuna sampler for ``name``, with a one-line note on how it treats this space."""
    with warnings.catch_warnings():  # some samplers are flagged experimental in some versions
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _make_sampler(name, space, seed, grid_points)


def _make_sampler(
    name: SamplerName, space: SearchSpace, seed: int, grid_points: int
) -> SamplerChoice:
    cats = _categoricals(space)
    if name is SamplerName.GRID:
        grid = space.grid(grid_points)
        size = space.grid_size(grid_points)
        return SamplerChoice(
            GridSampler(grid, seed=seed),
            f"grid: {size} combinations ({grid_points} points per continuous range unless the "
            "space gives 'grid:' values); the study stops when all are tried",
        )
    if name is SamplerName.RANDOM:
        return SamplerChoice(RandomSampler(seed=seed))
    if name is SamplerName.TPE:
        return SamplerChoice(TPESampler(seed=seed))
    if name is SamplerName.GP:
        return SamplerChoice(
            GPSampler(seed=seed, n_startup_trials=10, warn_independent_sampling=False),
            "gp: Gaussian-process Bayesian optimization after 10 random start-up trials",
        )
    independent = TPESampler(seed=seed)
    cat_note = (
        f"; categorical parameters ({', '.join(cats)}) are drawn by TPE independently"
        if cats
        else ""
    )
    if name is SamplerName.CMAES:
        return SamplerChoice(
            CmaEsSampler(
                seed=seed, independent_sampler=independent, warn_independent_sampling=False
            ),
            f"cmaes: CMA-ES searches the numeric parameters{cat_note}",
        )
    if name is SamplerName.QMC:
        return SamplerChoice(
            QMCSampler(
                qmc_type="sobol",
                scramble=True,
                seed=seed,
                independent_sampler=independent,
                warn_independent_sampling=False,
                warn_asynchronous_seeding=False,
            ),
            f"qmc: scrambled Sobol sequence over the numeric parameters{cat_note}",
        )
    raise AssertionError(f"no sampler registered for {name}")  # every enum member is handled
