"""Epochs from the time limit (:func:`choose_epochs`).

Within a time limit, where the space leaves ``epochs`` to dnntune, a probe times the first
configuration's epochs before the first trial (``study._probe``), and every trial of the study
trains as many epochs per fold as let the time left afford :data:`BUDGET_TRIALS` full trials of
that configuration (or the trial count asked for, when more): the space's default (20) at
least, :data:`MAX_BUDGET_EPOCHS` at most. Early-stopping patience grows with the epochs, so
the learning-rate schedule and early stopping keep their shape over a longer run. A small
table's minutes then buy longer training of each configuration instead of hundreds more short
trials, most of them pruned.

The choice is stored in the study (:data:`BUDGET_EPOCHS_ATTR`): a resumed study and its workers
train the same epochs, so the pruner compares trials at the same step of the same schedule. A
study begun without one (no time limit, or a space that sets ``epochs``) keeps its epochs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from dnntune._names import setting_name
from dnntune.pruners import make_pruner
from dnntune.study._probe import probe_trial

if TYPE_CHECKING:
    from dnntune.study._prepared import PreparedRun

__all__ = [
    "BUDGET_EPOCHS_ATTR",
    "BUDGET_TRIALS",
    "FASTEST_EPOCH",
    "MAX_BUDGET_EPOCHS",
    "budget_epochs",
    "choose_epochs",
    "scaled_patience",
    "use_stored_epochs",
]

# The study's user attribute that holds the epochs chosen from its time limit.
BUDGET_EPOCHS_ATTR = "budget_epochs"

# The full trials of the first configuration that the time left must afford.
BUDGET_TRIALS = 10

# The most epochs per fold chosen from a time limit.
MAX_BUDGET_EPOCHS = 200

# Seconds per epoch below which few tables train (800 rows in batches of 32 take 0.03 s on
# 2 cores): no probe runs when not even epochs this short would buy more than the default
# (with 5 folds, under 20 s left), since the probe costs about a second.
FASTEST_EPOCH = 0.02


def budget_epochs(
    left: float, per_epoch: float, n_folds: int, base: int, trials: int | None = None
) -> int:
    """Epochs per fold with which :data:`BUDGET_TRIALS` trials (or ``trials``, when more) of
    ``n_folds`` folds, at ``per_epoch`` seconds an epoch, fit in ``left`` seconds; between
    ``base`` and :data:`MAX_BUDGET_EPOCHS` (``base`` when an epoch's time is unknown)."""
    if not math.isfinite(per_epoch) or per_epoch <= 0:
        return base
    fits = int(left / (max(BUDGET_TRIALS, trials or 0) * n_folds * per_epoch))
    return max(base, min(MAX_BUDGET_EPOCHS, fits))


def scaled_patience(patience: int, epochs: int, base: int) -> int:
    """Early-stopping patience for ``epochs`` per fold, in proportion to ``patience`` for
    ``base`` epochs (never less)."""
    return max(patience, round(patience * epochs / max(base, 1)))


def use_stored_epochs(run: PreparedRun) -> None:
    """Train the study's epochs chosen from its time limit, where it stored them."""
    stored = run.study.user_attrs.get(BUDGET_EPOCHS_ATTR)
    if stored and "epochs" not in run.space.params:
        _apply(run, int(stored["epochs"]), int(stored["patience"]))


def choose_epochs(run: PreparedRun) -> None:
    """Before the first trial of a study within a time limit whose space leaves ``epochs``
    to dnntune: probe the first configuration, choose the epochs per fold from the time left
    (:func:`budget_epochs`), store them in the study and train every trial with them. Said in a
    note when they differ from the space's default. Nothing happens on a study that already
    has trials or stored epochs, when too little time is left for more epochs than the
    default even at :data:`FASTEST_EPOCH`, or when the probe fails."""
    study, space = run.study, run.space
    left = run.time_left()
    base = int(space.fixed_defaults["epochs"])
    if (
        left is None
        or "epochs" in space.params
        or BUDGET_EPOCHS_ATTR in study.user_attrs
        or study.get_trials(deepcopy=False)
        or budget_epochs(left, FASTEST_EPOCH, run.objective.n_folds, base) <= base
    ):
        return
    try:
        estimate = probe_trial(run.objective)
    except (ValueError, RuntimeError):
        return
    left = run.time_left() or 0.0
    trials = max(BUDGET_TRIALS, run.config.search.n_trials or 0)
    epochs = budget_epochs(left, estimate.per_epoch, run.objective.n_folds, base, trials)
    patience = scaled_patience(run.config.training.patience, epochs, base)
    plan: dict[str, Any] = {
        "epochs": epochs,
        "patience": patience,
        "seconds_per_epoch": round(estimate.per_epoch, 4),
        "seconds_left": round(left, 1),
    }
    study.set_user_attr(BUDGET_EPOCHS_ATTR, plan)
    _apply(run, epochs, patience)
    if epochs != base:
        run.note(
            f"{epochs} epochs per fold (patience {patience}): {trials} trials of the "
            f"first configuration fit in the {left:.0f} s left of {setting_name('timeout')} "
            f"(an epoch took {estimate.per_epoch:.3f} s); a space that sets epochs fixes them"
        )


def _apply(run: PreparedRun, epochs: int, patience: int) -> None:
    """Every trial trains ``epochs`` per fold; the pruner's steps follow them."""
    run.objective.use_epochs(epochs, patience)
    n_folds = run.objective.n_folds
    run.study.pruner = make_pruner(
        run.config.search.pruner, epoch_slot=epochs, max_steps=n_folds * epochs
    )
