"""The pool: the best completed trials of a study, kept in the run folder's ``pool/`` for
ensemble selection (their fold models' weights and out-of-fold predictions, one safetensors
file each), with the rows, folds and targets those predictions cover and each fold's
preprocessing."""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from dnntune._names import first_line, setting_name
from dnntune.artifacts import (
    FoldNetwork,
    LoadedModel,
    ModelManifest,
    OutOfFold,
    RunRecord,
    atomic_path,
    member,
    out_of_fold,
    write_json,
)
from dnntune.data import Preprocessor
from dnntune.engine import Metric
from dnntune.exceptions import DataError
from dnntune.model import make_model
from dnntune.objective import TrialModels

__all__ = ["CHOSEN", "POOL", "Pool", "PoolEntry"]

POOL = "pool"
TRUTH = "truth.safetensors"
CHOSEN = "selection.json"  # the rounds chosen with dnntune ensemble --size
META = "dnntune"


@dataclass
class PoolEntry:
    """A pooled trial: its number, value, parameters and folds, and its file."""

    trial: int
    value: float
    params: dict[str, Any]
    d_out: int
    folds: list[dict[str, Any]]
    path: Path

    def predictions(self) -> np.ndarray:
        return _tensors(self.path)["oof"].numpy()

    def fold_state(self, fold: int) -> dict[str, torch.Tensor]:
        prefix = f"fold{fold}."
        return {k[len(prefix) :]: v for k, v in _tensors(self.path).items() if k.startswith(prefix)}


def _damaged(path: Path, exc: BaseException) -> DataError:
    return DataError(
        f"the ensemble pool's file {str(path)!r} is damaged ({first_line(exc)}); restore the "
        f"run folder, or tune with a new {setting_name('study')} to rebuild the pool"
    )


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    """A pool file's tensors, refused in one line when the file is damaged."""
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error for a damaged file
        raise _damaged(path, exc) from None


class Pool:
    """The best trials of a study kept for ensemble selection in ``run_dir / 'pool'``."""

    def __init__(self, run_dir: Path, size: int, metric: Metric) -> None:
        self.directory = run_dir / POOL
        self.size = size
        self.metric = metric

    def entries(self) -> list[PoolEntry]:
        """The pooled trials, best first (files deleted meanwhile are skipped)."""
        out = []
        for path in sorted(self.directory.glob("trial*.safetensors")):
            try:
                with safe_open(str(path), "pt") as f:
                    meta = json.loads((f.metadata() or {})[META])
            except (OSError, KeyError, ValueError):  # deleted, or being written
                continue
            out.append(
                PoolEntry(
                    meta["trial"], meta["value"], meta["params"], meta["d_out"], meta["folds"], path
                )
            )
        sign = -1.0 if self.metric.direction == "maximize" else 1.0
        return sorted(out, key=lambda e: (sign * e.value, e.trial))

    def add(self, best: TrialModels, record: RunRecord) -> None:
        """Keep a completed trial when it is among the ``size`` best; drop the one it pushes
        out. ``record`` is the run's (the file rows and folds of the dataset's rows)."""
        oof = out_of_fold(best, record.task)
        if oof is None or not math.isfinite(best.value):
            return
        entries = self.entries()
        if len(entries) >= self.size and not self.metric.better(best.value, entries[-1].value):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_shared(best, oof, record)
        tensors = {"oof": torch.from_numpy(np.ascontiguousarray(oof.predictions, np.float32))}
        for fold, state in zip(best.folds, best.states, strict=True):
            tensors.update({f"fold{fold.index}.{k}": v.contiguous() for k, v in state.items()})
        meta = {
            "trial": best.trial_number,
            "value": best.value,
            "params": best.params,
            "d_out": best.d_out,
            "folds": [
                {
                    "fold": fold.index,
                    "score": score,
                    "best_epoch": epoch,
                    "y_shift": fold.tensors.y_shift,
                    "y_scale": fold.tensors.y_scale,
                }
                for fold, score, epoch in zip(
                    best.folds, best.fold_scores, best.best_epochs, strict=True
                )
            ],
        }
        path = self.directory / f"trial{best.trial_number}.safetensors"
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={META: json.dumps(meta, default=str)})
        for extra in self.entries()[self.size :]:
            extra.path.unlink(missing_ok=True)

    def _write_shared(self, best: TrialModels, oof: OutOfFold, record: RunRecord) -> None:
        """The rows, folds and targets of the out-of-fold predictions, and each fold's
        preprocessing: written by the first trial that gets there."""
        truth = self.directory / TRUTH
        if not truth.is_file():
            row_ids, folds = record.file_rows(oof.rows)
            arrays = {
                "rows": oof.rows.astype(np.int64),
                "row_ids": np.asarray(row_ids, dtype=np.int64),
                "folds": np.asarray(folds, dtype=np.int64),
                "truth": np.ascontiguousarray(oof.truth),
            }
            with atomic_path(truth) as tmp:
                save_file({k: torch.from_numpy(v) for k, v in arrays.items()}, str(tmp))
        for fold in best.folds:
            path = self.directory / f"fold{fold.index}.json"
            if not path.is_file():
                write_json(path, fold.preprocessor.to_dict())

    def preprocessing(self, fold: int) -> dict[str, Any]:
        """Fold ``fold``'s fitted preprocessing, as every pooled trial of the study used it."""
        path = self.directory / f"fold{fold}.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise _damaged(path, exc) from None
        return data

    def loaded(self, trial: int, like: ModelManifest) -> LoadedModel | None:
        """A pooled trial's fold networks as a model in memory (None when it is not pooled);
        ``like`` gives the run's record (task, columns, classes)."""
        entry = next((e for e in self.entries() if e.trial == trial), None)
        if entry is None:
            return None
        folds, loaded = [], LoadedModel(like)
        best = member(entry.trial, 1.0, entry.value, entry.params, entry.d_out)
        arch = best.architecture
        for fold in entry.folds:
            k = int(fold["fold"])
            pre = Preprocessor.from_dict(self.preprocessing(k))
            model = make_model(layout=pre.layout(), **arch)
            model.load_state_dict(entry.fold_state(k))
            loaded.preprocessors.append(pre)
            loaded.models.append(model.eval())
            loaded.y_shifts.append(fold["y_shift"])
            loaded.y_scales.append(fold["y_scale"])
            folds.append(
                FoldNetwork(
                    trial=trial,
                    weights="",
                    sha256="",
                    preprocessing=pre.to_dict(),
                    y_shift=fold["y_shift"],
                    y_scale=fold["y_scale"],
                    fold=k,
                    score=fold["score"],
                    best_epoch=fold["best_epoch"],
                )
            )
        loaded.manifest = like.replace(members=(best,), folds=tuple(folds), refit=())
        loaded.weights = loaded.manifest.shares()
        return loaded

    def chosen_rounds(self) -> int | None:
        """The rounds a user chose with ``dnntune ensemble --size`` (None: none chosen)."""
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            data = json.loads((self.directory / CHOSEN).read_text(encoding="utf-8"))
            rounds = data["rounds"]
            if isinstance(rounds, int) and not isinstance(rounds, bool) and rounds >= 1:
                return rounds
        return None

    def truth(self) -> dict[str, np.ndarray]:
        path = self.directory / TRUTH
        if not path.is_file():
            raise DataError(
                f"no ensemble pool in {str(self.directory.parent)!r} (it has no {POOL}/{TRUTH}); "
                "run dnntune tune with the ensemble on"
            )
        return {k: v.numpy() for k, v in _tensors(path).items()}
