"""What each tunable parameter is: its kind, valid values and the value used when not tuned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dnntune.config import ActivationName, ArchitectureName, EmbeddingName, OptimizerName

__all__ = ["PARAMETERS", "ParamRule", "fixed_defaults"]


@dataclass(frozen=True)
class ParamRule:
    kind: str  # "int", "float" or "categorical"
    doc: str
    default: Any
    min: float | None = None
    max: float | None = None
    max_inclusive: bool = True
    min_inclusive: bool = True
    choices: tuple[Any, ...] | None = None

    def check(self, value: Any) -> str | None:
        """Return why ``value`` is invalid for this parameter, or None."""
        if self.choices is not None:
            if value not in self.choices:
                return f"must be one of {', '.join(map(repr, self.choices))}, but got {value!r}"
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, but got {value!r}"
        if self.kind == "int" and not float(value).is_integer():
            return f"must be an integer, but got {value!r}"
        if self.min is not None and (
            value < self.min or (value == self.min and not self.min_inclusive)
        ):
            op = ">=" if self.min_inclusive else ">"
            return f"must be {op} {self.min:g}, but got {value!r}"
        if self.max is not None and (
            value > self.max or (value == self.max and not self.max_inclusive)
        ):
            op = "<=" if self.max_inclusive else "<"
            return f"must be {op} {self.max:g}, but got {value!r}"
        return None


PARAMETERS: dict[str, ParamRule] = {
    "architecture": ParamRule(
        "categorical",
        "network: an MLP, or TabM / TabM-mini (k MLPs sharing most weights; k is ensemble_size)",
        "mlp",
        choices=tuple(a.value for a in ArchitectureName),
    ),
    "num_embeddings": ParamRule(
        "categorical",
        "numeric columns as they are, or through learned periodic or piecewise-linear embeddings",
        "none",
        choices=tuple(e.value for e in EmbeddingName),
    ),
    "d_embedding": ParamRule("int", "size of each numeric column's embedding", 16, min=1, max=256),
    "n_frequencies": ParamRule(
        "int", "frequencies of the periodic embeddings", 48, min=1, max=1024
    ),
    "frequency_scale": ParamRule(
        "float",
        "initialization scale of the periodic embeddings' frequencies (sigma)",
        0.01,
        min=0.0,
        min_inclusive=False,
        max=1000.0,
    ),
    "optimizer": ParamRule(
        "categorical",
        "optimizer name",
        OptimizerName.ADAMW.value,
        choices=tuple(o.value for o in OptimizerName),
    ),
    "num_layers": ParamRule("int", "hidden layers", 2, min=1, max=64),
    "hidden_size": ParamRule("int", "units per hidden layer", 128, min=1, max=16384),
    "dropout": ParamRule(
        "float", "dropout probability", 0.1, min=0.0, max=1.0, max_inclusive=False
    ),
    "learning_rate": ParamRule(
        "float", "optimizer learning rate", 1e-3, min=0.0, min_inclusive=False, max=10.0
    ),
    "weight_decay": ParamRule("float", "L2 / decoupled weight decay", 0.0, min=0.0, max=1.0),
    "batch_size": ParamRule(
        "int", "rows per batch (default: chosen from the row count)", None, min=1, max=1 << 20
    ),
    "activation": ParamRule(
        "categorical",
        "activation function",
        ActivationName.RELU.value,
        choices=tuple(a.value for a in ActivationName),
    ),
    "batch_norm": ParamRule(
        "categorical", "BatchNorm1d after each hidden Linear", True, choices=(True, False)
    ),
    "lr_schedule": ParamRule(
        "categorical",
        "learning rate over a fold's epochs: cosine decay to 0 after each batch, or constant",
        "cosine",
        choices=("cosine", "constant"),
    ),
    "epochs": ParamRule(
        "int", "maximum epochs per fold (early stopping may end sooner)", 20, min=1, max=10_000
    ),
    "ensemble_size": ParamRule(
        "int",
        "networks per fold trained together (independent MLPs, or TabM's k); the fold's "
        "prediction is their mean",
        1,
        min=1,
        max=64,
    ),
}


def fixed_defaults() -> dict[str, Any]:
    """Values of the parameters a space does not mention."""
    return {name: rule.default for name, rule in PARAMETERS.items()}
