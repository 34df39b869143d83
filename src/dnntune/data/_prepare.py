"""One fold's preprocessing fitted on its training rows, its tensors on the device, and the
cache that keeps prepared folds between trials while they fit in memory."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from dnntune._names import setting_name
from dnntune.config import Preprocessing, Task
from dnntune.data._dataset import Dataset
from dnntune.data._preprocess import Preprocessor

__all__ = [
    "FOLD_CACHE_SHARE",
    "FoldCache",
    "FoldTensors",
    "PreparedFold",
    "Scale",
    "free_memory",
    "prepare_fold",
]

# A regression target's shift or scale: a number, or one per target column.
Scale = float | list[float]

# Share of the memory free (on the training device) that prepared folds may keep between
# trials; workers sharing a machine split it.
FOLD_CACHE_SHARE = 0.5


@dataclass
class FoldTensors:
    """One fold's preprocessed data on the device.

    ``y_train`` is what the loss sees: (rows, outputs) float for BCE/MSE (standardized for
    regression) and (rows,) int64 class codes for cross-entropy. ``y_valid_eval`` is the
    validation target in its original units (class codes, 0/1 labels or raw regression values)
    for the metric. ``y_scale``/``y_shift`` undo the standardization of regression outputs.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_valid: torch.Tensor
    y_valid_eval: np.ndarray
    task: Task
    y_shift: Scale = 0.0
    y_scale: Scale = 1.0

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory the inputs and the training target take on the device."""
        tensors = (self.x_train, self.y_train, self.x_valid)
        return sum(t.element_size() * t.nelement() for t in tensors)

    def without_inputs(self) -> FoldTensors:
        """These tensors with no rows of inputs (new empty tensors, so the data's memory is
        freed): what a saved model needs of its fold, the validation target and the target's
        scale."""
        return replace(
            self,
            x_train=self.x_train.new_empty((0, *self.x_train.shape[1:])),
            y_train=self.y_train.new_empty((0, *self.y_train.shape[1:])),
            x_valid=self.x_valid.new_empty((0, *self.x_valid.shape[1:])),
        )


@dataclass
class PreparedFold:
    index: int
    preprocessor: Preprocessor
    tensors: FoldTensors


def prepare_fold(
    dataset: Dataset,
    fold: int,
    device: torch.device,
    preprocessing: Preprocessing | None = None,
) -> PreparedFold:
    """Fit the preprocessing on the fold's training rows only and move both parts to the device.

    ``fold=-1`` trains on every row (no validation part), as a refit does. The copy inputs
    (``preprocessing.copy_encoding``, see :class:`Preprocessor`) are fitted on the training
    rows' target.
    """
    train = dataset.folds != fold
    y = dataset.target.values
    task = dataset.task
    pre = Preprocessor(dataset.plan, preprocessing or Preprocessing())
    x_train = pre.fit_transform(
        dataset.features.loc[train], y[train], task, dataset.target.n_outputs
    )
    x_valid = pre.transform(dataset.features.loc[~train])
    shift: Scale = 0.0
    scale: Scale = 1.0
    if task is Task.MULTICLASS or task is Task.MULTILABEL:
        y_train = torch.from_numpy(y[train])
    else:
        yt = y[train].astype(np.float32).reshape(int(train.sum()), -1)
        if task is Task.REGRESSION:
            shift, scale = _standardization(yt)
            yt = ((yt - np.asarray(shift)) / np.asarray(scale)).astype(np.float32)
        y_train = torch.from_numpy(yt)
    tensors = FoldTensors(
        torch.from_numpy(x_train).to(device),
        y_train.to(device),
        torch.from_numpy(x_valid).to(device),
        y[~train],
        task,
        shift,
        scale,
    )
    return PreparedFold(fold, pre, tensors)


def _standardization(y: np.ndarray) -> tuple[Scale, Scale]:
    """Each target column's mean and standard deviation (1 for a constant one): numbers for
    one column, lists for several."""
    # In float64: the squares of float32 values far from 1 (1e-30, 1e30) underflow to a zero
    # standard deviation or overflow to an infinite one.
    columns = [np.ascontiguousarray(y[:, j], dtype=np.float64) for j in range(y.shape[1])]
    shift = [float(c.mean()) for c in columns]
    scale = [float(c.std()) or 1.0 for c in columns]
    return (shift[0], scale[0]) if len(columns) == 1 else (shift, scale)


def free_memory(device: torch.device) -> int | None:
    """Bytes free for new tensors on ``device``: CUDA's free memory, or Linux's MemAvailable
    (None where neither is known)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


class FoldCache:
    """Prepared folds kept for the next trials while together they take at most ``budget``
    bytes (default: ``share`` of the memory free when the first is prepared).

    A fold past that is prepared again by each trial that reaches it, so a table too large to
    hold K times over still trains. Trials run the folds in order and pruning ends most of
    them early, so the first folds are the ones kept.
    """

    def __init__(
        self,
        dataset: Dataset,
        device: torch.device,
        preprocessing: Preprocessing,
        *,
        budget: int | None = None,
        share: float = FOLD_CACHE_SHARE,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        self.dataset = dataset
        self.device = device
        self.preprocessing = preprocessing
        self.budget = budget
        self.share = share
        self.on_note = on_note
        self._folds: dict[int, PreparedFold] = {}
        self._noted: set[str] = set()

    @property
    def kept(self) -> list[int]:
        """The folds kept prepared between trials."""
        return sorted(self._folds)

    def __getitem__(self, k: int) -> PreparedFold:
        cached = self._folds.get(k)
        if cached is not None:
            return cached
        if self.budget is None:
            free = free_memory(self.device)
            # Free memory unknown: no limit. Nothing free: no fold kept.
            self.budget = sys.maxsize if free is None else int(self.share * free)
        prepared = prepare_fold(self.dataset, k, self.device, self.preprocessing)
        copies = prepared.preprocessor.copies_
        if copies is not None:
            self._note_once(
                "copies",
                f"{copies.share:.0%} of fold {k}'s training rows have an identical training "
                "row; the copy encoding gives each row the cross-fitted mean target of its "
                "copies and their count as inputs "
                f"({setting_name('copy_encoding', off=True)} turns it off)",
            )
        size = prepared.tensors.nbytes
        if sum(f.tensors.nbytes for f in self._folds.values()) + size <= self.budget:
            self._folds[k] = prepared
        else:
            self._note_once(
                "memory",
                f"fold {k}'s tensors ({size / 2**30:.2f} GiB) do not fit beside the "
                f"{len(self._folds)} fold(s) kept within the {self.budget / 2**30:.2f} GiB of "
                "free memory allowed for them; each trial that reaches a fold past those "
                "prepares it again, which is slower",
            )
        return prepared

    def _note_once(self, key: str, message: str) -> None:
        if key not in self._noted and self.on_note is not None:
            self._noted.add(key)
            self.on_note(message)
