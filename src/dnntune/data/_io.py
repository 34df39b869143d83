"""Read a table from a file or from scikit-learn's bundled data sets."""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd

from dnntune._names import did_you_mean, first_line, setting_name, short_list
from dnntune.exceptions import DataError

__all__ = ["Builtin", "LoadedTable", "load_table"]


class Builtin(StrEnum):
    """Data sets bundled with scikit-learn, usable as ``--data builtin:NAME``."""

    BREAST_CANCER = "breast_cancer"
    DIGITS = "digits"
    DIABETES = "diabetes"


_SUFFIXES = {
    ".csv": ",",
    ".csv.gz": ",",
    ".tsv": "\t",
    ".tsv.gz": "\t",
    ".tab": "\t",
    ".txt": None,  # the separator is read from the header line
    ".txt.gz": None,
}
_SEPARATORS = (",", ";", "\t", "|")
_DECIMAL_COMMA = re.compile(r"[+-]?\d+(,\d+)?")
_PARQUET = (".parquet", ".pq")


@dataclass(frozen=True)
class LoadedTable:
    """A table as read, with where it came from and its default target (builtins only)."""

    frame: pd.DataFrame
    source: str
    default_target: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.source if self.source.startswith("builtin:") else Path(self.source).name


def _load_builtin(name: str) -> LoadedTable:
    from sklearn import datasets

    try:
        which = Builtin(name)
    except ValueError:
        valid = ", ".join(f"builtin:{b.value}" for b in Builtin)
        raise DataError(
            f"unknown built-in data set {name!r}{did_you_mean(name, [b.value for b in Builtin])}; "
            f"choose one of: {valid}"
        ) from None
    loader = {
        Builtin.BREAST_CANCER: datasets.load_breast_cancer,
        Builtin.DIGITS: datasets.load_digits,
        Builtin.DIABETES: datasets.load_diabetes,
    }[which]
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    return LoadedTable(frame=frame, source=f"builtin:{which.value}", default_target=("target",))


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in sorted([*_SUFFIXES, *_PARQUET], key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def _header(path: Path) -> str:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        return f.readline(1 << 20)


def _separator(path: Path, expected: str | None) -> str:
    """The suffix's separator, unless the header line has none of it but another one: a
    ".csv" written with semicolons, as spreadsheets do where the comma is the decimal mark."""
    header = _header(path)
    if expected is not None and expected in header:
        return expected
    counts = {sep: header.count(sep) for sep in _SEPARATORS}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else expected or ","


def _decimal_commas(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of a semicolon-separated file that hold numbers written with a decimal comma
    (and nothing else) as numbers."""
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_numeric_dtype(col) or not (
            pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col)
        ):
            continue
        present = col.dropna().astype(str).str.strip()
        if len(present) and present.str.fullmatch(_DECIMAL_COMMA).all():
            frame[name] = pd.to_numeric(col.astype(str).str.replace(",", ".", regex=False))
    return frame


def load_table(source: str) -> LoadedTable:
    """Read ``source``: ``builtin:NAME``, or a CSV/TSV file (optionally gzipped) or Parquet file.

    The strings ``NA``, ``NULL``, ``NaN`` and empty cells are read as missing values.
    """
    if source.startswith("builtin:"):
        return _load_builtin(source.removeprefix("builtin:"))
    path = Path(source)
    if not path.exists():
        raise DataError(
            f"data file {source!r} does not exist; check the path passed to {setting_name('data')}"
        )
    if path.is_dir():
        raise DataError(
            f"{setting_name('data')} {source!r} is a folder; pass a CSV, TSV or Parquet file"
        )
    suffix = _suffix(path)
    try:
        if suffix in _PARQUET:
            frame = pd.read_parquet(path)
        elif suffix in _SUFFIXES:
            sep = _separator(path, _SUFFIXES[suffix])
            frame = pd.read_csv(path, sep=sep, low_memory=False)
            _refuse_duplicate_names(path, sep)
            if sep == ";":
                frame = _decimal_commas(frame)
        else:
            raise DataError(
                f"cannot tell the format of {source!r} from its suffix {suffix!r}; "
                "use .csv, .tsv, .csv.gz, .tsv.gz or .parquet"
            )
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(
            f"data file {source!r} is empty; pass a table with a header and rows"
        ) from None
    except UnicodeDecodeError:
        raise DataError(
            f"{source!r} is not UTF-8 text ({_first_bad_byte(path)}); save it as UTF-8"
        ) from None
    except Exception as exc:  # pandas/pyarrow raise many types for a corrupt file
        kind = "Parquet" if suffix in _PARQUET else "CSV/TSV"
        reason = first_line(exc)
        raise DataError(
            f"cannot read {source!r} as {kind}: {reason}; "
            f"check that the file is a valid {kind} table"
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.shape[1] == 0 or len(frame) == 0:
        raise DataError(f"data file {source!r} has no rows; pass a table with a header and rows")
    _refuse_nested(frame, source)
    return LoadedTable(frame=frame, source=str(source))


def _first_bad_byte(path: Path) -> str:
    """Where a file stops being UTF-8: the byte and its line."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return f"byte {raw[exc.start]:#04x} in line {line}"
    return "a byte pandas could not decode"


def _refuse_duplicate_names(path: Path, sep: str) -> None:
    """pandas renames a repeated column (``a``, ``a.1``); refuse it instead, by name."""
    header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str).iloc[0]
    names = pd.Series([str(v).strip() for v in header])
    repeated = sorted(set(names[names.duplicated()]))
    if repeated:
        raise DataError(
            f"{str(path)!r} names {'columns' if len(repeated) > 1 else 'a column'} "
            f"{short_list(repeated)} more than once in its header; give each column its own name"
        )


def _refuse_nested(frame: pd.DataFrame, source: str) -> None:
    """Columns of lists, arrays or records (nested Parquet columns) are not table cells."""
    nested = []
    for name in frame.columns:
        if not pd.api.types.is_object_dtype(frame[name]):
            continue
        present = frame[name].dropna()
        if len(present) and isinstance(present.iloc[0], list | tuple | dict | np.ndarray):
            nested.append(name)
    if nested:
        raise DataError(
            f"{source!r} has nested columns (lists or records in a cell): {short_list(nested)}; "
            "flatten them into one column per value, or drop them from the file"
        )
