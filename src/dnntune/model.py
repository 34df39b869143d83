"""The MLP builder. Keyword names equal the search-space parameter names."""

from __future__ import annotations

import torch
from torch import nn

from dnntune.config import ActivationName

__all__ = ["ACTIVATIONS", "Dropout", "make_mlp"]

ACTIVATIONS: dict[ActivationName, type[nn.Module]] = {
    ActivationName.RELU: nn.ReLU,
    ActivationName.GELU: nn.GELU,
    ActivationName.SILU: nn.SiLU,
    ActivationName.TANH: nn.Tanh,
    ActivationName.LEAKY_RELU: nn.LeakyReLU,
    ActivationName.ELU: nn.ELU,
}


class _ScaledMask(torch.autograd.Function):
    """``x * mask * scale`` in one pass each way (``addcmul`` onto a broadcast zero)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return torch.addcmul(x.new_zeros(()), x, mask, value=scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (mask,) = ctx.saved_tensors
        return torch.addcmul(grad.new_zeros(()), grad, mask, value=ctx.scale), None, None


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper mask on the CPU.

    PyTorch draws one Bernoulli sample per element on the CPU, which costs more than the layer's
    matmul. Here each 64-bit random draw gives four uniform 16-bit integers, and an element is
    kept when its integer falls below ``round((1 - p) * 65536)``: the keep probability is within
    1/65536 of ``1 - p``. On CUDA (and in eval mode) this is exactly ``nn.Dropout``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu":
            return super().forward(x)
        n = x.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device)
        words.random_(-(2**63), 2**63 - 1)  # full range: all four 16-bit lanes uniform
        lanes = words.view(torch.int16)[:n].view(x.shape)
        keep = torch.empty_like(x)  # 1.0 where kept, written by the comparison itself
        torch.lt(lanes, round((1.0 - self.p) * 65536) - 32768, out=keep)
        return _ScaledMask.apply(x, keep, 1.0 / (1.0 - self.p))


def make_mlp(
    *,
    d_in: int,
    d_out: int,
    num_layers: int,
    hidden_size: int,
    dropout: float = 0.0,
    activation: str = "relu",
    batch_norm: bool = True,
) -> nn.Sequential:
    """``num_layers`` x [Linear, BatchNorm1d?, activation, Dropout] followed by a Linear head.

    The head returns logits (classification) or standardized values (regression); losses are
    computed on them directly, never after a Sigmoid.
    """
    act = ACTIVATIONS[ActivationName(activation)]
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(num_layers):
        layers.append(nn.Linear(d, hidden_size))
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden_size))
        layers.append(act())
        if dropout > 0:
            layers.append(Dropout(dropout))
        d = hidden_size
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)
