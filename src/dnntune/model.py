"""The network builders. Keyword names equal the search-space parameter names.

:func:`make_model` builds any architecture of the search space: an MLP (or a packed deep
ensemble of MLPs), TabM or TabM-mini (the ``tabm`` package's BatchEnsemble backbones), each
optionally behind learned embeddings of the numeric columns (the ``rtdl_num_embeddings``
package's periodic or piecewise-linear embeddings). :func:`make_mlp` is the plain MLP.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import rtdl_num_embeddings
import tabm
import torch
from torch import nn

from dnntune.config import ActivationName, ArchitectureName, EmbeddingName
from dnntune.data import InputLayout

__all__ = [
    "ACTIVATIONS",
    "ARCHITECTURES",
    "EMBEDDINGS",
    "Dropout",
    "EmbeddedInputs",
    "PackedBatchNorm1d",
    "PackedLinear",
    "PackedMLP",
    "TabMNet",
    "make_mlp",
    "make_model",
]

ARCHITECTURES = tuple(a.value for a in ArchitectureName)
EMBEDDINGS = tuple(e.value for e in EmbeddingName)

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


class PackedLinear(nn.Module):
    """``k`` independent ``nn.Linear(d_in, d_out)`` layers applied to ``(rows, k, d_in)``."""

    def __init__(self, k: int, d_in: int, d_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(k, d_in, d_out))
        self.bias = nn.Parameter(torch.empty(k, d_out))
        bound = 1.0 / math.sqrt(d_in)  # nn.Linear's initialization, per member
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (k, rows, d_in) @ (k, d_in, d_out): one batched matmul for all members.
        out = torch.baddbmm(self.bias.unsqueeze(1), x.transpose(0, 1), self.weight)
        return out.transpose(0, 1)

    def extra_repr(self) -> str:
        k, d_in, d_out = self.weight.shape
        return f"members={k}, in_features={d_in}, out_features={d_out}"


class PackedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d over ``(rows, k, features)``: statistics per member and feature."""

    def __init__(self, k: int, features: int) -> None:
        super().__init__(k * features)
        self.members = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, k, features = x.shape
        return super().forward(x.reshape(rows, k * features)).view(rows, k, features)

    def extra_repr(self) -> str:
        return f"members={self.members}, num_features={self.num_features // self.members}"


def _layers(
    *,
    d_in: int,
    d_out: int,
    num_layers: int,
    hidden_size: int,
    dropout: float,
    activation: str,
    batch_norm: bool,
    linear: Callable[[int, int], nn.Module],
    norm: Callable[[int], nn.Module],
) -> list[nn.Module]:
    """``num_layers`` x [linear, norm?, activation, Dropout?] and a linear head: the layers of
    one network (``nn.Linear``) or of a packed ensemble (:class:`PackedLinear`)."""
    act = ACTIVATIONS[ActivationName(activation)]
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(num_layers):
        layers.append(linear(d, hidden_size))
        if batch_norm:
            layers.append(norm(hidden_size))
        layers.append(act())
        if dropout > 0:
            layers.append(Dropout(dropout))
        d = hidden_size
    layers.append(linear(d, d_out))
    return layers


class PackedMLP(nn.Module):
    """``ensemble_size`` independent MLPs of the same shape, trained together (a deep ensemble).

    Each member has its own weights, initialization, BatchNorm statistics and dropout masks;
    one batched matmul per layer runs them all. In training the output is ``(rows, members,
    d_out)`` and the loss treats each member as a model of its own; in eval mode it is the
    members' mean logit (or standardized value).
    """

    def __init__(self, *, ensemble_size: int, **shape: Any) -> None:
        super().__init__()
        k = ensemble_size
        self.ensemble_size = k
        self.layers = nn.Sequential(
            *_layers(
                **shape,
                linear=lambda d_in, d_out: PackedLinear(k, d_in, d_out),
                norm=lambda features: PackedBatchNorm1d(k, features),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x.unsqueeze(1).expand(-1, self.ensemble_size, -1))
        return out if self.training else out.mean(dim=1)


def make_mlp(
    *,
    d_in: int,
    d_out: int,
    num_layers: int,
    hidden_size: int,
    dropout: float = 0.0,
    activation: str = "relu",
    batch_norm: bool = True,
    ensemble_size: int = 1,
) -> nn.Module:
    """``num_layers`` x [Linear, BatchNorm1d?, activation, Dropout] followed by a Linear head.

    The head returns logits (classification) or standardized values (regression); losses are
    computed on them directly, never after a Sigmoid. ``ensemble_size > 1`` gives a
    :class:`PackedMLP` of that many such networks.
    """
    shape: dict[str, Any] = {
        "d_in": d_in,
        "d_out": d_out,
        "num_layers": num_layers,
        "hidden_size": hidden_size,
        "dropout": dropout,
        "activation": activation,
        "batch_norm": batch_norm,
    }
    if ensemble_size > 1:
        return PackedMLP(ensemble_size=ensemble_size, **shape)
    return nn.Sequential(*_layers(**shape, linear=nn.Linear, norm=nn.BatchNorm1d))


class EmbeddedInputs(nn.Module):
    """The numeric columns through learned embeddings (one vector of ``d_embedding`` per
    column), flattened and followed by the other columns as they are."""

    numeric: torch.Tensor
    others: torch.Tensor

    def __init__(
        self,
        layout: InputLayout,
        kind: str,
        *,
        d_embedding: int,
        n_frequencies: int,
        frequency_scale: float,
    ) -> None:
        super().__init__()
        n = len(layout.numeric)
        self.register_buffer("numeric", torch.tensor(layout.numeric), persistent=False)
        self.register_buffer("others", torch.tensor(layout.others(), dtype=torch.long), False)
        self.embed: nn.Module
        if kind == "periodic":
            self.embed = rtdl_num_embeddings.PeriodicEmbeddings(
                n,
                d_embedding,
                n_frequencies=n_frequencies,
                frequency_init_scale=frequency_scale,
                lite=False,
            )
        elif kind == "piecewise_linear":
            bins = [torch.tensor(b, dtype=torch.float32) for b in layout.bins]
            self.embed = rtdl_num_embeddings.PiecewiseLinearEmbeddings(
                bins, d_embedding, activation=False, version="B"
            )
        else:
            raise ValueError(f"unknown numeric embeddings {kind!r}; use one of {EMBEDDINGS}")
        # Each column's share of the flat output, for TabM's per-feature initialization.
        self.chunks = [d_embedding] * n + [1] * len(layout.others())

    @property
    def d_out(self) -> int:
        return sum(self.chunks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embedded = self.embed(x.index_select(1, self.numeric)).flatten(1)
        return torch.cat([embedded, x.index_select(1, self.others)], dim=1)


class TabMNet(nn.Module):
    """TabM (Gorishniy et al., 2025, "TabM: Advancing Tabular Deep Learning with
    Parameter-Efficient Ensembling"): ``k`` MLPs sharing most weights, trained together.

    The backbone and the ``k`` heads are the ``tabm`` package's modules. In training the output
    is ``(rows, k, d_out)`` and each member learns from the batch as a model of its own; in eval
    mode it is the members' mean logit (or standardized value), as for :class:`PackedMLP`.
    """

    def __init__(
        self,
        *,
        inputs: EmbeddedInputs | None,
        d_in: int,
        d_out: int,
        arch_type: str,
        num_layers: int,
        hidden_size: int,
        dropout: float,
        activation: str,
        k: int,
    ) -> None:
        super().__init__()
        self.inputs = inputs if inputs is not None else nn.Identity()
        chunks = inputs.chunks if inputs is not None else [1] * d_in
        self.view = tabm.EnsembleView(k=k)
        self.backbone = tabm.make_tabm_backbone(
            d_in=sum(chunks),
            n_blocks=num_layers,
            d_block=hidden_size,
            dropout=dropout,
            activation=ACTIVATIONS[ActivationName(activation)].__name__,
            k=k,
            arch_type=arch_type,
            start_scaling_init="normal" if inputs is not None else "random-signs",
            start_scaling_init_chunks=chunks,
        )
        self.head = tabm.LinearEnsemble(hidden_size, d_out, k=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.backbone(self.view(self.inputs(x))))
        return out if self.training else out.mean(dim=1)


def make_model(
    *,
    layout: InputLayout | int,
    d_out: int,
    architecture: str = "mlp",
    num_embeddings: str = "none",
    d_embedding: int = 16,
    n_frequencies: int = 48,
    frequency_scale: float = 0.01,
    num_layers: int,
    hidden_size: int,
    dropout: float = 0.0,
    activation: str = "relu",
    batch_norm: bool = True,
    ensemble_size: int = 1,
) -> nn.Module:
    """The network of one configuration for inputs laid out as ``layout`` (or ``d_in``
    plain columns).

    ``architecture``: ``mlp`` (:func:`make_mlp`; ``ensemble_size`` independent members),
    ``tabm`` or ``tabm-mini`` (:class:`TabMNet`; ``ensemble_size`` is its ``k``, and
    ``batch_norm`` does not apply). ``num_embeddings``: ``none`` (the preprocessed columns as
    they are), ``periodic`` or ``piecewise_linear`` (:class:`EmbeddedInputs`: each numeric
    column becomes a learned vector of ``d_embedding``; the periodic embeddings draw
    ``n_frequencies`` frequencies of scale ``frequency_scale``). A table without numeric
    columns gets no embeddings.
    """
    if isinstance(layout, int):
        layout = InputLayout(layout)
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; use one of {ARCHITECTURES}")
    inputs = None
    if num_embeddings != "none" and layout.numeric:
        inputs = EmbeddedInputs(
            layout,
            num_embeddings,
            d_embedding=d_embedding,
            n_frequencies=n_frequencies,
            frequency_scale=frequency_scale,
        )
    d_in = inputs.d_out if inputs is not None else layout.n_features
    if architecture != "mlp":
        return TabMNet(
            inputs=inputs,
            d_in=d_in,
            d_out=d_out,
            arch_type=architecture,
            num_layers=num_layers,
            hidden_size=hidden_size,
            dropout=dropout,
            activation=activation,
            k=ensemble_size,
        )
    mlp = make_mlp(
        d_in=d_in,
        d_out=d_out,
        num_layers=num_layers,
        hidden_size=hidden_size,
        dropout=dropout,
        activation=activation,
        batch_norm=batch_norm,
        ensemble_size=ensemble_size,
    )
    return mlp if inputs is None else nn.Sequential(inputs, mlp)
