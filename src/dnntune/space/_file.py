"""Read a search space from a YAML or TOML file, reporting every problem at once.

Format (YAML shown; TOML tables work the same), optionally under a top-level ``params`` key::

    optimizer:     {choices: [Adam, AdamW], default: AdamW}
    num_layers:    {low: 1, high: 4}
    hidden_size:   {low: 32, high: 512, step: 32}
    learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true, grid: [1.0e-4, 1.0e-3, 1.0e-2]}
    batch_size:    256            # a plain value is fixed
    epochs:        {value: 30}    # also fixed

``extends: NAME`` starts from a named space (``dnntune.space.NAMED_SPACES``) and the file's
entries replace or add to its own. ``--space NAME`` uses a named space as it is. ``starts:``
lists further first trials of a new study, each as the values it changes of the defaults::

    starts:
      - {num_embeddings: piecewise_linear, batch_norm: false}
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from dnntune._names import did_you_mean, first_line, setting_name
from dnntune.exceptions import SpaceError
from dnntune.space._named import NAMED_SPACES, named_space
from dnntune.space._params import (
    CategoricalParam,
    FixedParam,
    FloatParam,
    IntParam,
    Param,
    SearchSpace,
    outside,
)
from dnntune.space._rules import PARAMETERS, ParamRule, fixed_defaults

__all__ = ["load_space", "parse_space"]

_KEYS = ("type", "low", "high", "step", "log", "choices", "grid", "default", "value")
_TYPES = ("int", "float", "categorical", "fixed")


def load_space(path: str | Path) -> SearchSpace:
    """A named space (``classic``, ``tabm``...), or a ``.yaml``/``.yml``/``.toml`` space
    file parsed."""
    path = Path(path)
    source = str(path)
    if source in NAMED_SPACES and not path.is_file():
        return parse_space(source)
    if not path.is_file():
        raise SpaceError(
            source,
            [
                f"file {source!r} does not exist{did_you_mean(source, NAMED_SPACES)}; check the "
                f"path given to {setting_name('space')}, or name a space: "
                f"{', '.join(NAMED_SPACES)}"
            ],
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
        first = first_line(exc)
        raise SpaceError(source, [f"cannot parse the file: {first}; fix its syntax"]) from None
    return parse_space(raw, source=source)


def parse_space(raw: Any, *, source: str = "<dict>") -> SearchSpace:
    """Build a :class:`SearchSpace` from plain data (or a named space's name), collecting
    every problem."""
    if isinstance(raw, str) and named_space(raw) is not None:
        return parse_space(named_space(raw), source=raw)
    if isinstance(raw, dict) and set(raw) == {"params"}:
        raw = raw["params"]
    inherited: list[Any] = []
    if isinstance(raw, dict) and "extends" in raw:
        raw, inherited = _extended(raw, source)
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
    raw = dict(raw)
    starts_raw = raw.pop("starts", [])
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
    starts = _starts(starts_raw, params, problems)
    # The named space's own starts, those that still fit the file's changes to it.
    starts += tuple(s for s in inherited if not _start_problems(0, s, params))
    if problems:
        raise SpaceError(source, problems)
    return SearchSpace(params=params, source=source, fixed_defaults=fixed_defaults(), starts=starts)


def _starts(raw: Any, params: dict[str, Param], problems: list[str]) -> tuple[dict[str, Any], ...]:
    """The ``starts:`` entries: mappings of tuned parameters to values within their ranges."""
    fix = "list mappings such as '- {num_embeddings: piecewise_linear}'"
    if not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
        problems.append(f"'starts' must be a list of mappings of parameters to values; {fix}")
        return ()
    for i, start in enumerate(raw):
        problems += _start_problems(i, start, params)
    return tuple(dict(s) for s in raw)


def _start_problems(i: int, start: dict[str, Any], params: dict[str, Param]) -> list[str]:
    """Why the ``i``-th start does not fit the space: each value outside its parameter's."""
    out = []
    for name, value in start.items():
        param = params.get(str(name))
        if param is None or isinstance(param, FixedParam):
            out.append(f"'starts' entry {i + 1} sets {name!r}, which the space does not tune")
        elif (why := outside(param, value)) is not None:
            out.append(f"'starts' entry {i + 1} sets {name!r} to {value!r}, but {name!r} {why}")
    return out


def _extended(raw: dict[str, Any], source: str) -> tuple[dict[str, Any], list[Any]]:
    """The named space ``raw['extends']`` names, with ``raw``'s other entries over it, and
    the named space's starts when ``raw`` has none of its own."""
    own = {k: v for k, v in raw.items() if k != "extends"}
    if isinstance(own.get("params"), dict) and len(own) == 1:
        own = own["params"]
    name = raw["extends"]
    base = named_space(name) if isinstance(name, str) else None
    if base is None:
        raise SpaceError(
            source,
            [
                f"'extends' names {name!r}, which is no named space"
                f"{did_you_mean(str(name), NAMED_SPACES)}; use one of {', '.join(NAMED_SPACES)}"
            ],
        )
    inherited = [] if "starts" in own else base.pop("starts", [])
    return {**base, **own}, inherited


def _parse_param(name: str, spec: Any, rule: ParamRule, problems: list[str]) -> Param | None:
    """One parameter from its file entry; its problems go to ``problems`` (None when any)."""
    report = _Problems(name, problems)
    if not isinstance(spec, dict):
        spec = {"choices": spec} if isinstance(spec, list) else {"value": spec}
    for key in spec:
        if key not in _KEYS:
            report(f"unknown key {key!r}{did_you_mean(str(key), _KEYS)}; use {', '.join(_KEYS)}")
    kind = spec.get("type")
    if kind is None:
        kind = _kind(spec, rule)
    if kind not in _TYPES:
        report(f"unknown type {kind!r}{did_you_mean(str(kind), _TYPES)}; use {', '.join(_TYPES)}")
        return None
    if kind == "fixed":
        return _fixed(name, spec, rule, report)
    if kind == "categorical":
        return _categorical(name, spec, rule, report)
    return _numeric(name, kind, spec, rule, report)


class _Problems:
    """Collects one parameter's problems, each prefixed with its name."""

    def __init__(self, name: str, problems: list[str]) -> None:
        self.name = name
        self.problems = problems
        self.start = len(problems)

    def __call__(self, msg: str) -> None:
        self.problems.append(f"parameter {self.name!r}: {msg}")

    @property
    def any(self) -> bool:
        return len(self.problems) > self.start

    def check(self, rule: ParamRule, what: str, value: Any) -> None:
        why = rule.check(value)
        if why:
            self(f"{what} {why}")


def _kind(spec: dict[str, Any], rule: ParamRule) -> str:
    """The type an entry without ``type:`` has: fixed, categorical or the rule's own."""
    if "value" in spec:
        return "fixed"
    if "choices" in spec or rule.kind == "categorical":
        return "categorical"
    return rule.kind


def _fixed(name: str, spec: dict[str, Any], rule: ParamRule, report: _Problems) -> Param | None:
    if "value" not in spec:
        report("a fixed parameter needs 'value', e.g. {value: 32}")
        return None
    report.check(rule, "value", spec["value"])
    return None if report.any else FixedParam(name, spec["value"])


def _categorical(
    name: str, spec: dict[str, Any], rule: ParamRule, report: _Problems
) -> Param | None:
    choices = spec.get("choices")
    if not isinstance(choices, list) or not choices:
        report("a categorical parameter needs a non-empty list 'choices', e.g. {choices: [a, b]}")
        return None
    for c in choices:
        report.check(rule, "choice", c)
    grid = _grid(spec, report)
    for g in grid:
        if g not in choices:
            report(f"grid value {g!r} is not among the choices {choices}")
    default = spec.get("default")
    if default is not None and default not in choices:
        report(f"default {default!r} is not among the choices {choices}")
    if report.any:
        return None
    return CategoricalParam(name, tuple(choices), tuple(grid) if grid else None, default)


def _grid(spec: dict[str, Any], report: _Problems) -> list[Any]:
    """An entry's explicit ``grid:`` values (none when it gives none, or not a list)."""
    grid = spec.get("grid")
    if grid is not None and (not isinstance(grid, list) or not grid):
        report("'grid' must be a non-empty list of values")
        return []
    return list(grid or [])


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def _numeric(
    name: str, kind: str, spec: dict[str, Any], rule: ParamRule, report: _Problems
) -> Param | None:
    if rule.kind == "categorical":
        report(f"is categorical; give 'choices', not a {kind} range")
        return None
    if kind == "int" and rule.kind == "float":
        report("is a float parameter; use type float")
        return None
    for key in ("low", "high"):
        if key not in spec:
            article = "an" if kind == "int" else "a"
            report(f"{article} {kind} range needs '{key}', e.g. {{low: 1, high: 4}}")
    if report.any:
        return None
    _check_bounds(kind, spec, rule, report)
    if report.any:
        return None
    _check_range(spec, report)
    if report.any:
        return None
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
    grid, default = spec.get("grid"), spec.get("default")
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


def _check_bounds(kind: str, spec: dict[str, Any], rule: ParamRule, report: _Problems) -> None:
    """``low``, ``high``, ``step`` and ``log`` each of the right type and within the rule."""
    for key in ("low", "high"):
        value = spec[key]
        if not _is_number(value):
            report(f"'{key}' must be a number, but got {value!r}")
        elif kind == "int" and not float(value).is_integer():
            report(f"is an integer parameter, so '{key}' must be an integer, but got {value!r}")
        else:
            report.check(rule, f"'{key}'", value)
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        report(f"'log' must be true or false, but got {log!r}")
    if step is not None and (not _is_number(step) or step <= 0):
        report(f"'step' must be a positive number, but got {step!r}")


def _check_range(spec: dict[str, Any], report: _Problems) -> None:
    """The bounds, the grid and the default agree with each other."""
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
    if low > high:
        report(f"`low <= high` must hold, but got (low={low}, high={high}); swap them")
    if log and low <= 0:
        report(f"a log range needs low > 0, but got low={low}; raise low or set log: false")
    if log and step is not None:
        report("'step' and 'log: true' cannot be used together; drop one of them")
    for g in _grid(spec, report):
        if not _is_number(g) or not low <= g <= high:
            report(f"grid value {g!r} is outside [low={low}, high={high}]")
    default = spec.get("default")
    if default is not None and (not _is_number(default) or not low <= default <= high):
        report(f"default {default!r} is outside [low={low}, high={high}]")
