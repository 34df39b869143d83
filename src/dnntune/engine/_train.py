"""The training loop: tensors on the device, shuffled index batches, one sync per epoch."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from dnntune.config import Task
from dnntune.data import FoldTensors
from dnntune.engine._metrics import Metric, predictions_from_outputs
from dnntune.engine._optim import flatten_parameters, make_optimizer

__all__ = ["FitResult", "evaluate", "fit", "predict_outputs"]


@dataclass
class FitResult:
    best_score: float
    best_epoch: int  # 1-based
    epochs_run: int
    state_dict: dict[str, torch.Tensor]
    history: list[float] = field(default_factory=list)
    final_learning_rate: float = math.nan  # the optimizer's rate after the last step


def _loss_fn(task: Task) -> nn.Module:
    if task in (Task.BINARY, Task.MULTILABEL):
        return nn.BCEWithLogitsLoss()
    if task is Task.MULTICLASS:
        return nn.CrossEntropyLoss()
    return nn.MSELoss()


@torch.inference_mode()
def predict_outputs(model: nn.Module, x: torch.Tensor, *, chunk: int = 4096) -> np.ndarray:
    """Raw model outputs (logits or standardized values) as a float64 NumPy array.

    Chunks of a few thousand rows keep the activations in cache (faster than one big pass).
    """
    model.eval()
    parts = [model(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)]
    return torch.cat(parts).double().cpu().numpy()


def evaluate(model: nn.Module, data: FoldTensors, metric: Metric) -> float:
    outputs = predict_outputs(model, data.x_valid)
    if not np.isfinite(outputs).all():
        return math.nan
    predictions = predictions_from_outputs(
        outputs, data.task, y_shift=data.y_shift, y_scale=data.y_scale
    )
    return metric(data.y_valid_eval, predictions, data.task)


def _optimizer(
    model: nn.Module, name: str, learning_rate: float, weight_decay: float, flat: bool
) -> tuple[torch.optim.Optimizer, torch.Tensor | None]:
    """The optimizer, and the flat gradient buffer to clear between steps (None: per tensor).

    One flat buffer for all parameters gives one fused optimizer update per step, not one per
    layer; ``flat=False`` keeps PyTorch's default per-tensor optimizer (``foreach``)."""
    if not flat:
        opt = make_optimizer(
            name,
            model.parameters(),
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            fused=False,
        )
        return opt, None
    buffer = flatten_parameters(model)
    opt = make_optimizer(name, [buffer], learning_rate=learning_rate, weight_decay=weight_decay)
    return opt, buffer.grad


def _scheduler(
    opt: torch.optim.Optimizer, lr_schedule: str, steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    if lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    if lr_schedule != "constant":
        raise ValueError(f"unknown lr_schedule {lr_schedule!r}; use 'cosine' or 'constant'")
    return None


def _loss(loss_fn: nn.Module, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if outputs.dim() == 3:  # an ensemble's (rows, members, outputs)
        # Each member learns from the batch as a model of its own: the sum of the members'
        # losses gives each the gradient it would get alone.
        members = outputs.shape[1]
        return loss_fn(outputs.flatten(0, 1), target.repeat_interleave(members, dim=0)) * members
    return loss_fn(outputs, target)


def fit(
    model: nn.Module,
    data: FoldTensors,
    *,
    metric: Metric,
    optimizer: str,
    learning_rate: float,
    weight_decay: float,
    batch_size: int,
    epochs: int,
    patience: int,
    generator: torch.Generator,
    lr_schedule: str = "constant",
    schedule_epochs: int | None = None,
    on_epoch: Callable[[int, float], bool | None] | None = None,
    flat_parameters: bool = True,
) -> FitResult:
    """Train ``model`` on one fold with early stopping; restore and return the best epoch.

    ``on_epoch(epoch, score)`` runs after each epoch's evaluation; it may raise to abandon the
    run (the objective prunes that way) or return True to end it as early stopping does, with
    the best epoch restored (the study's deadline). ``flat_parameters=False``
    keeps PyTorch's default per-tensor optimizer, for comparisons only. ``lr_schedule="cosine"``
    decays the learning rate to 0 along a cosine after every batch, over ``schedule_epochs``
    epochs (default ``epochs``; a refit that stops at the folds' best epoch passes their full
    budget so it follows the same rates).
    """
    device, n = data.x_train.device, data.n_train
    loss_fn = _loss_fn(data.task)
    opt, grad = _optimizer(model, optimizer, learning_rate, weight_decay, flat_parameters)
    batch_size = min(batch_size, n)
    # A last batch of one row breaks BatchNorm; drop a remainder that small.
    n_batches = n // batch_size if n % batch_size == 1 else math.ceil(n / batch_size)
    horizon = max(schedule_epochs or epochs, epochs) * n_batches
    scheduler = _scheduler(opt, lr_schedule, horizon)
    best_score, best_epoch, best_state = math.nan, 0, None
    history: list[float] = []
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n, device=device, generator=generator)
        total = torch.zeros((), device=device)
        for b in range(n_batches):
            idx = order[b * batch_size : (b + 1) * batch_size]
            loss = _loss(loss_fn, model(data.x_train[idx]), data.y_train[idx])
            if grad is not None:
                grad.zero_()
            else:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if scheduler is not None:
                scheduler.step()
            total += loss.detach()
        # One CPU-GPU sync per epoch: a diverged run (NaN loss) stops here.
        if not math.isfinite(float(total)):
            history.append(math.nan)
            break
        if data.x_valid.shape[0] == 0:  # refit on all rows: no validation, no early stopping
            history.append(math.nan)
            continue
        score = evaluate(model, data, metric)
        history.append(score)
        if best_state is None or (math.isfinite(score) and metric.better(score, best_score)):
            best_score, best_epoch = score, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if on_epoch is not None and on_epoch(epoch, score):
            break  # asked to stop (the study's deadline): the best epoch is restored below
        if epoch - best_epoch >= patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = len(history)
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    final_lr = float(opt.param_groups[0]["lr"])
    return FitResult(best_score, best_epoch, len(history), best_state, history, final_lr)
