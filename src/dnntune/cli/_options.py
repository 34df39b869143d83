"""Settings as command-line options: each command gets a Typer option per setting from the
setting's one definition (``dnntune.config``)."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Annotated, Any

import typer

from dnntune._names import render
from dnntune.config import SETTINGS, Setting

__all__ = ["with_settings"]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# What a user writes for a setting, where its type alone says too little.
_METAVARS = {
    "data": "FILE",
    "space": "FILE|NAME",
    "storage": "URL",
    "output_dir": "DIR",
    "study": "NAME",
    "fold_column": "COLUMN",
    "device": "auto|cpu|cuda[:N]",
    "timeout": "SECONDS",
}


def _metavar(s: Setting, base: Any) -> str | None:
    if s.name in _METAVARS:
        return _METAVARS[s.name]
    if typing.get_origin(s.hint) is tuple:
        return "COLUMN[,COLUMN...]"
    if isinstance(base, type) and issubclass(base, StrEnum):
        return "|".join(m.value for m in base)
    return {int: "INTEGER", float: "NUMBER", str: "TEXT"}.get(base)


def _option(s: Setting, default: Any, help: str | None) -> inspect.Parameter:
    """A setting as a keyword-only Typer option: the CLI's view of its one definition."""
    args = [a for a in typing.get_args(s.hint) if a is not type(None)]
    base = args[0] if args else s.hint
    optional = type(None) in typing.get_args(s.hint)
    decl, kind = _flag(s.name), s.hint
    if base is bool:
        decl, kind = f"{decl}/--no-{decl[2:]}", bool
    elif typing.get_origin(s.hint) is tuple:
        kind, default = list[str] | None, None  # repeatable, each comma-separated
    elif isinstance(base, type) and issubclass(base, StrEnum):
        kind = str | None if optional else str
        default = default.value if isinstance(default, StrEnum) else default
    option = typer.Option(
        decl,
        help=help or render(s.help_template, flags=True),
        metavar=None if base is bool else _metavar(s, base),
    )
    return inspect.Parameter(
        s.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, option]
    )


def with_settings(
    names: Iterable[str], **changed: tuple[Any, str]
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command an option for each named setting; its body receives their values as
    ``settings`` (a dict for :meth:`TuneConfig.of`). ``changed``: name -> (default, help) where
    the command reads a setting its own way."""
    chosen = list(names)

    def wrap(body: Callable[..., None]) -> Callable[..., None]:
        own = inspect.signature(body, eval_str=True)
        params = []
        for name in chosen:
            default, help = changed.get(name, (SETTINGS[name].default, None))
            params.append(_option(SETTINGS[name], default, help))
        params += [p for p in own.parameters.values() if p.name != "settings"]

        @functools.wraps(body)
        def command(**kwargs: Any) -> None:
            settings = {n: kwargs.pop(n) for n in chosen}
            settings = {k: () if v is None and k in _LISTS else v for k, v in settings.items()}
            body(settings=settings, **kwargs)

        command.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return wrap


_LISTS = {n for n, s in SETTINGS.items() if typing.get_origin(s.hint) is tuple}
