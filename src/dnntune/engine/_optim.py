"""Optimizers by name, and the device choice."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from dnntune._names import setting_example, setting_name
from dnntune.config import OptimizerName
from dnntune.exceptions import ConfigError

__all__ = ["OPTIMIZERS", "flatten_parameters", "make_optimizer", "resolve_device"]

Params = Iterable[torch.nn.Parameter]


def _adam(p: Params, lr: float, wd: float, fused: bool) -> torch.optim.Optimizer:
    return torch.optim.Adam(p, lr=lr, weight_decay=wd, fused=fused or None)


def _adamw(p: Params, lr: float, wd: float, fused: bool) -> torch.optim.Optimizer:
    return torch.optim.AdamW(p, lr=lr, weight_decay=wd, fused=fused or None)


def _sgd(p: Params, lr: float, wd: float, fused: bool) -> torch.optim.Optimizer:
    # Plain SGD without momentum barely moves at the learning rates of the classic space.
    return torch.optim.SGD(
        p, lr=lr, weight_decay=wd, momentum=0.9, nesterov=True, fused=fused or None
    )


def _rmsprop(p: Params, lr: float, wd: float, fused: bool) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(p, lr=lr, weight_decay=wd)  # no fused kernel


# fused=True runs the whole update in one kernel (CPU and CUDA, torch >= 2.4) instead of a loop
# over the parameter tensors (docs/benchmarks.md measures what it is worth).
OPTIMIZERS: dict[OptimizerName, Callable[[Params, float, float, bool], torch.optim.Optimizer]] = {
    OptimizerName.ADAM: _adam,
    OptimizerName.ADAMW: _adamw,
    OptimizerName.SGD: _sgd,
    OptimizerName.RMSPROP: _rmsprop,
}


def make_optimizer(
    name: str,
    params: Params,
    *,
    learning_rate: float,
    weight_decay: float = 0.0,
    fused: bool = True,
) -> torch.optim.Optimizer:
    return OPTIMIZERS[OptimizerName(name)](params, learning_rate, weight_decay, fused)


def flatten_parameters(model: torch.nn.Module) -> torch.nn.Parameter:
    """Make every parameter (and its gradient) a view into one flat buffer; return it.

    The optimizer then updates one tensor per step instead of one per layer, which removes most
    of its per-step Python overhead on small models; the update is elementwise, so the result is
    the same. Gradients accumulate in place into the flat buffer: clear it with
    ``flat.grad.zero_()``, never with ``zero_grad(set_to_none=True)``, which would detach the
    views.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    first = params[0]
    total = sum(p.numel() for p in params)
    flat = torch.empty(total, dtype=first.dtype, device=first.device)
    grad = torch.zeros_like(flat)
    offset = 0
    for p in params:
        n = p.numel()
        flat[offset : offset + n].copy_(p.detach().reshape(-1))
        p.data = flat[offset : offset + n].view_as(p)
        p.grad = grad[offset : offset + n].view_as(p)
        offset += n
    flat_param = torch.nn.Parameter(flat)
    flat_param.grad = grad
    return flat_param


def resolve_device(device: str = "auto") -> torch.device:
    """CUDA when available for ``auto``; otherwise what was asked, refused in one line when
    this machine's PyTorch cannot use it (checked before anything is written)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    chosen = torch.device(device)
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "a CUDA build"
            raise ConfigError(
                f"{setting_name('device')} {device!r}, but this PyTorch ({torch.__version__}, "
                f"{build}) sees no CUDA device; use {setting_example('device', 'cpu')} or "
                f"{setting_example('device', 'auto')}, or install PyTorch's CUDA build on a "
                "machine with a GPU"
            )
        count = torch.cuda.device_count()
        if chosen.index is not None and chosen.index >= count:
            raise ConfigError(
                f"{setting_name('device')} {device!r}, but this machine has {count} CUDA "
                f"device{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})"
            )
    return chosen
