"""The delivered model as one PyTorch module over the raw columns, ready for ``torch.onnx``.

:class:`WholeModel` takes one ``(rows, 1)`` tensor per original column, in the order of
:attr:`Columns.names`: numbers and dates (days since 1970-01-01) as float64 with NaN for a
missing value, categories as int64 codes into :attr:`Columns.levels` (the code ``len(levels)``
for a level no network saw). Each network's own fitted preprocessing (median imputation,
missing indicators, standardization, piecewise-linear bins, one-hot levels with the rare and
unseen ones in ``__other__``) is computed in float64, as :meth:`Preprocessor.transform` computes
it, then the network runs in float32, and the outputs are turned into probabilities or values
in the target's units (float64) and averaged with the networks' shares, as ``predict`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dnntune.artifacts import LoadedModel
from dnntune.config import NumericScaling, Task
from dnntune.data import MISSING, SMOOTH_CLIP, Preprocessor

__all__ = ["Columns", "WholeModel", "columns_of"]


@dataclass(frozen=True)
class Columns:
    """The model's input columns: each one's kind, and a categorical column's levels (the union
    over the networks, sorted; the networks were fitted on different training rows)."""

    numeric: tuple[str, ...]
    dates: tuple[str, ...]
    categorical: tuple[str, ...]
    levels: dict[str, tuple[str, ...]]

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.numeric, *self.dates, *self.categorical)

    def kind(self, name: str) -> str:
        if name in self.categorical:
            return "category"
        return "date" if name in self.dates else "number"

    def missing_code(self, name: str) -> int:
        """The code of a missing value: MISSING's level where a network kept it, else unseen."""
        levels = self.levels[name]
        return levels.index(MISSING) if MISSING in levels else len(levels)


def columns_of(loaded: LoadedModel) -> Columns:
    plan = loaded.preprocessors[0].plan
    levels = {
        name: tuple(sorted({lvl for pre in loaded.preprocessors for lvl in pre.categories_[name]}))
        for name in plan.categorical
    }
    return Columns(tuple(plan.numeric), tuple(plan.datetime), tuple(plan.categorical), levels)


class _Inputs(nn.Module):
    """One network's preprocessing of the raw columns (float64 in, float32 out)."""

    median: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, pre: Preprocessor, columns: Columns) -> None:
        super().__init__()
        self.numeric = list(pre.numeric_)  # the order transform writes them in
        self.position = {name: i for i, name in enumerate(columns.names)}
        self.categorical = list(pre.categories_)
        self.indicator = [bool(pre.numeric_[n]["indicator"]) for n in self.numeric]
        self.robust = pre.settings.numeric_scaling is NumericScaling.ROBUST
        stats = [[float(pre.numeric_[n][k]) for n in self.numeric] for k in ("median", "mean")]
        scale = [float(pre.numeric_[n]["scale"]) for n in self.numeric]
        self.register_buffer("median", torch.tensor(stats[0], dtype=torch.float64))
        self.register_buffer("mean", torch.tensor(stats[1], dtype=torch.float64))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float64))
        self.binned = [n for n in self.numeric if pre.bin_edges_.get(n)]
        for i, name in enumerate(self.binned):
            lo, hi = pre.bin_range_[name]
            bounds = torch.tensor([lo, *pre.bin_edges_[name], hi], dtype=torch.float64)
            self.register_buffer(f"left{i}", bounds[:-1].clone())
            self.register_buffer(f"width{i}", bounds[1:] - bounds[:-1])
        # A one-hot row for every code of the column's levels: this network's own level, or
        # its __other__ column for a level it did not keep (and for an unseen one).
        for i, name in enumerate(self.categorical):
            kept = pre.categories_[name]
            table = torch.zeros(len(columns.levels[name]) + 1, len(kept) + 1)
            for code, level in enumerate((*columns.levels[name], None)):
                table[code, kept.index(level) if level in kept else len(kept)] = 1.0
            self.register_buffer(f"onehot{i}", table)

    def forward(self, raw: list[torch.Tensor]) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        binned = 0
        for j, name in enumerate(self.numeric):
            x = raw[self.position[name]]
            missing = torch.isnan(x)
            filled = torch.where(missing, self.median[j], x)
            scaled = (filled - self.mean[j]) / self.scale[j]
            if self.robust:  # smoothly clipped, as Preprocessor.scaled does
                scaled = scaled / torch.sqrt(1.0 + (scaled / SMOOTH_CLIP) ** 2)
            parts.append(scaled)
            if self.indicator[j]:
                parts.append(missing.to(torch.float64))
            if name in self.binned:
                left, width = getattr(self, f"left{binned}"), getattr(self, f"width{binned}")
                parts.append(torch.clamp((filled - left) / width, 0.0, 1.0))
                binned += 1
        for i, name in enumerate(self.categorical):
            codes = raw[self.position[name]][:, 0]
            parts.append(getattr(self, f"onehot{i}")[codes].to(torch.float64))
        return torch.cat(parts, dim=1).to(torch.float32)


class WholeModel(nn.Module):
    """Every network of a loaded model with its preprocessing, target scale and share.

    ``forward(*columns)`` returns the probabilities (classification: one column per class, or
    per label) and, for binary and multiclass, the index of the most probable class; or the
    values (regression: ``(rows,)`` for one target, ``(rows, targets)`` for several).
    """

    shifts: torch.Tensor
    scales: torch.Tensor
    shares: torch.Tensor

    def __init__(self, loaded: LoadedModel, columns: Columns) -> None:
        super().__init__()
        self.task = loaded.manifest.task
        self.inputs = nn.ModuleList(_Inputs(pre, columns) for pre in loaded.preprocessors)
        self.networks = nn.ModuleList(loaded.models)
        shift = [torch.tensor(s, dtype=torch.float64).reshape(-1) for s in loaded.y_shifts]
        scale = [torch.tensor(s, dtype=torch.float64).reshape(-1) for s in loaded.y_scales]
        self.register_buffer("shifts", torch.stack(shift))
        self.register_buffer("scales", torch.stack(scale))
        self.register_buffer("shares", torch.tensor(loaded.shares(), dtype=torch.float64))
        self.eval()

    def _prediction(self, outputs: torch.Tensor, i: int) -> torch.Tensor:
        if self.task is Task.REGRESSION:
            return outputs * self.scales[i] + self.shifts[i]
        if self.task is Task.MULTICLASS:
            return torch.softmax(outputs, dim=1)
        return torch.sigmoid(outputs)

    def forward(self, *columns: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raw = list(columns)
        total: torch.Tensor | None = None
        for i, (inputs, network) in enumerate(zip(self.inputs, self.networks, strict=True)):
            outputs = network(inputs(raw)).to(torch.float64)
            part = self.shares[i] * self._prediction(outputs, i)
            total = part if total is None else total + part
        assert total is not None
        if self.task is Task.REGRESSION:
            return (total[:, 0] if total.shape[1] == 1 else total,)
        if self.task is Task.BINARY:
            total = torch.cat([1.0 - total, total], dim=1)
        if self.task is Task.MULTILABEL:
            return total, (total >= 0.5).to(torch.int64)
        return total, torch.argmax(total, dim=1)
