"""Ensemble selection over a study's best trials (Caruana et al., 2004, "Ensemble selection
from libraries of models").

During a study, each completed trial among the ``ensemble_pool`` best (by the study's value) is
kept in the run folder's ``pool/``: one safetensors file per trial holding its fold models'
weights and its out-of-fold predictions, with the trial's parameters and fold scores as the
file's JSON metadata; ``pool/truth.safetensors`` holds the rows those predictions cover, their
folds and true targets, and ``pool/fold<K>.json`` each fold's fitted preprocessing (the same for
every trial). A trial pushed out of the best ``ensemble_pool`` is deleted.

At the end of a study (or on demand, ``dnntune ensemble``), greedy selection with replacement
builds a blend of those predictions: starting empty, each of ``rounds`` rounds adds the trial
that makes the blend's out-of-fold score best on the task's proper score (log loss for classes
and labels, RMSE for values; when that blend does not pass the rule below, the study's metric
is tried); the blend kept is the best of the rounds, each member weighted by how often it was
picked. A trial whose predictions are nearly constant within a fold never
enters. The blend becomes the delivered model (every member's fold models with their weights,
in the model folder) when, on the pooled out-of-fold rows, it is no worse than the best trial
alone on both the study's metric and the proper score, and better on one.
"""

from dnntune.ensemble._pool import POOL, Pool, PoolEntry
from dnntune.ensemble._select import (
    NEAR_CONSTANT,
    Selection,
    ensemble_run,
    near_constant,
    passes_rule,
    select,
)

__all__ = [
    "NEAR_CONSTANT",
    "POOL",
    "Pool",
    "PoolEntry",
    "Selection",
    "ensemble_run",
    "near_constant",
    "passes_rule",
    "select",
]
