"""Copy encoding: what the training rows identical to a row say about its target.

Tables often hold rows whose features repeat exactly (group bookings, repeated measurements,
re-entered records). A tree ensemble recalls the target of such copies; an MLP, which smooths
over its inputs, recalls them less well. The copy encoding gives each row, as extra inputs, the
mean target of the training rows identical to it, shrunk towards the overall mean (scikit-learn's
``TargetEncoder`` with its empirical-Bayes smoothing, over one category per distinct row), and
how many there are.

No row sees its own target: the training rows' values are cross-fitted (each of
``INNER_FOLDS`` parts is encoded from the other parts, the way ``TargetEncoder.fit_transform``
does), and validation or new rows are encoded from all the training rows. Rows are identical when
their preprocessed inputs are, so a stored model recognizes copies in new data read from any
file format.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import numpy as np
import pandas as pd

from dnntune.config import Task

__all__ = ["COPY_SHARE", "INNER_FOLDS", "CopyEncoder", "row_keys"]

COPY_SHARE = 0.01  # the encoding is fitted when at least this share of training rows has a copy
INNER_FOLDS = 5
# The inner split is fixed rather than drawn from the run's seed: like the rest of a fold's
# preprocessing, its inputs depend on the fold's training rows only, so runs that vary the
# training seed on the same folds (--fold-seed) see the same inputs.
INNER_SEED = 0


def row_keys(x: np.ndarray) -> np.ndarray:
    """A 64-bit key per row of an input matrix: identical rows, identical keys (BLAKE2b of the
    row's float32 bytes, stable across machines and versions)."""
    rows = np.ascontiguousarray(x, dtype=np.float32) + np.float32(0.0)  # -0.0 reads as 0.0
    raw = rows.view(np.uint8).reshape(len(rows), 4 * rows.shape[1])
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little")
            for r in raw
        ],
        dtype=np.uint64,
    ).view(np.int64)


def _target_matrix(y: np.ndarray, task: Task, n_classes: int) -> np.ndarray:
    """The target as float columns: the value or label(s), or one indicator per class."""
    if task is Task.MULTICLASS:
        return np.eye(n_classes, dtype=np.float64)[y]
    return np.asarray(y, dtype=np.float64).reshape(len(y), -1)


def _pack(arr: np.ndarray) -> dict[str, Any]:
    arr = np.ascontiguousarray(arr)
    return {
        "dtype": arr.dtype.str,
        "shape": list(arr.shape),
        "data": base64.b64encode(arr.tobytes()).decode("ascii"),
    }


def _unpack(d: dict[str, Any]) -> np.ndarray:
    raw = base64.b64decode(d["data"])
    return np.frombuffer(raw, dtype=np.dtype(d["dtype"])).reshape(d["shape"]).copy()


class CopyEncoder:
    """The copy table of one fold's training rows: per distinct row, the shrunk mean target of
    its copies and their count; inputs are standardized with the training rows' statistics."""

    def __init__(
        self,
        keys: np.ndarray,
        encodings: np.ndarray,
        counts: np.ndarray,
        prior: np.ndarray,
        mean: np.ndarray,
        scale: np.ndarray,
        share: float,
    ) -> None:
        self.keys = keys  # distinct row keys (int64) of the training rows
        self.encodings = encodings  # (keys, targets): shrunk mean target of each key's rows
        self.counts = counts  # training rows per key
        self.prior = prior  # the training mean, for rows with no copy
        self.mean = mean  # standardization of the (targets + 1) input columns
        self.scale = scale
        self.share = share  # share of training rows that had a copy

    @property
    def n_features(self) -> int:
        return self.encodings.shape[1] + 1

    def feature_names(self) -> list[str]:
        k = self.encodings.shape[1]
        names = ["copies__target"] if k == 1 else [f"copies__target{j}" for j in range(k)]
        return [*names, "copies__count"]

    @classmethod
    def fit_transform(
        cls, x: np.ndarray, y: np.ndarray, task: Task, n_classes: int = 2
    ) -> tuple[CopyEncoder, np.ndarray] | None:
        """Fit on training inputs ``x`` and target ``y``; return the encoder and the training
        rows' cross-fitted columns, or None when under ``COPY_SHARE`` of the rows have a copy."""
        keys = row_keys(x)
        distinct, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        share = float((counts[inverse] > 1).mean()) if len(keys) else 0.0
        if share < COPY_SHARE or len(keys) < 2 * INNER_FOLDS:
            return None
        # Imported here: scikit-learn takes seconds to import.
        from sklearn.model_selection import KFold
        from sklearn.preprocessing import TargetEncoder

        targets = _target_matrix(y, task, n_classes)
        splits = list(KFold(INNER_FOLDS, shuffle=True, random_state=INNER_SEED).split(keys))
        column = keys.reshape(-1, 1)
        train_cols = np.empty((len(keys), targets.shape[1] + 1))
        encodings = np.empty((len(distinct), targets.shape[1]))
        for j in range(targets.shape[1]):
            encoder = TargetEncoder(target_type="continuous", cv=splits)
            train_cols[:, j] = encoder.fit_transform(column, targets[:, j])[:, 0]
            # fit_transform also fits on every row: the encodings new rows get.
            at = pd.Index(distinct).get_indexer(encoder.categories_[0])
            encodings[at, j] = encoder.encodings_[0]
        for inner_train, inner_valid in splits:
            seen, seen_counts = np.unique(keys[inner_train], return_counts=True)
            at = pd.Index(seen).get_indexer(keys[inner_valid])  # -1: no copy in the other parts
            train_cols[inner_valid, -1] = np.where(at >= 0, seen_counts[at], 0)
        train_cols[:, -1] = np.log1p(train_cols[:, -1])
        mean = train_cols.mean(axis=0)
        scale = train_cols.std(axis=0)
        scale[scale < 1e-12] = 1.0
        encoder = cls(distinct, encodings, counts, targets.mean(axis=0), mean, scale, share)
        return encoder, ((train_cols - mean) / scale).astype(np.float32)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Columns for rows not used in fitting (validation or new rows), from every training
        row: copies' shrunk mean target (or the training mean) and log(1 + copies)."""
        at = pd.Index(self.keys).get_indexer(row_keys(x))  # -1: no copy among the training rows
        found = at >= 0
        cols = np.empty((len(at), self.n_features))
        cols[:, :-1] = self.prior
        cols[:, -1] = 0.0
        cols[found, :-1] = self.encodings[at[found]]
        cols[found, -1] = self.counts[at[found]]
        cols[:, -1] = np.log1p(cols[:, -1])
        return ((cols - self.mean) / self.scale).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "keys": _pack(self.keys),
            "encodings": _pack(self.encodings),
            "counts": _pack(self.counts.astype(np.int32)),
            "prior": self.prior.tolist(),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "share": self.share,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CopyEncoder:
        return cls(
            _unpack(d["keys"]),
            _unpack(d["encodings"]),
            _unpack(d["counts"]),
            np.asarray(d["prior"], dtype=np.float64),
            np.asarray(d["mean"], dtype=np.float64),
            np.asarray(d["scale"], dtype=np.float64),
            float(d["share"]),
        )
