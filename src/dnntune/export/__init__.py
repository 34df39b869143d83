"""Export a delivered model: ``dnntune export RUN --format onnx`` and :func:`export_onnx`.

One ONNX file holds the whole model: every network of every delivered member with its share,
each network's fitted preprocessing, the target's scale, and the output. Before the file is
written, onnxruntime runs it beside ``predict`` on probe rows made from the fitted
preprocessing (every level, bin edge, missing and unseen value; no training data needed) and
on any rows the caller gives; the two must agree within ``tolerance``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dnntune._names import first_line
from dnntune.artifacts import atomic_path, load_model, read_summary
from dnntune.config import Task
from dnntune.data import Preprocessor
from dnntune.exceptions import DataError
from dnntune.export._module import Columns, WholeModel, columns_of
from dnntune.export._onnx import feeds, inputs_metadata, to_onnx
from dnntune.inference import Predictor
from dnntune.tracking import Tracker, tracking_uri

__all__ = ["FORMATS", "Exported", "export_onnx", "onnx_feeds"]

FORMATS = ("onnx",)
PROBE_ROWS = 256


@dataclass(frozen=True)
class Exported:
    """Where the file went, how many rows verified it, and the largest difference seen."""

    path: Path
    rows_checked: int
    max_difference: float
    networks: int
    mlflow_run: str | None = None  # the study's MLflow run the file was logged to


def _onnx_modules() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
    except ImportError as exc:
        raise DataError(
            f"ONNX export needs onnx, onnxscript and onnxruntime ({first_line(exc)}); install "
            "them with: pip install 'dnntune[onnx]'"
        ) from None
    return onnx, onnxruntime


def export_onnx(
    model: str | Path,
    output: str | Path | None = None,
    *,
    refit: bool = False,
    rows: pd.DataFrame | None = None,
    tolerance: float = 1e-5,
) -> Exported:
    """Write the model of a run folder (or a model folder) as one verified ONNX file.

    ``output`` defaults to ``model.onnx`` inside the folder given. ``refit`` exports the
    networks trained on all rows. ``rows`` (a table with the model's columns) are checked too,
    beside the probe rows. Raises :class:`DataError` with one line for a model ONNX cannot
    express, a graph whose predictions differ from ``predict``'s by more than ``tolerance``
    (absolute, or relative to a regression value above 1), or a missing package; nothing is
    written then. A run tracked in MLflow gets the file as an artifact of the study's run.
    """
    onnx, onnxruntime = _onnx_modules()
    loaded = load_model(model, refit=refit)
    if any(pre.copies_ is not None for pre in loaded.preprocessors):
        raise DataError(
            "the model uses the copy encoding, which looks rows up by a hash of their values; "
            "ONNX cannot express that: tune with copy_encoding off to export"
        )
    columns = columns_of(loaded)
    try:
        proto = to_onnx(WholeModel(loaded, columns), columns, loaded.manifest)
    except Exception as exc:  # the exporter's own errors have no common base class
        archs = sorted({m.architecture.get("architecture", "mlp") for m in loaded.manifest.members})
        raise DataError(
            f"ONNX cannot express this model ({', '.join(archs)}): {first_line(exc)}"
        ) from None
    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    predictor = Predictor(loaded)
    checked = [probe_rows(columns, loaded.preprocessors)]
    if rows is not None:
        checked.append(rows)
    worst = 0.0
    for frame in checked:
        worst = max(worst, _compare(session, predictor, frame, columns, tolerance))
    path = Path(output) if output is not None else Path(model) / "model.onnx"
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp))
    tracked = _track(Path(model), path)
    return Exported(path, sum(len(f) for f in checked), worst, len(loaded.models), tracked)


def _track(run_dir: Path, path: Path) -> str | None:
    """Add the file to the study's MLflow run, where the run was tracked (its ID)."""
    if not (run_dir / "summary.json").is_file():
        return None  # a model folder alone
    summary = read_summary(run_dir)
    run = summary.get("mlflow")
    uri = tracking_uri(summary.get("config", {}).get("mlflow"), worker=True)
    if not run or not uri:
        return None
    Tracker.of_run(uri, run).log_file(path)
    return str(run["run_id"])


def onnx_feeds(frame: pd.DataFrame, path: str | Path) -> dict[str, np.ndarray]:
    """The inputs an exported file takes, made from a table with the model's columns."""
    onnx, _ = _onnx_modules()
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    if "dnntune.inputs" not in props:
        raise DataError(f"{str(path)!r} is not an ONNX file exported by dnntune")
    return feeds(frame, json.loads(props["dnntune.inputs"]))


def _compare(
    session: Any, predictor: Predictor, frame: pd.DataFrame, columns: Columns, tolerance: float
) -> float:
    """The largest difference between the graph's predictions and ``predict``'s on ``frame``;
    raises when it is above ``tolerance``."""
    expected = predictor.predict_array(frame)
    got = session.run(None, feeds(frame, inputs_metadata(columns)))
    task = predictor.task
    values = got[0][:, 1] if task is Task.BINARY else got[0]
    diff = np.abs(values - expected)
    if task is Task.REGRESSION:
        diff = diff / np.maximum(1.0, np.abs(expected))
    worst = float(np.nanmax(diff)) if diff.size else 0.0
    if not np.isfinite(diff).all() or worst > tolerance:
        raise DataError(
            f"the ONNX graph's predictions differ from predict's by {worst:.3g} (more than "
            f"{tolerance:g}) on {len(frame)} rows; nothing was written"
        )
    return worst


def probe_rows(
    columns: Columns, preprocessors: list[Preprocessor], n: int = PROBE_ROWS
) -> pd.DataFrame:
    """Rows that reach every part of the fitted preprocessing: each numeric column's medians,
    bin edges, training range and beyond, missing values; each category's levels, an unseen one
    and a missing one (seeded, no training data needed)."""
    rng = np.random.default_rng(0)
    frame: dict[str, Any] = {}
    for name in (*columns.numeric, *columns.dates):
        points: list[float] = [np.nan]
        for pre in preprocessors:
            st = pre.numeric_[name]
            points += [st["median"], st["mean"], st["mean"] + 3 * st["scale"]]
            points += pre.bin_edges_.get(name, [])
            lo, hi = pre.bin_range_.get(name, [st["mean"] - st["scale"], st["mean"] + st["scale"]])
            points += [lo, hi, lo - st["scale"], hi + st["scale"]]
        chosen = rng.choice(np.asarray(points, dtype=float), n)
        spread = rng.normal(scale=0.1, size=n) * preprocessors[0].numeric_[name]["scale"]
        values = np.where(rng.random(n) < 0.5, chosen, chosen + spread)
        if name in columns.dates:  # whole seconds, as dates are read
            frame[name] = pd.to_datetime(np.round(values * 86_400), unit="s")
        else:
            frame[name] = values
    for name in columns.categorical:
        levels = [*columns.levels[name], "__dnntune_unseen_level__", None]
        frame[name] = pd.Series(rng.choice(np.asarray(levels, dtype=object), n), dtype=object)
    return pd.DataFrame(frame)
