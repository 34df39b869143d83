"""The Optuna objective: folds prepared once (while they fit in memory), then trial ->
parameters -> K fits -> mean score.

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
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import torch
from optuna.terminator import report_cross_validation_scores
from torch import nn

from dnntune._signals import raise_if_interrupted
from dnntune.config import NUMERIC_BINS, BinEncoding, Task
from dnntune.data import Dataset, Preprocessor
from dnntune.engine import FoldTensors, Metric, fit, predict_outputs
from dnntune.exceptions import TrialOutOfMemory
from dnntune.model import make_mlp
from dnntune.space import FixedParam, IntParam, SearchSpace, suggest

__all__ = [
    "BestModel",
    "Objective",
    "PreparedFold",
    "TrialOutOfMemory",
    "auto_batch_size",
    "cv_step",
    "epoch_slot",
    "is_out_of_memory",
    "prepare_fold",
    "running_estimate",
]


def cv_step(fold: int, epoch: int, slot: int) -> int:
    """The pruning step of ``epoch`` (1-based) of fold ``fold`` (0-based)."""
    return fold * slot + epoch


def running_estimate(finished_scores: list[float], best_in_fold: float) -> float:
    """Cross-validation estimate so far: mean of finished folds and the current fold's best."""
    return (sum(finished_scores) + best_in_fold) / (len(finished_scores) + 1)


def auto_batch_size(n_train: int) -> int:
    """A power of two near ``n_train / 50``, between 32 and 512."""
    return int(min(512, max(32, 2 ** round(math.log2(max(n_train, 1) / 50)))))


def epoch_slot(space: SearchSpace) -> int:
    """The largest epoch count a trial may use: the width of one fold in pruning steps."""
    p = space.params.get("epochs")
    if isinstance(p, IntParam):
        return p.high
    if isinstance(p, FixedParam):
        return int(p.value)
    return int(space.fixed_defaults["epochs"])


@dataclass
class PreparedFold:
    index: int
    preprocessor: Preprocessor
    tensors: FoldTensors


def prepare_fold(
    dataset: Dataset,
    fold: int,
    device: torch.device,
    *,
    numeric_bins: int = NUMERIC_BINS,
    bin_encoding: BinEncoding | str = BinEncoding.LINEAR,
    copy_encoding: bool = False,
) -> PreparedFold:
    """Fit the preprocessing on the fold's training rows only and move both parts to the device.

    ``fold=-1`` trains on every row (no validation part), as a refit does. ``numeric_bins=0``
    gives plain inputs (standardized numbers, one-hot categories), as the benchmarks' original
    pipeline had. ``copy_encoding`` adds the copy inputs (see :class:`Preprocessor`), fitted on
    the training rows' target.
    """
    train = dataset.folds != fold
    frame = dataset.features
    y = dataset.target.values
    task = dataset.task
    pre = Preprocessor(
        dataset.plan,
        numeric_bins=numeric_bins,
        bin_encoding=bin_encoding,
        copy_encoding=copy_encoding,
    )
    x_train_np = pre.fit_transform(frame.loc[train], y[train], task, dataset.target.n_outputs)
    x_train = torch.from_numpy(x_train_np).to(device)
    x_valid = torch.from_numpy(pre.transform(frame.loc[~train])).to(device)
    shift, scale = 0.0, 1.0
    if task is Task.MULTICLASS or task is Task.MULTILABEL:
        y_train = torch.from_numpy(y[train]).to(device)
    else:
        yt = y[train].astype(np.float32)
        if task is Task.REGRESSION:
            shift = float(yt.mean())
            scale = float(yt.std()) or 1.0
            yt = (yt - shift) / scale
        y_train = torch.from_numpy(yt.reshape(-1, 1)).to(device)
    tensors = FoldTensors(x_train, y_train, x_valid, y[~train], task, shift, scale)
    return PreparedFold(fold, pre, tensors)


@dataclass
class BestModel:
    """The fold models of the best trial so far (CPU state dicts) and their preprocessing."""

    trial_number: int
    value: float
    params: dict[str, Any]
    fold_scores: list[float]
    best_epochs: list[int]
    states: list[dict[str, torch.Tensor]]
    folds: list[PreparedFold] = field(repr=False, default_factory=list)
    d_in: int = 0
    d_out: int = 1
    oof_outputs: list[np.ndarray] = field(repr=False, default_factory=list)
    valid_rows: list[np.ndarray] = field(repr=False, default_factory=list)

    def build(self, i: int = 0) -> nn.Module:
        """The trained model of fold ``i`` as an ``nn.Module`` on the CPU, in eval mode."""
        model = make_mlp(
            d_in=self.folds[i].preprocessor.n_features,
            d_out=self.d_out,
            **model_kwargs(self.params),
        )
        model.load_state_dict(self.states[i])
        return model.eval()


def model_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    keys = ("num_layers", "hidden_size", "dropout", "activation", "batch_norm")
    kwargs = {k: params[k] for k in keys}
    kwargs["ensemble_size"] = int(params.get("ensemble_size", 1))  # absent: saved before it
    return kwargs


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


# Share of the memory free (on the training device) that prepared folds may keep between
# trials; see Objective.fold.
FOLD_CACHE_SHARE = 0.5


def free_memory(device: torch.device) -> int | None:
    """Bytes free for new tensors on ``device``: CUDA's free memory, or Linux's MemAvailable
    (None where neither is known)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


class Objective:
    """Callable objective for ``study.optimize``. Keeps the best trial's fold models."""

    def __init__(
        self,
        dataset: Dataset,
        space: SearchSpace,
        metric: Metric,
        *,
        device: torch.device,
        patience: int = 5,
        max_folds: int | None = None,
        seed: int = 42,
        deadline: float | None = None,
        best_value: float | None = None,
        on_new_best: Callable[[BestModel], None] | None = None,
        report_cv_scores: bool = False,
        numeric_bins: int = NUMERIC_BINS,
        bin_encoding: BinEncoding | str = BinEncoding.LINEAR,
        copy_encoding: bool = False,
        fold_cache_bytes: int | None = None,
        fold_cache_share: float = FOLD_CACHE_SHARE,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        self.dataset = dataset
        self.space = space
        self.metric = metric
        self.device = device
        self.patience = patience
        self.n_folds = min(max_folds or dataset.n_folds, dataset.n_folds)
        self.seed = seed
        self.deadline = deadline
        self.best_value = best_value
        self.best: BestModel | None = None
        self.on_new_best = on_new_best
        self.report_cv_scores = report_cv_scores
        self.numeric_bins = numeric_bins
        self.bin_encoding = bin_encoding
        self.copy_encoding = copy_encoding
        self._noted_copies = False
        self.epoch_slot = epoch_slot(space)
        self.fold_cache_bytes = fold_cache_bytes
        self.fold_cache_share = fold_cache_share
        self.on_note = on_note
        self._noted_memory = False
        self._folds: dict[int, PreparedFold] = {}

    @property
    def max_steps(self) -> int:
        return self.n_folds * self.epoch_slot

    def fold(self, k: int) -> PreparedFold:
        """Fold ``k``'s fitted preprocessing and its tensors on the device.

        Folds stay prepared for the next trials while together they take at most
        ``fold_cache_bytes`` (default: ``fold_cache_share`` of the memory free when the first
        is prepared); a fold past that is prepared again by each trial that reaches it, so a
        table too large to hold K times over still trains. Trials run the folds in order and
        pruning ends most of them early, so the first folds are the ones kept.
        """
        cached = self._folds.get(k)
        if cached is not None:
            return cached
        if self.fold_cache_bytes is None:
            free = free_memory(self.device)
            # Free memory unknown: no limit. Nothing free: no fold kept.
            budget = sys.maxsize if free is None else int(self.fold_cache_share * free)
            self.fold_cache_bytes = budget
        prepared = prepare_fold(
            self.dataset,
            k,
            self.device,
            numeric_bins=self.numeric_bins,
            bin_encoding=self.bin_encoding,
            copy_encoding=self.copy_encoding,
        )
        copies = prepared.preprocessor.copies_
        if copies is not None and not self._noted_copies and self.on_note is not None:
            self._noted_copies = True
            self.on_note(
                f"{copies.share:.0%} of fold {k}'s training rows have an identical training row; "
                "the copy encoding gives each row the cross-fitted mean target of its copies "
                "and their count as inputs (--no-copy-encoding turns it off)"
            )
        size = prepared.tensors.nbytes
        if sum(f.tensors.nbytes for f in self._folds.values()) + size <= self.fold_cache_bytes:
            self._folds[k] = prepared
        elif not self._noted_memory and self.on_note is not None:
            self._noted_memory = True
            self.on_note(
                f"fold {k}'s tensors ({size / 2**30:.2f} GiB) do not fit beside the "
                f"{len(self._folds)} fold(s) kept within the {self.fold_cache_bytes / 2**30:.2f} "
                "GiB of free memory allowed for them; each trial that reaches a fold past those "
                "prepares it again, which is slower"
            )
        return prepared

    @property
    def cached_folds(self) -> list[int]:
        """The folds kept prepared between trials."""
        return sorted(self._folds)

    def _check_deadline(
        self, trial: optuna.trial.Trial, timeline: list[list[float]], epochs_run: int
    ) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            trial.set_user_attr("stop_reason", "timeout")
            trial.set_user_attr("report_seconds", timeline)
            trial.set_user_attr("epochs_run", epochs_run)
            raise optuna.TrialPruned("the study's --timeout was reached during this trial")

    def __call__(self, trial: optuna.trial.Trial) -> float:
        """Train the trial's configuration on the folds; a configuration that does not fit in
        memory fails alone (:class:`TrialOutOfMemory`), with its memory released."""
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
        params = suggest(trial, self.space)
        d_out = self.dataset.target.n_outputs if self.dataset.task is not Task.BINARY else 1
        scores: list[float] = []
        epochs_used: list[int] = []
        states: list[dict[str, torch.Tensor]] = []
        # What a saved model needs of each fold (not its inputs, which another fold may need
        # the memory of) and its out-of-fold outputs.
        used: list[PreparedFold] = []
        oof: list[np.ndarray] = []
        epochs_run = [0]
        # [step, seconds since the trial started] of each reported value: when each score was
        # known (the report's curves against time, bench_search's time to a target).
        timeline: list[list[float]] = []
        started = time.monotonic()
        trial.set_user_attr("epochs_budget", self.n_folds * int(params["epochs"]))
        for k in range(self.n_folds):
            raise_if_interrupted()
            self._check_deadline(trial, timeline, epochs_run[0])
            fold = self.fold(k)
            batch_size = params["batch_size"] or auto_batch_size(fold.tensors.n_train)
            params["batch_size"] = batch_size
            seed = (self.seed * 1_000_003 + trial.number * 101 + k) % (2**63)
            torch.manual_seed(seed)
            generator = torch.Generator(device=self.device).manual_seed(seed)
            model = make_mlp(
                d_in=fold.preprocessor.n_features, d_out=d_out, **model_kwargs(params)
            ).to(self.device)
            finished = list(scores)
            best_in_fold = [math.nan]

            def on_epoch(
                epoch: int,
                score: float,
                k: int = k,
                finished: list[float] = finished,
                best_in_fold: list[float] = best_in_fold,
            ) -> None:
                raise_if_interrupted()
                epochs_run[0] += 1
                b = best_in_fold[0]
                if math.isnan(b) or (math.isfinite(score) and self.metric.better(score, b)):
                    best_in_fold[0] = b = score
                if math.isfinite(b):
                    step = cv_step(k, epoch, self.epoch_slot)
                    trial.report(running_estimate(finished, b), step)
                    timeline.append([step, round(time.monotonic() - started, 3)])
                    if trial.should_prune():
                        trial.set_user_attr("pruned_at_fold", k)
                        trial.set_user_attr("epochs_run", epochs_run[0])
                        trial.set_user_attr("report_seconds", timeline)
                        raise optuna.TrialPruned(f"pruned at fold {k}, epoch {epoch}")
                self._check_deadline(trial, timeline, epochs_run[0])

            result = fit(
                model,
                fold.tensors,
                metric=self.metric,
                optimizer=params["optimizer"],
                learning_rate=params["learning_rate"],
                weight_decay=params["weight_decay"],
                batch_size=batch_size,
                epochs=params["epochs"],
                lr_schedule=params["lr_schedule"],
                patience=self.patience,
                generator=generator,
                on_epoch=on_epoch,
            )
            scores.append(result.best_score)
            trial.set_user_attr("report_seconds", timeline)
            epochs_used.append(result.best_epoch)
            states.append({n: t.detach().cpu() for n, t in result.state_dict.items()})
            oof.append(predict_outputs(model, fold.tensors.x_valid))  # the best epoch's weights
            used.append(PreparedFold(k, fold.preprocessor, fold.tensors.without_inputs()))
            del model, fold, result
        value = float(np.mean(scores))
        trial.set_user_attr("epochs_run", epochs_run[0])
        trial.set_user_attr("fold_scores", scores)
        if self.report_cv_scores and len(scores) >= 2 and all(math.isfinite(s) for s in scores):
            # For the study-level stop: the spread of the folds is the noise of the CV estimate.
            with warnings.catch_warnings():  # optuna.terminator is deprecated since Optuna 4.9
                warnings.simplefilter("ignore", FutureWarning)
                report_cross_validation_scores(trial, scores)
        trial.set_user_attr("best_epochs", epochs_used)
        trial.set_user_attr("batch_size", params["batch_size"])
        if math.isfinite(value) and (
            self.best_value is None or self.metric.better(value, self.best_value)
        ):
            self.best_value = value
            self.best = BestModel(
                trial.number,
                value,
                dict(params),
                scores,
                epochs_used,
                states,
                used,
                used[0].preprocessor.n_features,
                d_out,
                oof,
                [np.flatnonzero(self.dataset.folds == f.index) for f in used],
            )
            if self.on_new_best is not None:
                self.on_new_best(self.best)
        return value
