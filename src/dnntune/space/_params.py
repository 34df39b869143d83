"""Parameter types of a search space and the one function that calls ``trial.suggest_*``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

__all__ = [
    "CategoricalParam",
    "FixedParam",
    "FloatParam",
    "IntParam",
    "Param",
    "SearchSpace",
    "outside",
    "suggest",
]


@dataclass(frozen=True)
class IntParam:
    name: str
    low: int
    high: int
    step: int = 1
    log: bool = False
    grid: tuple[int, ...] | None = None
    default: int | None = None

    def grid_values(self, n_points: int) -> list[int]:
        if self.grid is not None:
            return list(self.grid)
        raw = (np.geomspace if self.log else np.linspace)(self.low, self.high, n_points)
        snapped = self.low + self.step * np.round((raw - self.low) / self.step)
        values = np.clip(snapped, self.low, self.high).astype(int)
        return sorted({int(v) for v in values})


@dataclass(frozen=True)
class FloatParam:
    name: str
    low: float
    high: float
    step: float | None = None
    log: bool = False
    grid: tuple[float, ...] | None = None
    default: float | None = None

    def grid_values(self, n_points: int) -> list[float]:
        if self.grid is not None:
            return list(self.grid)
        raw = (np.geomspace if self.log else np.linspace)(self.low, self.high, n_points)
        if self.step is not None:
            raw = self.low + self.step * np.round((raw - self.low) / self.step)
        values = [float(f"{v:.4g}") for v in raw]  # readable values in the study
        return sorted({min(max(v, self.low), self.high) for v in values})


@dataclass(frozen=True)
class CategoricalParam:
    name: str
    choices: tuple[Any, ...]
    grid: tuple[Any, ...] | None = None
    default: Any = None

    def grid_values(self, n_points: int) -> list[Any]:
        return list(self.grid if self.grid is not None else self.choices)


@dataclass(frozen=True)
class FixedParam:
    name: str
    value: Any

    @property
    def default(self) -> Any:
        return self.value


Param = IntParam | FloatParam | CategoricalParam | FixedParam


def outside(param: Param, value: Any) -> str | None:
    """Why ``value`` is not one of ``param``'s values, or None when it is."""
    if isinstance(param, FixedParam):
        return None if value == param.value else f"is fixed at {param.value!r}"
    if isinstance(param, CategoricalParam):
        return None if value in param.choices else f"is one of {list(param.choices)!r}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "is a number"
    if not param.low <= value <= param.high:
        return f"lies in [{param.low:g}, {param.high:g}]"
    return None


@dataclass(frozen=True)
class SearchSpace:
    """An ordered set of parameters; names equal the model/training keyword names."""

    params: Mapping[str, Param]
    source: str = "default"
    fixed_defaults: Mapping[str, Any] = field(default_factory=dict)
    # Further first trials: each changes some tuned parameters of the warm start.
    starts: tuple[Mapping[str, Any], ...] = ()

    @property
    def tuned(self) -> dict[str, Param]:
        return {k: p for k, p in self.params.items() if not isinstance(p, FixedParam)}

    def grid(self, n_points: int) -> dict[str, list[Any]]:
        """The grid for :class:`optuna.samplers.GridSampler` (continuous ranges discretized)."""
        return {k: p.grid_values(n_points) for k, p in self.tuned.items()}  # type: ignore[union-attr]

    def grid_size(self, n_points: int) -> int:
        return math.prod(len(v) for v in self.grid(n_points).values())

    def warm_start(self) -> dict[str, Any] | None:
        """Starting values of the tuned parameters, when every one of them has a default."""
        values = {k: p.default for k, p in self.tuned.items()}
        if not values or any(v is None for v in values.values()):
            return None
        return values

    def warm_starts(self) -> list[dict[str, Any]]:
        """The first trials of a new study: the warm start, then each of ``starts`` over it."""
        first = self.warm_start()
        if first is None:
            return []
        return [first] + [{**first, **start} for start in self.starts]

    def to_dict(self) -> dict[str, Any]:
        """Every parameter a trial trains with: the space's own, then the fixed defaults of
        those it does not mention (part of a study's identity)."""
        out: dict[str, Any] = {}
        for name, p in self.params.items():
            if isinstance(p, FixedParam):
                out[name] = {"type": "fixed", "value": p.value}
            elif isinstance(p, CategoricalParam):
                out[name] = {"type": "categorical", "choices": list(p.choices)}
            else:
                kind = "int" if isinstance(p, IntParam) else "float"
                out[name] = {"type": kind, "low": p.low, "high": p.high, "log": p.log}
                if p.step not in (None, 1) or (kind == "float" and p.step is not None):
                    out[name]["step"] = p.step
            grid = getattr(p, "grid", None)
            if grid is not None:
                out[name]["grid"] = list(grid)
        for name, value in self.fixed_defaults.items():
            out.setdefault(name, {"type": "fixed", "value": value})
        return out


def suggest(trial: optuna.trial.BaseTrial, space: SearchSpace) -> dict[str, Any]:
    """Draw one configuration: tuned parameters from ``trial``, the rest fixed.

    This is the only place where dnntune calls ``trial.suggest_*``.
    """
    values: dict[str, Any] = dict(space.fixed_defaults)
    for name, p in space.params.items():
        if isinstance(p, FixedParam):
            values[name] = p.value
        elif isinstance(p, IntParam):
            values[name] = trial.suggest_int(name, p.low, p.high, step=p.step, log=p.log)
        elif isinstance(p, FloatParam):
            values[name] = trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)
        else:
            values[name] = trial.suggest_categorical(name, _choices(p.choices))
    return values


def _choices(choices: Sequence[Any]) -> Sequence[Any]:
    return list(choices)
