"""Save and load models as safetensors weights plus a JSON manifest; atomic file writes.

Nothing here pickles or unpickles: weights are safetensors, everything else is JSON.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from dnntune.data import Preprocessor
from dnntune.exceptions import DataError
from dnntune.model import make_mlp
from dnntune.objective import BestModel, model_kwargs

__all__ = [
    "FORMAT_VERSION",
    "LoadedModel",
    "atomic_path",
    "load_model",
    "save_model",
    "write_json",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_model(best: BestModel, directory: Path, info: dict[str, Any]) -> Path:
    """Write the best trial's fold models to ``directory`` (replaced as a whole, atomically).

    ``info`` adds task, metric, columns, data and versions to the manifest.
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        folds: list[dict[str, Any]] = []
        for fold, state in zip(best.folds, best.states, strict=True):
            name = f"fold_{fold.index}.safetensors"
            save_file(
                {k: v.detach().clone().contiguous() for k, v in state.items()}, str(staging / name)
            )
            folds.append(
                {
                    "fold": fold.index,
                    "weights": name,
                    "sha256": _sha256(staging / name),
                    "score": best.fold_scores[len(folds)],
                    "best_epoch": best.best_epochs[len(folds)],
                    "y_shift": fold.tensors.y_shift,
                    "y_scale": fold.tensors.y_scale,
                    "preprocessing": fold.preprocessor.to_dict(),
                }
            )
        manifest = {
            "format": "dnntune-model",
            "format_version": FORMAT_VERSION,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "trial_number": best.trial_number,
            "value": best.value,
            "params": best.params,
            "architecture": {"d_out": best.d_out, **model_kwargs(best.params)},
            **info,
            "folds": folds,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        old = directory.with_name(f".{directory.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if directory.exists():
            os.replace(directory, old)
        os.replace(staging, directory)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


@dataclass
class LoadedModel:
    manifest: dict[str, Any]
    preprocessors: list[Preprocessor]
    models: list[nn.Module]


def load_model(directory: Path) -> LoadedModel:
    """Load a saved model folder: check format version and weight checksums; no unpickling."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise DataError(f"no {MANIFEST} in {str(directory)!r}; pass a model folder dnntune wrote")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if (
        manifest.get("format") != "dnntune-model"
        or manifest.get("format_version") != FORMAT_VERSION
    ):
        raise DataError(
            f"{str(path)!r} is not a dnntune model manifest of format version {FORMAT_VERSION}"
        )
    pres: list[Preprocessor] = []
    models: list[nn.Module] = []
    for fold in manifest["folds"]:
        weights = Path(directory) / fold["weights"]
        if weights.suffix != ".safetensors" or _sha256(weights) != fold["sha256"]:
            raise DataError(f"weights {str(weights)!r} do not match the manifest's checksum")
        pre = Preprocessor.from_dict(fold["preprocessing"])
        arch = manifest["architecture"]
        model = make_mlp(d_in=pre.n_features, **arch)
        model.load_state_dict(load_file(str(weights)))
        pres.append(pre)
        models.append(model.eval())
    return LoadedModel(manifest, pres, models)


def torch_versions() -> dict[str, str]:
    import platform

    import optuna

    from dnntune import __version__

    return {
        "dnntune": __version__,
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "python": platform.python_version(),
    }
