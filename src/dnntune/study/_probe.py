"""How long one trial of a study takes, measured in a few seconds (:func:`probe_trial`): what
the one line says when a time limit ran out before a first epoch could train."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import optuna

from dnntune.data import PreparedFold
from dnntune.objective import Objective, auto_batch_size, train_network
from dnntune.space import CategoricalParam, SearchSpace, suggest

# The training rows a probe epoch sees; an epoch of all of them is scaled from its batches.
PROBE_ROWS = 2048

# The least time over which the probe's epochs after its first are timed (one short epoch's
# time is noise), and the most epochs it trains to get there.
PROBE_WINDOW = 0.3
PROBE_EPOCHS = 50


@dataclass(frozen=True)
class TrialEstimate:
    """One trial's expected seconds: ``folds`` x (``per_fold`` to prepare + ``epochs`` x
    ``per_epoch``), the probe configuration's."""

    folds: int
    epochs: int
    per_epoch: float
    per_fold: float

    @property
    def seconds(self) -> float:
        return self.folds * (self.per_fold + self.epochs * self.per_epoch)

    def describe(self) -> str:
        return (
            f"one trial needs about {self.seconds:.0f} s here ({self.folds} folds of "
            f"{self.epochs} epochs of about {self.per_epoch:.2f} s, and {self.per_fold:.1f} s to "
            "prepare each fold's rows)"
        )


def probe_params(space: SearchSpace) -> dict[str, Any]:
    """The configuration a probe trains: the space's warm start, else the middle of each range
    and the first of each choice."""
    values = space.warm_start()
    if values is None:
        values = {}
        for name, grid in space.grid(3).items():
            middle = not isinstance(space.params[name], CategoricalParam)
            values[name] = grid[len(grid) // 2] if middle else grid[0]
    return suggest(optuna.trial.FixedTrial(values), space)


def probe_trial(objective: Objective) -> TrialEstimate:
    """Prepare the first fold (timed) and train the probe configuration on at most
    :data:`PROBE_ROWS` of its training rows: the epochs after its first (which pays PyTorch's
    one-time costs) are timed over :data:`PROBE_WINDOW` seconds and scaled to the fold's
    batches. The estimate's epochs are the objective's (``Objective.epochs``) or the
    configuration's."""
    started = time.monotonic()
    fold = objective.folds[0]
    per_fold = time.monotonic() - started
    params = probe_params(objective.space)
    n_train = fold.tensors.n_train
    params["batch_size"] = params["batch_size"] or auto_batch_size(n_train)
    rows = min(n_train, PROBE_ROWS)
    tensors = fold.tensors
    sample = PreparedFold(
        fold.index,
        fold.preprocessor,
        replace(
            tensors,
            x_train=tensors.x_train[:rows],
            y_train=tensors.y_train[:rows],
            x_valid=tensors.x_valid[:rows],
            y_valid_eval=tensors.y_valid_eval[:rows],
        ),
    )
    ends: list[float] = []

    def timed(epoch: int, score: float) -> bool:
        ends.append(time.monotonic())
        return len(ends) > 1 and ends[-1] - ends[0] >= PROBE_WINDOW

    train_network(
        sample,
        params,
        d_out=objective.d_out,
        metric=objective.metric,
        patience=PROBE_EPOCHS,
        seed=objective.seed,
        epochs=PROBE_EPOCHS,
        on_epoch=timed,
    )
    batch_size = int(params["batch_size"])
    scale = math.ceil(n_train / batch_size) / math.ceil(rows / batch_size)
    per_epoch = (ends[-1] - ends[0]) / (len(ends) - 1) * scale if len(ends) > 1 else math.nan
    epochs = objective.epochs or int(params["epochs"])
    return TrialEstimate(objective.n_folds, epochs, per_epoch, per_fold)
