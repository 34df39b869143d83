"""The check of a stored preprocessing state (a manifest's ``preprocessing`` entry), read as
untrusted input: every field of the type and shape :class:`Preprocessor` writes, numbers
finite, edges increasing, the column plan consistent with the statistics and the feature names.
A problem raises ``ValueError`` naming the field; the model folder's reader turns it into one
line."""

from __future__ import annotations

import itertools
import math
from typing import Any

from dnntune.config import Preprocessing
from dnntune.exceptions import ConfigError

__all__ = ["check_state"]

_PLAN = ("numeric", "categorical", "datetime")


def _fail(where: str, what: str) -> None:
    raise ValueError(f"{where} {what}")


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(where, "is not an object")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        _fail(where, "is not a list of strings")
    if len(set(value)) != len(value):
        _fail(where, "repeats a name")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _fail(where, "is not a finite number")
    return float(value)


def _increasing(value: Any, where: str, at_least: int) -> list[float]:
    if not isinstance(value, list) or len(value) < at_least:
        _fail(where, f"is not a list of at least {at_least} numbers")
    numbers = [_number(v, where) for v in value]
    if any(b <= a for a, b in itertools.pairwise(numbers)):
        _fail(where, "is not increasing")
    return numbers


def _same_keys(d: dict[str, Any], names: list[str], where: str, *, all_of: bool = True) -> None:
    """``d``'s keys are ``names`` in their order (``all_of``), or some of them."""
    if (list(d) != names) if all_of else bool(set(d) - set(names)):
        _fail(where, f"does not name the plan's columns in order ({names})")


def check_state(d: Any) -> Preprocessing:
    """Raise ``ValueError`` for a preprocessing state :class:`Preprocessor` could not have
    written; return its settings."""
    d = _dict(d, "preprocessing")
    try:
        settings = Preprocessing(**_dict(d.get("settings"), "preprocessing.settings"))
    except (ConfigError, TypeError) as exc:  # a wrong value, or a name it does not have
        raise ValueError(f"preprocessing.settings: {exc}") from None
    plan = _dict(d.get("plan"), "preprocessing.plan")
    columns = {k: _strings(plan.get(k), f"preprocessing.plan.{k}") for k in _PLAN}
    names = [n for k in _PLAN for n in columns[k]]
    if len(set(names)) != len(names):
        _fail("preprocessing.plan", "gives a column two roles")
    if not names:
        _fail("preprocessing.plan", "has no column")
    measured = [*columns["numeric"], *columns["datetime"]]
    numeric = _dict(d.get("numeric"), "preprocessing.numeric")
    _same_keys(numeric, measured, "preprocessing.numeric")
    for name, raw in numeric.items():
        where = f"preprocessing.numeric[{name!r}]"
        st = _dict(raw, where)
        for key in ("median", "mean"):
            _number(st.get(key), f"{where}.{key}")
        if _number(st.get("scale"), f"{where}.scale") <= 0:
            _fail(f"{where}.scale", "is not positive")
        if not isinstance(st.get("indicator"), bool):
            _fail(f"{where}.indicator", "is not true or false")
    categories = _dict(d.get("categories"), "preprocessing.categories")
    _same_keys(categories, columns["categorical"], "preprocessing.categories")
    for name, levels in categories.items():
        _strings(levels, f"preprocessing.categories[{name!r}]")
    edges = _dict(d.get("bin_edges"), "preprocessing.bin_edges")
    ranges = _dict(d.get("bin_range"), "preprocessing.bin_range")
    _same_keys(edges, measured, "preprocessing.bin_edges", all_of=False)
    _same_keys(ranges, list(edges), "preprocessing.bin_range")
    for name, raw in edges.items():
        if not isinstance(ranges[name], list) or len(ranges[name]) != 2:
            _fail(f"preprocessing.bin_range[{name!r}]", "is not [low, high]")
        lo, hi = _increasing(ranges[name], f"preprocessing.bin_range[{name!r}]", 2)
        inner = _increasing(raw, f"preprocessing.bin_edges[{name!r}]", 1)
        if inner[0] <= lo or inner[-1] >= hi:
            _fail(f"preprocessing.bin_edges[{name!r}]", "is not inside its bin_range")
    embedding = _dict(d.get("embedding_bins"), "preprocessing.embedding_bins")
    _same_keys(embedding, measured, "preprocessing.embedding_bins")
    for name, bins in embedding.items():
        _increasing(bins, f"preprocessing.embedding_bins[{name!r}]", 3)
    features = _strings(d.get("feature_names"), "preprocessing.feature_names")
    base = sum(
        1 + int(numeric[n]["indicator"]) + (len(edges[n]) + 1 if n in edges else 0)
        for n in measured
    ) + sum(len(levels) + 1 for levels in categories.values())
    copies = d.get("copies")
    if copies is not None:
        _dict(copies, "preprocessing.copies")
    if len(features) < base or (copies is None and len(features) != base):
        _fail("preprocessing.feature_names", f"does not match the columns ({base} inputs)")
    return settings
