"""The model folder's description (``manifest.json``): one typed record, read as untrusted input.

A model folder delivers one or more *members* (the trials of an ensemble, or the one trial, or
an estimator's own network), each with a weight, its parameters and its network's shape. Each
member has one network per fold (``folds``) and, after ``dnntune refit``, one trained on all
rows (``refit``). A network names its safetensors file (with its SHA-256), the preprocessing
fitted on its training rows and the target's shift and scale. ``best_trial`` and
``best_value`` are the study's best trial, which a resumed study or a worker compares new
trials with, whatever is delivered. ``cut_by_deadline``: no trial completed within the time
limit, and the model is the folds a trial finished before the deadline cut it.

:meth:`ModelManifest.from_dict` is the only reader: every key is checked for its type, every
file name for staying inside the folder, every network shape against its parameters' rules,
and the weights for summing to one; a damaged or hostile manifest is refused in one line.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dnntune.config import MetricName, Task
from dnntune.data import Scale
from dnntune.exceptions import DataError
from dnntune.objective import MODEL_PARAMS
from dnntune.space import PARAMETERS

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "PICKLE_SUFFIXES",
    "FoldNetwork",
    "Member",
    "ModelManifest",
    "Network",
    "RefitNetwork",
    "refuse_pickle",
]

FORMAT = "dnntune-model"
# The model folder's format; a folder in another format is refused (see ModelManifest.read).
FORMAT_VERSION = 5
MANIFEST = "manifest.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".joblib")


def refuse_pickle(path: Path) -> None:
    raise DataError(
        f"{str(path)!r} is a pickle-based file ({path.suffix}); dnntune never unpickles a model "
        "because loading a pickle runs code from it; pass a run folder written by dnntune tune"
    )


class _Damaged(ValueError):
    """A manifest entry of the wrong kind; becomes one DataError naming the folder."""


_T = TypeVar("_T")


def _get(d: Any, key: str, kind: Callable[[Any], _T], default: Any = ...) -> _T:
    if not isinstance(d, dict):
        raise _Damaged(f"an entry is {type(d).__name__}, not an object")
    if key not in d:
        if default is ...:
            raise KeyError(key)
        return default
    return kind(d[key])


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Damaged(f"{v!r} is not an integer")
    return v


def _opt(kind: Callable[[Any], _T]) -> Callable[[Any], _T | None]:
    return lambda v: None if v is None else kind(v)


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Damaged(f"{v!r} is not a number")
    return float(v)


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise _Damaged(f"{v!r} is not text")
    return v


def _dict(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _Damaged(f"{v!r} is not an object")
    return v


def _list(v: Any) -> list[Any]:
    if not isinstance(v, list):
        raise _Damaged(f"{v!r} is not a list")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Damaged(f"{v!r} is not true or false")
    return v


def _scale(v: Any) -> Scale:
    """A target shift or scale: a number, or one per output of a network with several."""
    if isinstance(v, list):
        return [_float(x) for x in v]
    return _float(v)


@dataclass(frozen=True, kw_only=True)
class Network:
    """One network of the folder: its weight file, preprocessing and target scale. ``trial``
    names the member it belongs to (None: an estimator's own network)."""

    trial: int | None
    weights: str
    sha256: str
    preprocessing: dict[str, Any] = field(repr=False)
    y_shift: Scale = 0.0
    y_scale: Scale = 1.0

    @classmethod
    def _fields_from(cls, d: Any) -> dict[str, Any]:
        return {
            "trial": _get(d, "trial", _opt(_int)),
            "weights": _weights_name(_get(d, "weights", lambda v: v)),
            "sha256": _get(d, "sha256", _str),
            "preprocessing": _get(d, "preprocessing", _dict),
            "y_shift": _get(d, "y_shift", _scale),
            "y_scale": _get(d, "y_scale", _scale),
        }


@dataclass(frozen=True, kw_only=True)
class FoldNetwork(Network):
    """A network trained on the other folds: its validation score and best epoch there."""

    fold: int
    score: float | None = None
    best_epoch: int | None = None

    @classmethod
    def from_dict(cls, d: Any) -> FoldNetwork:
        return cls(
            **cls._fields_from(d),
            fold=_get(d, "fold", _int),
            score=_get(d, "score", _opt(_float), None),
            best_epoch=_get(d, "best_epoch", _opt(_int), None),
        )


@dataclass(frozen=True, kw_only=True)
class RefitNetwork(Network):
    """A member's network trained on every row (``dnntune refit``) and how it was trained."""

    epochs: int
    lr_schedule: str
    schedule_epochs: int
    final_learning_rate: float
    rows: int

    @classmethod
    def from_dict(cls, d: Any) -> RefitNetwork:
        return cls(
            **cls._fields_from(d),
            epochs=_get(d, "epochs", _int),
            lr_schedule=_get(d, "lr_schedule", _str),
            schedule_epochs=_get(d, "schedule_epochs", _int),
            final_learning_rate=_get(d, "final_learning_rate", _float),
            rows=_get(d, "rows", _int),
        )


@dataclass(frozen=True)
class Member:
    """A delivered configuration: its trial (None: an estimator's own), its share of every
    prediction, its cross-validated value, its parameters and its network's shape (``d_out``
    and ``make_model``'s keywords)."""

    trial: int | None
    weight: float
    value: float | None
    params: dict[str, Any]
    architecture: dict[str, Any]

    @classmethod
    def from_dict(cls, d: Any) -> Member:
        return cls(
            _get(d, "trial", _opt(_int)),
            _get(d, "weight", _float),
            _get(d, "value", _opt(_float)),
            _get(d, "params", _dict),
            _architecture(_get(d, "architecture", lambda v: v)),
        )

    @property
    def d_out(self) -> int:
        return int(self.architecture["d_out"])


@dataclass(frozen=True, kw_only=True)
class ModelManifest:
    """What a model folder delivers and how it was made (``manifest.json``)."""

    task: Task
    metric: MetricName
    direction: str | None
    columns: list[str]
    ignored_columns: dict[str, str]
    target: list[str]
    classes: list[Any] | None
    members: tuple[Member, ...]
    folds: tuple[FoldNetwork, ...]
    refit: tuple[RefitNetwork, ...] = ()
    best_trial: int | None = None
    best_value: float | None = None
    oof_value: float | None = None
    oof_predictions: str | None = None
    data: dict[str, Any] | None = None
    config: dict[str, Any] | None = field(default=None, repr=False)
    versions: dict[str, str] = field(default_factory=dict)
    estimator: dict[str, Any] | None = None
    cut_by_deadline: bool = False
    created_at: str = ""

    @property
    def is_ensemble(self) -> bool:
        return len(self.members) > 1

    def member(self, trial: int | None) -> Member:
        for m in self.members:
            if m.trial == trial:
                return m
        raise KeyError(f"member trial {trial}")

    def networks(self, *, refit: bool = False) -> tuple[Network, ...]:
        return self.refit if refit else self.folds

    def shares(self, *, refit: bool = False) -> list[float]:
        """Each network's share of a prediction: its member's weight, split over the member's
        networks."""
        networks = self.networks(refit=refit)
        counts = {m.trial: sum(n.trial == m.trial for n in networks) for m in self.members}
        return [self.member(n.trial).weight / counts[n.trial] for n in networks]

    def best_epochs(self, trial: int | None) -> list[int]:
        """The best epoch of each of a member's fold networks (those that recorded one)."""
        return [f.best_epoch for f in self.folds if f.trial == trial and f.best_epoch is not None]

    def files(self) -> set[str]:
        """The files of the folder this manifest names (besides itself)."""
        names = {n.weights for n in (*self.folds, *self.refit)}
        return names | ({self.oof_predictions} if self.oof_predictions else set())

    def replace(self, **changes: Any) -> ModelManifest:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = {"format": FORMAT, "format_version": FORMAT_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("task", "metric"):
                value = value.value
            elif f.name in ("members", "folds", "refit"):
                value = [dataclasses.asdict(m) for m in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Any, directory: Path) -> ModelManifest:
        """The manifest of the folder ``directory``, checked; one DataError when it is not one
        this dnntune reads."""
        path = directory / MANIFEST
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DataError(f"{str(path)!r} is not a dnntune model manifest")
        if data.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"the model in {str(directory)!r} has format {data.get('format_version')}; this "
                f"dnntune reads format {FORMAT_VERSION}; tune again to get a model it can load"
            )
        try:
            manifest = cls._parse(data)
        except KeyError as exc:
            raise _refused(directory, f"lacks {exc}") from None
        except _Architecture as exc:
            raise DataError(f"the manifest in {str(directory)!r} {exc}") from None
        except _OutsideFolder as exc:
            raise DataError(
                f"the manifest in {str(directory)!r} names weights {exc.args[0]!r} outside its "
                "folder; a model folder only names files in itself"
            ) from None
        except (TypeError, ValueError) as exc:
            raise _refused(directory, f"is damaged ({exc})") from None
        manifest._check(directory)
        return manifest

    @classmethod
    def _parse(cls, d: dict[str, Any]) -> ModelManifest:
        return cls(
            task=Task(_get(d, "task", _str)),
            metric=MetricName(_get(d, "metric", _str)),
            direction=_get(d, "direction", _opt(_str), None),
            columns=[_str(c) for c in _get(d, "columns", _list)],
            ignored_columns=_get(d, "ignored_columns", _dict),
            target=[_str(c) for c in _get(d, "target", _list)],
            classes=_get(d, "classes", _opt(_list)),
            members=tuple(Member.from_dict(m) for m in _get(d, "members", _list)),
            folds=tuple(FoldNetwork.from_dict(f) for f in _get(d, "folds", _list)),
            refit=tuple(RefitNetwork.from_dict(r) for r in _get(d, "refit", _list, [])),
            best_trial=_get(d, "best_trial", _opt(_int), None),
            best_value=_get(d, "best_value", _opt(_float), None),
            oof_value=_get(d, "oof_value", _opt(_float), None),
            oof_predictions=_get(d, "oof_predictions", _opt(_file_name), None),
            data=_get(d, "data", _opt(_dict), None),
            config=_get(d, "config", _opt(_dict), None),
            versions=_get(d, "versions", _dict, {}),
            estimator=_get(d, "estimator", _opt(_dict), None),
            cut_by_deadline=_get(d, "cut_by_deadline", _bool, False),
            created_at=_get(d, "created_at", _str, ""),
        )

    def _check(self, directory: Path) -> None:
        """What holds across entries: members, their networks and weights."""
        trials = [m.trial for m in self.members]
        problem = None
        if not self.members or not self.folds:
            problem = "delivers no network"
        elif len(set(trials)) != len(trials):
            problem = "lists a member twice"
        elif any(n.trial not in trials for n in (*self.folds, *self.refit)):
            problem = "has a network of no member"
        elif not all(math.isfinite(m.weight) and m.weight > 0 for m in self.members):
            problem = "weighs a member at zero, below or not at all"
        elif not math.isclose(sum(m.weight for m in self.members), 1.0, rel_tol=1e-6):
            total = sum(m.weight for m in self.members)
            problem = f"weighs its networks {total:.6g} in all, not 1"
        elif any(all(f.trial != t for f in self.folds) for t in trials):
            problem = "has a member with no fold network"
        if problem is not None:
            raise _refused(directory, problem)


def _refused(directory: Path, what: str) -> DataError:
    return DataError(
        f"the manifest in {str(directory)!r} {what}; restore the model folder or tune again"
    )


class _OutsideFolder(ValueError):
    pass


class _Architecture(ValueError):
    pass


def _file_name(name: Any) -> str:
    """A file a manifest names: a plain name inside the model folder."""
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise _OutsideFolder(name)
    return name


def _weights_name(name: Any) -> str:
    """A weight file a manifest names: a safetensors file inside the model folder."""
    name = _file_name(name)
    if not name.endswith(".safetensors"):
        refuse_pickle(Path(name))
    return name


def _architecture(arch: Any) -> dict[str, Any]:
    """A member's network shape, checked against the parameters' own rules before anything
    is allocated."""
    wanted = {"d_out", *MODEL_PARAMS}
    if not isinstance(arch, dict) or set(arch) != wanted:
        raise _Architecture(
            f"has no valid architecture (it needs {', '.join(sorted(wanted))}); restore the "
            "model folder or tune again"
        )
    problems = [
        f"{k} {PARAMETERS[k].check(arch[k])}" for k in MODEL_PARAMS if PARAMETERS[k].check(arch[k])
    ]
    d_out = arch["d_out"]
    if isinstance(d_out, bool) or not isinstance(d_out, int) or d_out < 1:
        problems.append(f"d_out must be a positive integer, but got {d_out!r}")
    if problems:
        raise _Architecture(f"has an invalid architecture: {'; '.join(problems)}")
    return arch
