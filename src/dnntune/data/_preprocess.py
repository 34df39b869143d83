"""Column roles for a table and the per-fold preprocessing fitted on training rows only.

The fitted state is plain JSON (lists, numbers, strings) so it can be stored beside the model
weights and loaded back without unpickling anything.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dnntune.config import NumericScaling, Preprocessing, Task
from dnntune.data._copies import CopyEncoder
from dnntune.data._state import check_state
from dnntune.exceptions import DataError

__all__ = [
    "MISSING",
    "OTHER",
    "ColumnPlan",
    "InputLayout",
    "Preprocessor",
    "category_levels",
    "numeric_values",
    "plan_columns",
    "refuse_unbounded",
    "to_days",
    "unparsed_dates_note",
    "unparsed_values",
]

MISSING = "__missing__"
OTHER = "__other__"
MAX_ONEHOT_INT_LEVELS = 10  # integer columns with at most this many values are categorical
ID_UNIQUE_FRACTION = 0.5  # a string column with more distinct values than this share is an ID
MOSTLY_NUMBERS_SLACK = 0.05  # a text column with at most this share of non-numbers is noted
EMBEDDING_BINS = 48  # quantile bins per numeric column for piecewise-linear embeddings
SMOOTH_CLIP = 3.0  # robust scaling's bound: x / sqrt(1 + (x / 3)^2) stays within (-3, 3)
BIN_ROWS = 200_000  # at most this many training rows (a fixed sample) give those quantiles


@dataclass
class ColumnPlan:
    """Which columns are numeric, categorical or dates, and which are dropped and why."""

    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    datetime: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)
    # Notes on how columns were read (not stored: they concern the table the plan came from).
    hints: list[str] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.datetime, *self.categorical]

    def notes(self) -> list[str]:
        out = [f"dropped column {c!r}: {why}" for c, why in self.dropped.items()]
        out += [f"column {c!r} read as dates (days since 1970-01-01)" for c in self.datetime]
        return out + self.hints

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": self.numeric,
            "categorical": self.categorical,
            "datetime": self.datetime,
            "dropped": self.dropped,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnPlan:
        return cls(
            list(d["numeric"]), list(d["categorical"]), list(d["datetime"]), dict(d["dropped"])
        )


def _is_stringy(col: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_datetime64_any_dtype(col)


def _looks_like_dates(col: pd.Series) -> bool:
    sample = col.dropna().astype(str).head(200)
    if (
        len(sample) < 5
        or not sample.str.contains(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}").all()
    ):
        return False
    return bool(_parse_dates(sample).notna().mean() >= 0.95)


def _mostly_numbers_hint(name: str, col: pd.Series) -> list[str]:
    """A note when a text column holds numbers but for a few values (typos, codes such as
    'n/a'): those few decide that the whole column is read as text."""
    sample = col.dropna().head(1000)  # most text columns fail here, at once
    if len(unparsed_values(sample)) > MOSTLY_NUMBERS_SLACK * len(sample):
        return []
    present = int(col.notna().sum())
    bad = unparsed_values(col)
    if not len(bad) or len(bad) > MOSTLY_NUMBERS_SLACK * present:
        return []
    count = f"{len(bad)} of its {present} values {'is' if len(bad) == 1 else 'are'} not a number"
    return [
        f"column {name!r} is read as text because {count}, e.g. {bad.iloc[0]!r} in data row "
        f"{bad.index[0] + 1}; fix or empty those cells to read it as numbers"
    ]


def unparsed_dates_note(name: str, col: pd.Series) -> list[str]:
    """A note when a date column holds values that are not dates (read as missing)."""
    bad = unparsed_values(col, dates=True)
    if not len(bad):
        return []
    count = f"{len(bad)} value{'s' if len(bad) > 1 else ''}"
    return [
        f"column {name!r}: {count} not read as dates, e.g. {bad.iloc[0]!r} in data row "
        f"{bad.index[0] + 1}, count as missing"
    ]


def plan_columns(
    frame: pd.DataFrame, categorical: Collection[str] = (), *, numbers_are_quantities: bool = False
) -> ColumnPlan:
    """Decide each feature column's role from the whole table (no target, no statistics kept).

    Columns named in ``categorical`` are categorical whatever their values (codes such as an
    agent or product number, which would otherwise be read as quantities or, with a distinct
    value in most rows, dropped as IDs); only a constant one is still dropped. With
    ``numbers_are_quantities`` (the estimators' arrays, whose columns have no names to judge
    by), every other column of numbers is numeric: none is read as codes or dropped as an ID.
    """
    plan = ColumnPlan()
    n = len(frame)
    for name in frame.columns:
        col = frame[name]
        n_unique = col.nunique(dropna=False)
        if n_unique <= 1:
            plan.dropped[name] = "constant (one value in every row)"
        elif name in categorical or pd.api.types.is_bool_dtype(col):
            plan.categorical.append(name)
        elif pd.api.types.is_datetime64_any_dtype(col):
            plan.datetime.append(name)
        elif _is_stringy(col):
            plan.hints += _mostly_numbers_hint(name, col)
            if _looks_like_dates(col):
                plan.datetime.append(name)
                plan.hints += unparsed_dates_note(name, col)
            elif n > 20 and n_unique > ID_UNIQUE_FRACTION * n:
                plan.dropped[name] = f"ID-like ({n_unique} distinct values in {n} rows)"
            else:
                plan.categorical.append(name)
        elif numbers_are_quantities:
            plan.numeric.append(name)
        else:
            values = col.dropna().to_numpy(dtype=float)
            integral = bool(np.all(values == np.round(values)))
            if integral and n > 20 and col.nunique() == n:
                plan.dropped[name] = f"ID-like (a distinct integer in each of the {n} rows)"
            elif integral and col.nunique() <= MAX_ONEHOT_INT_LEVELS:
                plan.categorical.append(name)
            else:
                plan.numeric.append(name)
    return plan


def category_levels(col: pd.Series) -> np.ndarray:
    """A categorical column's values as the level strings the preprocessing matches: integral
    numbers print without '.0' (``3.0`` is ``"3"``), booleans as ``"True"``/``"False"``, a
    missing value is ``MISSING``."""
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        arr = col.to_numpy(dtype=float)
        out = np.full(arr.shape, MISSING, dtype=object)
        ok = ~np.isnan(arr)
        integral = ok & (arr == np.round(arr))
        out[integral] = arr[integral].astype(np.int64).astype(str)
        other = ok & ~integral
        out[other] = arr[other].astype(str)
        return out
    out = col.astype(object).to_numpy()
    mask = pd.isna(out)
    result = out.astype(str).astype(object)
    result[mask] = MISSING
    return result


def _parse_dates(col: pd.Series) -> pd.Series:
    """Date strings as datetimes (unparsable ones missing). Strings with different UTC offsets,
    as a local time column has across a daylight-saving change, are converted to UTC: pandas
    refuses to mix them (pandas 3 raises, pandas 2 returns objects, with a warning)."""
    values = col.astype(object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        try:
            parsed = pd.to_datetime(values, errors="coerce", format="mixed")
        except ValueError:
            parsed = None
    if parsed is None or not pd.api.types.is_datetime64_any_dtype(parsed):
        parsed = pd.to_datetime(values, errors="coerce", format="mixed", utc=True)
    return parsed


def to_days(col: pd.Series) -> np.ndarray:
    """A date column as days since 1970 (UTC for times with an offset); missing: NaN."""
    if not pd.api.types.is_datetime64_any_dtype(col):
        col = _parse_dates(col)
    stamps = col.dt.tz_localize(None) if getattr(col.dt, "tz", None) is not None else col
    days = (stamps - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    return days.to_numpy(dtype=float, na_value=np.nan)


def numeric_values(col: pd.Series) -> np.ndarray:
    """A column's values as float64, with what is not a number as NaN."""
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


# Beyond this magnitude a value overflows the float32 the network computes in.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def refuse_unbounded(col: pd.Series, name: str, row_ids: np.ndarray | None = None) -> None:
    """Infinite values, and values too large for float32, would turn every score and
    prediction into NaN: refuse them, naming the column, the value and its row in the file
    (``row_ids``: each row's position in the file, when rows were left out)."""
    values = numeric_values(col)
    bad = np.flatnonzero(np.isinf(values) | (np.abs(np.nan_to_num(values)) > _FLOAT32_MAX))
    if not len(bad):
        return
    row = int(row_ids[bad[0]]) if row_ids is not None else int(bad[0])
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    raise DataError(
        f"column {name!r} has the value {float(values[bad[0]])!r} in data row {row + 1}{more}, "
        "beyond what a network computes with (about 3.4e38); replace it, or leave the cell "
        "empty to read it as missing"
    )


def unparsed_values(col: pd.Series, *, dates: bool = False) -> pd.Series:
    """The values of ``col`` that are present but do not parse as numbers (or dates), which
    the preprocessing would turn into missing values; indexed by row position."""
    if dates and pd.api.types.is_datetime64_any_dtype(col):
        return col.iloc[:0]
    if not dates and pd.api.types.is_numeric_dtype(col):
        return col.iloc[:0]
    parsed = to_days(col) if dates else numeric_values(col)
    bad = np.isnan(parsed) & col.notna().to_numpy()
    return col.reset_index(drop=True)[bad]


@dataclass(frozen=True)
class InputLayout:
    """Where things are in a preprocessed matrix of ``n_features`` columns: the standardized
    value of each numeric (or date) column, the preprocessing's own piecewise-linear columns,
    and each numeric column's bin edges (standardized units, fitted on a fold's training rows)
    for piecewise-linear embeddings."""

    n_features: int
    numeric: tuple[int, ...] = ()
    encoded: tuple[int, ...] = ()
    bins: tuple[tuple[float, ...], ...] = ()

    def others(self) -> list[int]:
        """The columns an embedding leaves as they are: missing-value indicators, one-hot
        levels, copy inputs (not the piecewise-linear columns, which embeddings replace)."""
        skip = {*self.numeric, *self.encoded}
        return [j for j in range(self.n_features) if j not in skip]


class Preprocessor:
    """Impute, standardize and one-hot encode, fitted on one fold's training rows.

    Numeric and date columns: median imputation, a 0/1 missing indicator when the training rows
    had missing values, then standardization, plus the piecewise-linear encoding of the value's
    quantile bin (Gorishniy et al., 2022, "On Embeddings for Numerical Features in Tabular Deep
    Learning"): up to ``settings.numeric_bins`` bins between the training quantiles, and no
    more than one per ``rows_per_bin`` training rows, so small tables get none (0 turns them
    off); one input per bin, 1 for the bins below the value, 0 for those above, and the value's
    position (0-1) inside its own bin. The bins let an MLP model a column's effect piecewise
    instead of through one linear input. Categorical columns: one-hot over the levels seen at
    least ``min_frequency`` times in training (at most ``max_levels``); rarer and unseen levels
    share one ``__other__`` column, and missing values are a level of their own.

    For networks with piecewise-linear embeddings, each numeric column also gets up to
    ``EMBEDDING_BINS`` quantile bins of its standardized training values (as
    ``rtdl_num_embeddings.compute_bins`` makes them), kept with the rest of the fitted state;
    they never see a validation row.

    With ``settings.copy_encoding``, :meth:`fit_transform` (given the training target) also
    fits a :class:`~dnntune.data._copies.CopyEncoder` when the training rows repeat each other,
    and every matrix gains its inputs: the cross-fitted mean target of a row's identical
    training rows and their count.
    """

    def __init__(
        self,
        plan: ColumnPlan,
        settings: Preprocessing | None = None,
        *,
        min_frequency: int | None = None,
        max_levels: int = 64,
        rows_per_bin: int = 500,
    ) -> None:
        self.plan = plan
        self.settings = settings or Preprocessing()
        self.min_frequency = min_frequency
        self.max_levels = max_levels
        self.rows_per_bin = rows_per_bin
        self.copies_: CopyEncoder | None = None

    def fit(self, frame: pd.DataFrame) -> Preprocessor:
        n = len(frame)
        min_freq = self.min_frequency or max(5, math.ceil(0.0005 * n))
        n_bins = min(self.settings.numeric_bins, n // max(self.rows_per_bin, 1))
        self.numeric_: dict[str, dict[str, float | bool]] = {}
        self.bin_edges_: dict[str, list[float]] = {}
        self.bin_range_: dict[str, list[float]] = {}  # training min and max
        for name in [*self.plan.numeric, *self.plan.datetime]:
            arr = self._raw_numeric(frame, name)
            missing = np.isnan(arr)
            median = float(np.median(arr[~missing])) if (~missing).any() else 0.0
            filled = np.where(missing, median, arr)
            center, scale = self._center_scale(filled)
            self.numeric_[name] = {
                "median": median,
                "mean": center,
                "scale": scale if scale > 1e-12 else 1.0,
                "indicator": bool(missing.any()),
            }
            if n_bins > 1 and (~missing).any():
                inner = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
                seen = arr[~missing]
                edges = np.unique(np.quantile(seen, inner))
                lo, hi = float(seen.min()), float(seen.max())
                # No bin that no training row falls in, and every bin has a width.
                edges = edges[(edges > lo) & (edges < hi)]
                if len(edges):
                    self.bin_edges_[name] = [float(e) for e in edges]
                    self.bin_range_[name] = [lo, hi]
        self.embedding_bins_ = self._embedding_bins(frame)
        self.categories_: dict[str, list[str]] = {}
        for name in self.plan.categorical:
            counts = pd.Series(category_levels(frame[name])).value_counts()
            kept = counts[counts >= min_freq].head(self.max_levels)
            self.categories_[name] = sorted(str(v) for v in kept.index)
        self.copies_ = None
        self.feature_names_ = self._feature_names()
        return self

    def _center_scale(self, filled: np.ndarray) -> tuple[float, float]:
        """What a numeric column's training values are centred on and divided by: mean and
        standard deviation, or (robust) median and interquartile range / 1.349, which is the
        standard deviation of a normal column (the standard deviation where the quartiles
        meet)."""
        if self.settings.numeric_scaling is NumericScaling.STANDARD:
            return float(filled.mean()), float(filled.std())
        q25, median, q75 = np.quantile(filled, [0.25, 0.5, 0.75])
        iqr = float(q75 - q25) / 1.349
        return float(median), iqr if iqr > 1e-12 else float(filled.std())

    def scaled(self, filled: np.ndarray, st: dict[str, float | bool]) -> np.ndarray:
        """A numeric column's network input: centred and scaled, and, with robust scaling,
        smoothly clipped to (-3, 3)."""
        x = (filled - st["mean"]) / st["scale"]
        if self.settings.numeric_scaling is NumericScaling.ROBUST:
            x = x / np.sqrt(1.0 + (x / SMOOTH_CLIP) ** 2)
        return x

    def fit_transform(
        self, frame: pd.DataFrame, target: np.ndarray, task: Task, n_classes: int = 2
    ) -> np.ndarray:
        """Fit on training rows and their target; return their matrix. The copy inputs of
        these rows are cross-fitted, so none of them carries its own row's target."""
        self.fit(frame)
        x = self._transform_base(frame)
        if not self.settings.copy_encoding:
            return x
        fitted = CopyEncoder.fit_transform(x, target, task, n_classes)
        if fitted is None:
            return x
        self.copies_, columns = fitted
        self.feature_names_ += self.copies_.feature_names()
        return np.hstack([x, columns])

    def _embedding_bins(self, frame: pd.DataFrame) -> dict[str, list[float]]:
        """Edges of up to ``EMBEDDING_BINS`` quantile bins of each numeric column's
        standardized training values (a fixed sample of ``BIN_ROWS`` rows where there are
        more), distinct in the float32 the network computes in. A column of two values gets
        its two values and their midpoint, a constant one [-1, 0, 1]: every column has at
        least two bins."""
        rows = np.arange(len(frame))
        if len(rows) > BIN_ROWS:
            rows = np.sort(np.random.default_rng(0).choice(rows, BIN_ROWS, replace=False))
        levels = np.linspace(0.0, 1.0, EMBEDDING_BINS + 1)
        out = {}
        for name, st in self.numeric_.items():
            arr = self._raw_numeric(frame, name)[rows]
            values = self.scaled(np.where(np.isnan(arr), st["median"], arr), st)
            edges = np.unique(np.quantile(values, levels).astype(np.float32))
            if len(edges) == 2:
                edges = np.unique(np.r_[edges, edges.mean(dtype=np.float32)])
            if len(edges) < 3:
                edges = np.array([-1.0, 0.0, 1.0], dtype=np.float32)
            out[name] = [float(e) for e in edges]
        return out

    def layout(self) -> InputLayout:
        """Where the numeric values, the piecewise-linear columns and the bins are in the
        matrices this preprocessor makes."""
        numeric: list[int] = []
        encoded: list[int] = []
        j = 0
        for name, st in self.numeric_.items():  # the order _transform_base writes them in
            numeric.append(j)
            j += 1 + int(bool(st["indicator"]))
            edges = self.bin_edges_.get(name)
            n_bins = len(edges) + 1 if edges else 0
            encoded += range(j, j + n_bins)
            j += n_bins
        return InputLayout(
            self.n_features,
            tuple(numeric),
            tuple(encoded),
            tuple(tuple(self.embedding_bins_[name]) for name in self.numeric_),
        )

    def _raw_numeric(self, frame: pd.DataFrame, name: str) -> np.ndarray:
        col = frame[name]
        return to_days(col) if name in self.plan.datetime else numeric_values(col)

    def _feature_names(self) -> list[str]:
        names: list[str] = []
        for name, st in self.numeric_.items():
            names.append(name)
            if st["indicator"]:
                names.append(f"{name}__missing")
            edges = self.bin_edges_.get(name, [])
            if edges:
                names += [f"{name}__bin{i}" for i in range(len(edges) + 1)]
        for name, levels in self.categories_.items():
            names += [f"{name}={lvl}" for lvl in levels] + [f"{name}={OTHER}"]
        return names

    @property
    def n_features(self) -> int:
        return len(self.feature_names_)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Return a float32 matrix of shape (rows, n_features)."""
        x = self._transform_base(frame)
        if self.copies_ is None:
            return x
        return np.hstack([x, self.copies_.transform(x)])

    def _transform_base(self, frame: pd.DataFrame) -> np.ndarray:
        """The matrix of the table's own columns (without the copy inputs)."""
        n = len(frame)
        n_base = self.n_features - (self.copies_.n_features if self.copies_ is not None else 0)
        out = np.zeros((n, n_base), dtype=np.float32)
        rows = np.arange(n)
        j = 0
        for name, st in self.numeric_.items():
            arr = self._raw_numeric(frame, name)
            missing = np.isnan(arr)
            filled = np.where(missing, st["median"], arr)
            out[:, j] = self.scaled(filled, st)
            j += 1
            if st["indicator"]:
                out[:, j] = missing
                j += 1
            edges = self.bin_edges_.get(name, [])
            if not edges:
                continue
            lo, hi = self.bin_range_[name]
            bounds = np.array([lo, *edges, hi])
            left, width = bounds[:-1], np.diff(bounds)
            position = (filled[:, None] - left) / width
            out[:, j : j + len(edges) + 1] = np.clip(position, 0.0, 1.0)
            j += len(edges) + 1
        for name, levels in self.categories_.items():
            codes = pd.Index(levels).get_indexer(category_levels(frame[name])).astype(np.int64)
            codes[codes < 0] = len(levels)  # rare or unseen: the __other__ column
            out[rows, j + codes] = 1.0
            j += len(levels) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": dataclasses.asdict(self.settings),
            "plan": self.plan.to_dict(),
            "numeric": self.numeric_,
            "categories": self.categories_,
            "bin_edges": self.bin_edges_,
            "bin_range": self.bin_range_,
            "embedding_bins": self.embedding_bins_,
            "feature_names": self.feature_names_,
            "copies": self.copies_.to_dict() if self.copies_ is not None else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessor:
        """The state :meth:`to_dict` wrote, checked as untrusted input (``ValueError``)."""
        settings = check_state(d)
        copies = d["copies"]
        self = cls(ColumnPlan.from_dict(d["plan"]), settings)
        self.numeric_ = {k: dict(v) for k, v in d["numeric"].items()}
        self.categories_ = {k: list(v) for k, v in d["categories"].items()}
        self.bin_edges_ = {k: [float(e) for e in v] for k, v in d["bin_edges"].items()}
        self.bin_range_ = {k: [float(e) for e in v] for k, v in d["bin_range"].items()}
        self.embedding_bins_ = {k: [float(e) for e in v] for k, v in d["embedding_bins"].items()}
        self.feature_names_ = list(d["feature_names"])
        self.copies_ = CopyEncoder.from_dict(copies) if copies is not None else None
        return self
