"""The model folder on disk: its one reader, its one writer, and loading its networks.

A folder holds ``manifest.json`` and the files it names: ``*.safetensors`` weights with their
SHA-256 and an out-of-fold CSV. Every writer (the study, the ensemble, refit, the estimators)
goes through :func:`write_model`: under a lock on the folder it writes new files under new
names, then replaces the manifest in one ``os.replace``, then deletes the files no manifest
names, so a process killed at any point leaves a manifest whose files are all present.
Nothing here pickles or unpickles.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from dnntune._names import first_line
from dnntune.artifacts._files import atomic_path, locked, now_iso, sha256, write_csv, write_json
from dnntune.artifacts._manifest import (
    MANIFEST,
    PICKLE_SUFFIXES,
    FoldNetwork,
    ModelManifest,
    Network,
    refuse_pickle,
)
from dnntune.data import Preprocessor, Scale
from dnntune.exceptions import DataError
from dnntune.model import make_model

__all__ = [
    "LoadedModel",
    "ModelWriter",
    "load_model",
    "model_dir",
    "read_json",
    "read_manifest",
    "saved_trial",
    "write_model",
]


def model_dir(path: str | Path) -> Path:
    """The model folder for a run folder, a model folder or its manifest; refuses pickles."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        refuse_pickle(path)
    if not path.exists():
        raise DataError(f"model {str(path)!r} does not exist; pass a run folder of dnntune tune")
    if path.is_file() and path.name == MANIFEST:
        path = path.parent
    if (path / "model" / MANIFEST).is_file():
        return path / "model"
    if (path / MANIFEST).is_file():
        return path
    pickles = (
        [p for p in sorted(path.iterdir()) if p.suffix.lower() in PICKLE_SUFFIXES]
        if path.is_dir()
        else []
    )
    if pickles:
        refuse_pickle(pickles[0])
    raise DataError(
        f"no {MANIFEST} in {str(path)!r} or its model/ folder; pass a run folder of dnntune tune"
    )


def read_json(path: Path, what: str, fix: str) -> Any:
    """A JSON file, refused in one line when it cannot be read or parsed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{str(path)!r} is not {what} ({first_line(exc)}); {fix}") from None


def read_manifest(directory: Path) -> ModelManifest:
    """A model folder's manifest, checked (:meth:`ModelManifest.from_dict`)."""
    raw = read_json(
        directory / MANIFEST, "a readable JSON manifest", "restore the model folder or tune again"
    )
    return ModelManifest.from_dict(raw, directory)


def saved_trial(directory: Path) -> tuple[int, float] | None:
    """The study's best trial as the folder records it, (number, value); None when there is
    no readable model or it records none."""
    try:
        manifest = read_manifest(directory)
    except (DataError, OSError):
        return None
    if manifest.best_trial is None or manifest.best_value is None:
        return None
    return manifest.best_trial, manifest.best_value


class ModelWriter:
    """Writes one new state of a model folder; made by :func:`write_model`, which holds the
    folder's lock. ``current`` is the manifest in place when the lock was taken (None: none,
    or unreadable)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.current: ModelManifest | None = None
        if (directory / MANIFEST).is_file():
            with contextlib.suppress(DataError, OSError):
                self.current = read_manifest(directory)

    def weights(self, name: str, state: dict[str, torch.Tensor]) -> tuple[str, str]:
        """A network's weights as a safetensors file: (file name, SHA-256)."""
        with atomic_path(self.directory / name) as tmp:
            tensors = {k: v.detach().cpu().clone().contiguous() for k, v in state.items()}
            save_file(tensors, str(tmp))
        return name, sha256(self.directory / name)

    def fold_network(
        self,
        trial: int | None,
        fold: int,
        state: dict[str, torch.Tensor],
        *,
        preprocessing: dict[str, Any],
        y_shift: Scale,
        y_scale: Scale,
        score: float | None = None,
        best_epoch: int | None = None,
    ) -> FoldNetwork:
        """Write a fold's network and return its entry (``trial<N>_fold<K>.safetensors``)."""
        stem = "model" if trial is None else f"trial{trial}"
        name, digest = self.weights(f"{stem}_fold{fold}.safetensors", state)
        return FoldNetwork(
            trial=trial,
            weights=name,
            sha256=digest,
            preprocessing=preprocessing,
            y_shift=y_shift,
            y_scale=y_scale,
            fold=fold,
            score=score,
            best_epoch=best_epoch,
        )

    def csv(self, name: str, frame: pd.DataFrame) -> str:
        write_csv(self.directory / name, frame)
        return name

    def commit(self, manifest: ModelManifest) -> None:
        """Replace the manifest with ``manifest`` (stamped now), then delete the files of the
        folder it does not name: an earlier model's, or the temporary files of a process
        killed while it wrote."""
        manifest = manifest.replace(created_at=now_iso())
        write_json(self.directory / MANIFEST, manifest.to_dict())
        keep = {MANIFEST, ".lock", *manifest.files()}
        for path in self.directory.iterdir():
            if path.is_file() and path.name not in keep:
                path.unlink(missing_ok=True)
        self.current = manifest


@contextlib.contextmanager
def write_model(directory: Path) -> Iterator[ModelWriter]:
    """The model folder's writer, with the folder locked against other processes."""
    if directory.exists() and not directory.is_dir():
        raise DataError(f"{str(directory)!r} is a file; pass a folder for the model")
    directory.mkdir(parents=True, exist_ok=True)
    with locked(directory):
        yield ModelWriter(directory)


@dataclass
class LoadedModel:
    """A model folder's networks with their preprocessing and target scales. ``weights``: each
    network's share of the prediction (its member's weight split over the member's
    networks)."""

    manifest: ModelManifest
    preprocessors: list[Preprocessor] = field(default_factory=list)
    models: list[nn.Module] = field(default_factory=list)
    y_shifts: list[Scale] = field(default_factory=list)
    y_scales: list[Scale] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    refit: bool = False

    def shares(self) -> np.ndarray:
        n = len(self.models)
        return np.asarray(self.weights) if self.weights else np.full(n, 1.0 / n)


def load_model(path: str | Path, *, refit: bool = False) -> LoadedModel:
    """Load the fold networks (or the refit ones) of a model folder: format, file names,
    architectures and checksums checked; nothing is unpickled. An ensemble's networks come
    with their weights."""
    directory = model_dir(path)
    manifest = read_manifest(directory)
    if refit and not manifest.refit:
        raise DataError(f"{str(directory)!r} has no refit model; run dnntune refit first")
    loaded = LoadedModel(manifest, weights=manifest.shares(refit=refit), refit=refit)
    for network in manifest.networks(refit=refit):
        _load_network(directory, network, manifest.member(network.trial).architecture, loaded)
    return loaded


def _load_network(
    directory: Path, network: Network, arch: dict[str, Any], loaded: LoadedModel
) -> None:
    weights = directory / network.weights
    if not weights.is_file() or sha256(weights) != network.sha256:
        raise DataError(
            f"weights {str(weights)!r} are missing or do not match the manifest's checksum"
        )
    try:
        pre = Preprocessor.from_dict(network.preprocessing)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(
            f"the manifest in {str(directory)!r} has damaged preprocessing for "
            f"{network.weights} ({first_line(exc)}); restore the model folder or tune again"
        ) from None
    model = make_model(layout=pre.layout(), **arch)
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error for a file of another kind
        raise DataError(
            f"weights {str(weights)!r} are not a safetensors file ({first_line(exc)}); dnntune "
            "loads nothing else"
        ) from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # shapes that do not match the architecture
        raise DataError(
            f"weights {str(weights)!r} do not fit the manifest's network: {first_line(exc)}"
        ) from None
    loaded.preprocessors.append(pre)
    loaded.models.append(model.eval())
    for scales, value in ((loaded.y_shifts, network.y_shift), (loaded.y_scales, network.y_scale)):
        if isinstance(value, list) and len(value) != arch["d_out"]:
            raise DataError(
                f"the manifest in {str(directory)!r} gives {len(value)} target scales for a "
                f"network of {arch['d_out']} outputs; restore the model folder or tune again"
            )
        scales.append(value)
