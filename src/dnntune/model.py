"""The MLP builder. Keyword names equal the search-space parameter names."""

from __future__ import annotations

from torch import nn

from dnntune.config import ActivationName

__all__ = ["ACTIVATIONS", "make_mlp"]

ACTIVATIONS: dict[ActivationName, type[nn.Module]] = {
    ActivationName.RELU: nn.ReLU,
    ActivationName.GELU: nn.GELU,
    ActivationName.SILU: nn.SiLU,
    ActivationName.TANH: nn.Tanh,
    ActivationName.LEAKY_RELU: nn.LeakyReLU,
    ActivationName.ELU: nn.ELU,
}


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
            layers.append(nn.Dropout(dropout))
        d = hidden_size
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)
