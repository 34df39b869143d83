"""Read a search space from a YAML or TOML file, reporting every problem at once.

Format (YAML shown; TOML tables work the same), optionally under a top-level ``params`` key::

    optimizer:     {choices: [Adam, AdamW], default: AdamW}
    num_layers:    {low: 1, high: 4}
    hidden_size:   {low: 32, high: 512, step: 32}
    learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true, grid: [1.0e-4, 1.0e-3, 1.0e-2]}
    batch_size:    256            # a plain value is fixed
    epochs:        {value: 30}    # also fixed
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from dnntune._names import did_you_mean, setting_name
from dnntune.exceptions import SpaceError
from dnntune.space._params import (
    CategoricalParam,
    FixedParam,
    FloatParam,
    IntParam,
    Param,
    SearchSpace,
)
from dnntune.space._rules import PARAMETERS, ParamRule, fixed_defaults

__all__ = ["load_space", "parse_space"]

_KEYS = ("type", "low", "high", "step", "log", "choices", "grid", "default", "value")
_TYPES = ("int", "float", "categorical", "fixed")


def load_space(path: str | Path) -> SearchSpace:
    """Parse a ``.yaml``/``.yml`` or ``.toml`` space file."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise SpaceError(
            source,
            [f"file {source!r} does not exist; check the path given to {setting_name('space')}"],
        )
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        if path.suffix.lower() == ".toml":
            raw: Any = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text)
        else:
            raise SpaceError(source, [f"unknown suffix {path.suffix!r}; use .yaml, .yml or .toml"])
    except SpaceError:
        raise
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpaceError(source, [f"cannot parse the file: {first}; fix its syntax"]) from None
    return parse_space(raw, source=source)


def parse_space(raw: Any, *, source: str = "<dict>") -> SearchSpace:
    """Build a :class:`SearchSpace` from plain data, collecting every problem."""
    if isinstance(raw, dict) and set(raw) == {"params"}:
        raw = raw["params"]
    if not isinstance(raw, dict) or not raw:
        raise SpaceError(
            source,
            [
                "expected a mapping of parameter names to ranges, e.g. "
                "'num_layers: {low: 1, high: 4}'"
            ],
        )
    problems: list[str] = []
    params: dict[str, Param] = {}
    for key, spec in raw.items():
        name = str(key)
        rule = PARAMETERS.get(name)
        if rule is None:
            problems.append(
                f"unknown parameter {name!r}{did_you_mean(name, PARAMETERS)}; "
                f"known parameters: {', '.join(PARAMETERS)}"
            )
            continue
        param = _parse_param(name, spec, rule, problems)
        if param is not None:
            params[name] = param
    if problems:
        raise SpaceError(source, problems)
    return SearchSpace(params=params, source=source, fixed_defaults=fixed_defaults())


def _parse_param(name: str, spec: Any, rule: ParamRule, problems: list[str]) -> Param | None:
    start = len(problems)

    def bad(msg: str) -> None:
        problems.append(f"parameter {name!r}: {msg}")

    if not isinstance(spec, dict):
        spec = {"choices": spec} if isinstance(spec, list) else {"value": spec}
    for key in spec:
        if key not in _KEYS:
            bad(f"unknown key {key!r}{did_you_mean(str(key), _KEYS)}; use {', '.join(_KEYS)}")
    kind = spec.get("type")
    if kind is None:
        if "value" in spec:
            kind = "fixed"
        elif "choices" in spec or rule.kind == "categorical":
            kind = "categorical"
        else:
            kind = rule.kind
    if kind not in _TYPES:
        bad(f"unknown type {kind!r}{did_you_mean(str(kind), _TYPES)}; use {', '.join(_TYPES)}")
        return None

    def check_value(what: str, value: Any) -> None:
        why = rule.check(value)
        if why:
            bad(f"{what} {why}")

    if kind == "fixed":
        if "value" not in spec:
            bad("a fixed parameter needs 'value', e.g. {value: 32}")
            return None
        check_value("value", spec["value"])
        return None if len(problems) > start else FixedParam(name, spec["value"])

    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            bad("a categorical parameter needs a non-empty list 'choices', e.g. {choices: [a, b]}")
            return None
        for c in choices:
            check_value("choice", c)
        grid = spec.get("grid")
        if grid is not None:
            if not isinstance(grid, list) or not grid:
                bad("'grid' must be a non-empty list of values")
            else:
                for g in grid:
                    if g not in choices:
                        bad(f"grid value {g!r} is not among the choices {choices}")
        default = spec.get("default")
        if default is not None and default not in choices:
            bad(f"default {default!r} is not among the choices {choices}")
        if len(problems) > start:
            return None
        return CategoricalParam(name, tuple(choices), tuple(grid) if grid else None, default)

    # numeric range
    if rule.kind == "categorical":
        bad(f"is categorical; give 'choices', not a {kind} range")
        return None
    if kind == "int" and rule.kind == "float":
        bad("is a float parameter; use type float")
        return None
    for key in ("low", "high"):
        if key not in spec:
            article = "an" if kind == "int" else "a"
            bad(f"{article} {kind} range needs '{key}', e.g. {{low: 1, high: 4}}")
    if len(problems) > start:
        return None
    low, high = spec["low"], spec["high"]
    step, log = spec.get("step"), spec.get("log", False)
    for key, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            bad(f"'{key}' must be a number, but got {value!r}")
        elif kind == "int" and not float(value).is_integer():
            bad(f"is an integer parameter, so '{key}' must be an integer, but got {value!r}")
        else:
            check_value(f"'{key}'", value)
    if not isinstance(log, bool):
        bad(f"'log' must be true or false, but got {log!r}")
    if step is not None and (
        isinstance(step, bool) or not isinstance(step, int | float) or step <= 0
    ):
        bad(f"'step' must be a positive number, but got {step!r}")
    if len(problems) > start:
        return None
    if low > high:
        bad(f"`low <= high` must hold, but got (low={low}, high={high}); swap them")
    if log and low <= 0:
        bad(f"a log range needs low > 0, but got low={low}; raise low or set log: false")
    if log and step is not None:
        bad("'step' and 'log: true' cannot be used together; drop one of them")
    grid = spec.get("grid")
    if grid is not None:
        if not isinstance(grid, list) or not grid:
            bad("'grid' must be a non-empty list of values")
        else:
            for g in grid:
                if isinstance(g, bool) or not isinstance(g, int | float) or not low <= g <= high:
                    bad(f"grid value {g!r} is outside [low={low}, high={high}]")
    default = spec.get("default")
    if default is not None and (
        isinstance(default, bool)
        or not isinstance(default, int | float)
        or not low <= default <= high
    ):
        bad(f"default {default!r} is outside [low={low}, high={high}]")
    if len(problems) > start:
        return None
    if kind == "int":
        return IntParam(
            name,
            int(low),
            int(high),
            int(step or 1),
            bool(log),
            tuple(int(g) for g in grid) if grid else None,
            int(default) if default is not None else None,
        )
    return FloatParam(
        name,
        float(low),
        float(high),
        float(step) if step else None,
        bool(log),
        tuple(float(g) for g in grid) if grid else None,
        float(default) if default is not None else None,
    )
