"""The Optuna objective: trial -> parameters -> K fits on the prepared folds -> mean score.

Pruning across folds. Every trial visits the folds in the same order and reports, after each
epoch, the running cross-validation estimate: the mean of the finished folds' best scores and the
current fold's best score so far, at step ``fold * epoch_slot + epoch`` (``epoch_slot`` is the
largest epoch count the space allows). Trials are therefore compared at the same fold and epoch,
so a trial that is bad on its first fold is pruned there, after a fraction of its cost; a pruned
trial keeps its reported values, which the samplers use.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import torch
from torch import nn

from dnntune._owners import RETRY_ATTR, record_owner
from dnntune._signals import raise_if_interrupted
from dnntune.config import Task, Training
from dnntune.data import Dataset, FoldCache, PreparedFold
from dnntune.engine import FitResult, Metric, fit, predict_outputs
from dnntune.exceptions import TrialCut, TrialOutOfMemory
from dnntune.model import make_model
from dnntune.space import FixedParam, IntParam, SearchSpace, suggest

__all__ = [
    "Objective",
    "TrialModels",
    "TrialOutOfMemory",
    "auto_batch_size",
    "cv_step",
    "epoch_slot",
    "fold_count",
    "is_out_of_memory",
    "model_kwargs",
    "running_estimate",
    "train_network",
    "training_kwargs",
]


def clock() -> float:
    """The time (``time.monotonic()``) against which trials meet the study's deadline and the
    first trial is sized: the one seam where a test makes epochs slow."""
    return time.monotonic()


def cv_step(fold: int, epoch: int, slot: int) -> int:
    """The pruning step of ``epoch`` (1-based) of fold ``fold`` (0-based)."""
    return fold * slot + epoch


def running_estimate(finished_scores: list[float], best_in_fold: float) -> float:
    """Cross-validation estimate so far: mean of finished folds and the current fold's best."""
    return (sum(finished_scores) + best_in_fold) / (len(finished_scores) + 1)


def auto_batch_size(n_train: int) -> int:
    """A power of two near ``n_train / 50``, between 32 and 512."""
    return int(min(512, max(32, 2 ** round(math.log2(max(n_train, 1) / 50)))))


def fold_count(training: Training, dataset: Dataset) -> int:
    """The folds each trial trains: all of the dataset's, or the first ``max_folds``."""
    return min(training.max_folds or dataset.n_folds, dataset.n_folds)


# The user attribute of a trial that ran fewer epochs per fold to fit the time limit.
SIZED_ATTR = "sized_epochs"

# The share of the time left that a sized first trial plans to use (the rest: delivery).
SIZING_MARGIN = 0.8


# The least time over which a sized trial's epochs are timed (after its first, which pays
# one-time costs): one short epoch's time is noise.
SIZING_WINDOW = 0.5


def min_sized_epochs(epochs: int) -> int:
    """The fewest epochs per fold a sized trial trains (of ``epochs``): with fewer, the first
    folds trained fully are the better model, and the deadline delivers those."""
    return max(1, min(5, epochs // 2))


def epochs_that_fit(left: float, per_epoch: float, per_fold: float, n_folds: int) -> int:
    """The most epochs per fold with which ``n_folds`` folds fit in ``left`` seconds, given
    the measured seconds per epoch and per fold's preparation (0: not even one epoch each)."""
    usable = SIZING_MARGIN * left - n_folds * per_fold
    return max(int(usable // (n_folds * max(per_epoch, 1e-9))), 0)


def epoch_slot(space: SearchSpace) -> int:
    """The largest epoch count a trial may use: the width of one fold in pruning steps."""
    p = space.params.get("epochs")
    if isinstance(p, IntParam):
        return p.high
    if isinstance(p, FixedParam):
        return int(p.value)
    return int(space.fixed_defaults["epochs"])


# The parameters that shape the network (make_model's keywords besides its inputs and outputs).
MODEL_PARAMS = (
    "architecture",
    "num_embeddings",
    "num_layers",
    "hidden_size",
    "dropout",
    "activation",
    "batch_norm",
    "ensemble_size",
    "d_embedding",
    "n_frequencies",
    "frequency_scale",
)


def model_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    return {k: params[k] for k in MODEL_PARAMS}


# The parameters that decide how a network is trained (engine.fit's keywords of the same name).
TRAINING_PARAMS = (
    "optimizer",
    "learning_rate",
    "weight_decay",
    "batch_size",
    "epochs",
    "lr_schedule",
)


def training_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    return {k: params[k] for k in TRAINING_PARAMS}


@dataclass
class TrialModels:
    """A completed trial's fold models (CPU state dicts), their preprocessing, out-of-fold
    outputs and validation rows."""

    trial_number: int
    value: float
    params: dict[str, Any]
    fold_scores: list[float]
    best_epochs: list[int]
    states: list[dict[str, torch.Tensor]]
    folds: list[PreparedFold] = field(repr=False, default_factory=list)
    d_out: int = 1
    oof_outputs: list[np.ndarray] = field(repr=False, default_factory=list)
    valid_rows: list[np.ndarray] = field(repr=False, default_factory=list)

    def build(self, i: int = 0) -> nn.Module:
        """The trained model of fold ``i`` as an ``nn.Module`` on the CPU, in eval mode."""
        model = make_model(
            layout=self.folds[i].preprocessor.layout(),
            d_out=self.d_out,
            **model_kwargs(self.params),
        )
        model.load_state_dict(self.states[i])
        return model.eval()


def train_network(
    fold: PreparedFold,
    params: dict[str, Any],
    *,
    d_out: int,
    metric: Metric,
    patience: int,
    seed: int,
    epochs: int | None = None,
    on_epoch: Callable[[int, float], bool | None] | None = None,
) -> tuple[nn.Module, FitResult]:
    """The one way a configuration is trained on a fold's rows, by the study's trials, refit and
    the estimators: a network made from ``params`` (initialized from ``seed``) on the fold's
    device, trained by ``engine.fit`` with early stopping, its best epoch restored. ``epochs``
    stops it earlier than ``params["epochs"]`` with the learning-rate schedule still spanning
    the full budget (refit stops where the folds were best)."""
    device = fold.tensors.x_train.device
    torch.manual_seed(seed)
    model = make_model(layout=fold.preprocessor.layout(), d_out=d_out, **model_kwargs(params))
    model = model.to(device)
    training = training_kwargs(params)
    if epochs is not None:
        training.update(epochs=epochs, schedule_epochs=params["epochs"])
    result = fit(
        model,
        fold.tensors,
        metric=metric,
        **training,
        patience=patience,
        generator=torch.Generator(device=device).manual_seed(seed),
        on_epoch=on_epoch,
    )
    return model, result


# The parameters that decide a trial's memory, named when it runs out.
OOM_PARAMS = ("num_layers", "hidden_size", "batch_size", "ensemble_size")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is PyTorch failing to allocate memory, on a GPU or on the CPU."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text.lower()
    )


@dataclass
class _TrialRun:
    """What a trial has done so far: its finished folds, and when each score was known."""

    trial: optuna.trial.Trial
    params: dict[str, Any]
    started: float = field(default_factory=time.monotonic)
    epochs_run: int = 0
    scores: list[float] = field(default_factory=list)
    best_epochs: list[int] = field(default_factory=list)
    states: list[dict[str, torch.Tensor]] = field(default_factory=list)
    # What a saved model needs of each fold (not its inputs, which another fold may need the
    # memory of) and its out-of-fold outputs.
    folds: list[PreparedFold] = field(default_factory=list)
    oof: list[np.ndarray] = field(default_factory=list)
    # [step, seconds since the trial started] of each reported value (the report's curves
    # against time, bench_search's time to a target).
    timeline: list[list[float]] = field(default_factory=list)
    cut: bool = False  # the study's deadline ended it
    # The first trial within a time limit is sized once the epochs after its first are timed
    # (``SIZING_WINDOW``, ``epochs_that_fit``).
    sizing: bool = False
    resize_to: int | None = None
    seconds_per_epoch: float = 0.0  # measured by the sizing epochs
    reported: int = 0  # the last step reported to Optuna

    def record(self, reason: str | None = None, **attrs: Any) -> None:
        """Store the trial's progress in the study (before it ends, for whatever reason)."""
        if reason is not None:
            self.trial.set_user_attr("stop_reason", reason)
        for key, value in {"epochs_run": self.epochs_run, "report_seconds": self.timeline}.items():
            self.trial.set_user_attr(key, value)
        for key, value in attrs.items():
            self.trial.set_user_attr(key, value)


class Objective:
    """Callable objective for ``study.optimize``; keeps the best trial's fold models (``best``).

    ``on_trial`` hears of each completed trial's fold models, ``on_new_best`` of those of a
    trial better than ``best_value`` (the study's best when the objective is made).

    ``folds`` gives each fold's prepared tensors; ``training`` the folds each trial runs and
    the early-stopping patience. ``deadline`` (``time.monotonic()``) ends a trial in flight at
    the end of an epoch, its best epoch kept: the trial is cut (:class:`TrialCut`), its
    parameters queued to run first when the study resumes, and, while no trial has
    completed, ``on_partial`` hears of the folds it finished (the best partial result).
    While no trial has completed, a trial within a time limit is sized once the epochs after
    its first are timed: when its folds cannot all finish in the time left, it runs them with
    the epochs that fit (user attribute ``sized_epochs``; its first fold restarts), so a whole
    smaller trial completes.
    """

    def __init__(
        self,
        space: SearchSpace,
        metric: Metric,
        folds: FoldCache,
        training: Training,
        *,
        seed: int = 42,
        deadline: float | None = None,
        best_value: float | None = None,
        on_new_best: Callable[[TrialModels], object] | None = None,
        on_trial: Callable[[TrialModels], object] | None = None,
        on_partial: Callable[[TrialModels], object] | None = None,
    ) -> None:
        self.dataset: Dataset = folds.dataset
        self.space = space
        self.metric = metric
        self.folds = folds
        self.device = folds.device
        self.patience = training.patience
        self.n_folds = fold_count(training, self.dataset)
        self.seed = seed
        self.deadline = deadline
        self.best_value = best_value
        self.best: TrialModels | None = None
        self.on_new_best = on_new_best
        self.on_trial = on_trial
        self.on_partial = on_partial
        self.epoch_slot = epoch_slot(space)
        self.epochs: int | None = None  # every trial's epochs, where the space leaves them

    def use_epochs(self, epochs: int, patience: int) -> None:
        """Train every trial for ``epochs`` per fold with early-stopping ``patience`` (epochs
        chosen from the time limit, ``dnntune.study``); a space that sets ``epochs`` keeps
        them."""
        if "epochs" in self.space.params:
            raise ValueError("the space sets epochs; they cannot be chosen for it")
        self.epochs, self.patience, self.epoch_slot = epochs, patience, epochs

    @property
    def max_steps(self) -> int:
        return self.n_folds * self.epoch_slot

    @property
    def d_out(self) -> int:
        target = self.dataset.target
        return 1 if self.dataset.task is Task.BINARY else target.n_outputs

    def __call__(self, trial: optuna.trial.Trial) -> float:
        """Train the trial's configuration on the folds; a configuration that does not fit in
        memory fails alone (:class:`TrialOutOfMemory`), with its memory released."""
        record_owner(trial)  # a later run fails the trial if this process dies without a word
        try:
            return self._run(trial)
        except RuntimeError as exc:  # torch.OutOfMemoryError (CUDA) is one too
            if not is_out_of_memory(exc):
                raise
            reason = str(exc).splitlines()[0][:300]
        # Outside the except block: the traceback, whose frames held the model, is gone.
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        trial.set_user_attr("fail_reason", f"out of memory: {reason}")
        params = suggest(trial, self.space)  # the values the trial drew (or was fixed to)
        sizes = ", ".join(f"{k}={params[k]}" for k in OOM_PARAMS if params.get(k) is not None)
        raise TrialOutOfMemory(
            f"out of memory on {self.device.type} at {sizes}; the study goes on (narrow the "
            "space's sizes to avoid such trials)"
        )

    def _run(self, trial: optuna.trial.Trial) -> float:
        run = _TrialRun(trial, suggest(trial, self.space))
        if self.epochs is not None:
            run.params["epochs"] = self.epochs
        # Within a time limit, while no trial has completed, the first one is sized to fit.
        run.sizing = self.deadline is not None and self.best_value is None
        trial.set_user_attr("epochs_budget", self.n_folds * int(run.params["epochs"]))
        k = 0
        while k < self.n_folds:
            raise_if_interrupted()
            run.cut = run.cut or self.past_deadline()
            if run.cut:
                break
            self._fit_fold(run, k)
            trial.set_user_attr("report_seconds", run.timeline)
            if run.resize_to is None:
                k += 1
            else:  # fold 0 again, with the epochs that fit (its timed epochs measured them)
                self._resize(run)
                k = 0
        if run.cut:
            self._cut(run)
        value = float(np.mean(run.scores))
        run.record(
            fold_scores=run.scores, best_epochs=run.best_epochs, batch_size=run.params["batch_size"]
        )
        if not math.isfinite(value):
            return value
        models = self._models(run, value)
        if self.on_trial is not None:
            self.on_trial(models)
        if self.best_value is None or self.metric.better(value, self.best_value):
            self.best_value = value
            self.best = models
            if self.on_new_best is not None:
                self.on_new_best(models)
        return value

    def _resize(self, run: _TrialRun) -> None:
        """Give the trial the epochs that fit the time left, its measuring epoch discarded."""
        epochs, full = run.resize_to, int(run.params["epochs"])
        assert epochs is not None
        run.params["epochs"], run.resize_to = epochs, None
        for done in (run.scores, run.best_epochs, run.states, run.oof, run.folds):
            done.clear()
        sized = {"epochs": epochs, "of": full, "seconds_per_epoch": round(run.seconds_per_epoch, 3)}
        run.trial.set_user_attr(SIZED_ATTR, sized)
        run.trial.set_user_attr("epochs_budget", self.n_folds * epochs)

    def _fit_fold(self, run: _TrialRun, k: int) -> None:
        started = clock()
        fold = self.folds[k]
        params = run.params
        params["batch_size"] = params["batch_size"] or auto_batch_size(fold.tensors.n_train)
        seed = (self.seed * 1_000_003 + run.trial.number * 101 + k) % (2**63)
        model, result = train_network(
            fold,
            params,
            d_out=self.d_out,
            metric=self.metric,
            patience=self.patience,
            seed=seed,
            on_epoch=_EpochReport(self, run, k, prepared_in=clock() - started),
        )
        run.sizing = False  # a fold that ended while its epochs were timed: not sized
        run.scores.append(result.best_score)
        run.best_epochs.append(result.best_epoch)
        run.states.append({n: t.detach().cpu() for n, t in result.state_dict.items()})
        run.oof.append(predict_outputs(model, fold.tensors.x_valid))  # the best epoch's weights
        run.folds.append(PreparedFold(k, fold.preprocessor, fold.tensors.without_inputs()))

    def past_deadline(self) -> bool:
        return self.deadline is not None and clock() >= self.deadline

    def stop_at_deadline(self, study: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
        """A study callback: no trial starts after the deadline."""
        if self.past_deadline():
            study.stop()

    def _cut(self, run: _TrialRun) -> None:
        """End a trial the deadline cut: record it, offer its finished folds as the best
        partial result while no trial has completed, queue it to run first on resume."""
        trial, done = run.trial, len(run.scores)
        run.record("timeout", folds_done=done, fold_scores=run.scores, best_epochs=run.best_epochs)
        if done and self.best_value is None and self.on_partial is not None:
            self.on_partial(self._models(run, float(np.mean(run.scores))))
        retry_of = trial.user_attrs.get(RETRY_ATTR, trial.number)
        trial.study.enqueue_trial(dict(trial.params), user_attrs={RETRY_ATTR: retry_of})
        raise TrialCut(
            f"cut by the study's deadline after {done} of {self.n_folds} fold"
            f"{'s' if self.n_folds != 1 else ''}; queued to run first when the study resumes"
        )

    def _models(self, run: _TrialRun, value: float) -> TrialModels:
        """A completed trial's fold models, out-of-fold outputs and validation rows."""
        return TrialModels(
            run.trial.number,
            value,
            dict(run.params),
            run.scores,
            run.best_epochs,
            run.states,
            run.folds,
            self.d_out,
            run.oof,
            [np.flatnonzero(self.dataset.folds == f.index) for f in run.folds],
        )


class _EpochReport:
    """After each epoch of fold ``k``: report the running CV estimate, prune, mind the time."""

    def __init__(
        self, objective: Objective, run: _TrialRun, k: int, *, prepared_in: float = 0.0
    ) -> None:
        self.objective = objective
        self.run = run
        self.k = k
        self.finished = list(run.scores)
        self.best = math.nan  # the fold's best score so far
        self.prepared_in = prepared_in  # seconds to prepare the fold's rows
        self.first_epoch_end = 0.0  # when the first epoch ended (a sized trial's timing)

    def __call__(self, epoch: int, score: float) -> bool:
        raise_if_interrupted()
        run, objective = self.run, self.objective
        run.epochs_run += 1
        if run.sizing and epoch > 1 and clock() - self.first_epoch_end >= SIZING_WINDOW:
            run.sizing = False
            if self._size(epoch - 1):
                return True  # the fold ends before it reports: it runs again, sized
        if math.isnan(self.best) or (
            math.isfinite(score) and objective.metric.better(score, self.best)
        ):
            self.best = score
        if run.sizing and epoch == 1:
            # The first epoch in a process pays one-time costs (the optimizer's first
            # construction imports parts of torch, a second or more): the epochs after it are
            # timed.
            self.first_epoch_end = clock()
            run.sizing = int(run.params["epochs"]) > 1
        elif run.sizing and epoch >= int(run.params["epochs"]):
            run.sizing = False  # the fold trained all its epochs while they were timed
        step = cv_step(self.k, epoch, objective.epoch_slot)
        # A sized trial's restarted first fold reports from the step its timed epochs reached.
        if step > run.reported and math.isfinite(self.best):
            run.reported = step
            run.trial.report(running_estimate(self.finished, self.best), step)
            run.timeline.append([step, round(time.monotonic() - run.started, 3)])
            if run.trial.should_prune():
                run.record(pruned_at_fold=self.k)
                raise optuna.TrialPruned(f"pruned at fold {self.k}, epoch {epoch}")
        # At the deadline the fold ends as early stopping ends it, its best epoch kept.
        run.cut = objective.past_deadline()
        return run.cut

    def _size(self, timed: int) -> bool:
        """After the first trial's ``timed`` epochs after its first (``SIZING_WINDOW``): whether
        its folds need fewer epochs to fit the time left (then ``run.resize_to``). When fewer
        than :func:`min_sized_epochs` per fold fit, the trial goes on unchanged and the deadline
        delivers the folds it finishes."""
        objective, run = self.objective, self.run
        assert objective.deadline is not None
        now = clock()
        per_epoch = (now - self.first_epoch_end) / timed
        # Fold 0's rows stay prepared: its preparation is not spent again.
        left = objective.deadline - now + self.prepared_in
        fits = epochs_that_fit(left, per_epoch, self.prepared_in, objective.n_folds)
        if min_sized_epochs(int(run.params["epochs"])) <= fits < int(run.params["epochs"]):
            run.resize_to, run.seconds_per_epoch = fits, per_epoch
        return run.resize_to is not None
