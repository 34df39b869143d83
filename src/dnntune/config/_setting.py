"""How a setting is defined: one dataclass field per setting, made with :func:`setting`, in a
group that coerces and checks its values (:class:`Group`); :class:`Setting` is one setting as
the CLI and the API see it."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from dnntune._names import render, setting_name
from dnntune.config._choices import parse_choice
from dnntune.exceptions import ConfigError

__all__ = ["Check", "Group", "Setting", "at_least", "setting"]

Check = Callable[[Any], str | None]  # why a value is invalid ("must be ..., but got ..."), or None


def setting(
    default: Any,
    help: str,
    *,
    check: Check | None = None,
    identity: bool = False,
    cli: bool = True,
) -> Any:
    """A setting's one definition: a dataclass field whose metadata the CLI, the API keywords
    and the study identity read. ``identity``: a study resumes only with the same value.
    ``cli=False``: a keyword of the API only."""
    meta = {"help": help, "check": check, "identity": identity, "cli": cli}
    return field(default=default, metadata=meta)


def at_least(low: int) -> Check:
    return lambda v: None if v is None or v >= low else f"must be at least {low}, but got {v}"


class Group:
    """Coerces plain values (strings for enums, comma-separated strings for column lists),
    then checks every field, reporting all problems at once."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            try:
                value = _coerce(getattr(self, f.name), hints[f.name], f.name)
            except ConfigError as exc:
                problems.append(exc.template)
                continue
            object.__setattr__(self, f.name, value)
            check = f.metadata.get("check")
            why = check(value) if check is not None else None
            if why:
                problems.append(f"{setting_name(f.name)} {why}")
        problems += self._cross_checks() if not problems else []
        if problems:
            raise ConfigError("; ".join(problems))

    def _cross_checks(self) -> list[str]:
        return []


def _coerce(value: Any, hint: Any, name: str) -> Any:
    """``value`` as the type ``hint`` declares, from what a Python caller or the CLI passes."""
    args = typing.get_args(hint)
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if value is None and type(None) in args:
        return None
    if isinstance(base, type) and issubclass(base, StrEnum):
        return parse_choice(base, value, name.replace("_", " "))
    if typing.get_origin(hint) is tuple:  # column names: "a,b", ["a", "b"] or ["a,b"]
        items = [value] if isinstance(value, str) else list(value or ())
        return tuple(s.strip() for v in items for s in str(v).split(",") if s.strip())
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{setting_name(name)} must be True or False, but got {value!r}")
        return value
    if base in (int, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or (base is int and not float(value).is_integer()):
            kind = "an integer" if base is int else "a number"
            raise ConfigError(f"{setting_name(name)} must be {kind}, but got {value!r}")
        return base(value)
    if base is str and not isinstance(value, str):
        if isinstance(value, Path):
            return str(value)
        raise ConfigError(f"{setting_name(name)} must be a string, but got {value!r}")
    return value


@dataclass(frozen=True)
class Setting:
    """One setting as the CLI and the API see it: its group, field and type."""

    name: str
    group: str | None  # None: a field of TuneConfig itself (the seed)
    field: dataclasses.Field[Any]
    hint: Any

    @property
    def default(self) -> Any:
        return self.field.default

    @property
    def help(self) -> str:
        """The help text, naming other settings as keywords (``render(..., flags=True)`` of
        ``help_template`` names them as options)."""
        return render(self.help_template)

    @property
    def help_template(self) -> str:
        return str(self.field.metadata["help"])
