"""ONNX export: one file with the preprocessing and every network, run by onnxruntime, gives
predict's predictions on real rows (string categories, missing values, dates, unseen levels);
what ONNX cannot express is refused with one line and no file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dnntune
from dnntune.export import export_onnx, onnx_feeds
from dnntune.testing import write_space

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

# Every architecture and embedding the export must carry, in a few epochs.
SPACE = """\
architecture: {choices: [mlp, tabm-mini, tabm], default: tabm-mini}
num_embeddings: {choices: [none, piecewise_linear, periodic], default: piecewise_linear}
num_layers: 1
hidden_size: 16
epochs: 3
"""


def _with_holes(frame: pd.DataFrame, columns: list[str], seed: int = 0) -> pd.DataFrame:
    """The frame with about one cell in eight of ``columns`` emptied."""
    rng = np.random.default_rng(seed)
    frame = frame.copy()
    for name in columns:
        frame.loc[rng.random(len(frame)) < 0.125, name] = None
    return frame


def _tune(
    path: Path, target: str, run: Path, space: Path, trials: int = 2, **extra: object
) -> Path:
    dnntune.tune(
        data=str(path),
        target=target,
        trials=trials,
        folds=2,
        baseline=False,
        space=str(space),
        output_dir=str(run),
        **extra,  # type: ignore[arg-type]
    )
    return run


def _session(path: Path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_space(tmp_path_factory.mktemp("space") / "s.yaml", SPACE)


@pytest.fixture(scope="module")
def hotel_rows(hotel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 hotel rows: strings ('NULL' agents, missing countries), numbers with NA, and the
    reservation date as a date column (it leaks the target, which does not matter here); 1,000
    training rows per fold give each numeric column piecewise-linear bins."""
    frame = pd.read_csv(hotel).sample(2000, random_state=1).drop(columns="reservation_status")
    path = tmp_path_factory.mktemp("hotel") / "hotel.csv"
    _with_holes(frame, ["hotel", "meal", "lead_time", "adr"]).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_binary_model_with_strings_dates_and_missing_values(
    hotel_rows: Path, space: Path, tmp_path: Path
) -> None:
    run = _tune(hotel_rows, "is_canceled", tmp_path / "run", space)
    rows = pd.read_csv(hotel_rows)
    done = export_onnx(run, rows=rows)
    assert done.path == run / "model.onnx" and done.rows_checked == 256 + len(rows)
    assert done.max_difference <= 1e-5

    session = _session(done.path)
    inputs = {i.name: i.type for i in session.get_inputs()}
    assert inputs["hotel"] == inputs["country"] == "tensor(string)"
    assert inputs["lead_time"] == inputs["reservation_status_date"] == "tensor(double)"
    assert "is_canceled" not in inputs
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["dnntune.task"] == "binary" and json.loads(meta["dnntune.classes"]) == ["0", "1"]
    kinds = {e["name"]: e["kind"] for e in json.loads(meta["dnntune.inputs"])}
    assert kinds["reservation_status_date"] == "date" and kinds["meal"] == "category"

    # New rows as another program would send them: an unseen country, missing cells.
    new = rows.head(40).copy()
    new.loc[:9, "country"] = "Atlantis"
    new.loc[10:19, ["adr", "meal"]] = None
    proba, label = session.run(None, onnx_feeds(new, done.path))
    expected = dnntune.load(run).predict(new)
    np.testing.assert_allclose(proba[:, 1], expected["proba_1"], atol=1e-5)
    assert list(label) == [str(v) for v in expected["prediction"]]


@pytest.mark.slow
def test_multiclass_model(space: Path, tmp_path: Path) -> None:
    from dnntune.testing import shared_data

    frame = pd.read_csv(shared_data("hpc_jobs.csv.gz"))
    path = tmp_path / "hpc.csv"
    _with_holes(frame, ["protocol", "day", "compounds"]).to_csv(path, index=False)
    run = _tune(path, "class", tmp_path / "run", space)
    done = export_onnx(run, tmp_path / "hpc.onnx", rows=pd.read_csv(path))
    proba, label = _session(done.path).run(None, onnx_feeds(frame.head(30), done.path))
    expected = dnntune.load(run).predict(frame.head(30))
    classes = json.loads(_session(done.path).get_modelmeta().custom_metadata_map["dnntune.classes"])
    assert sorted(classes) == ["F", "L", "M", "VF"]
    np.testing.assert_allclose(proba, expected[[f"proba_{c}" for c in classes]], atol=1e-5)
    assert list(label) == list(expected["prediction"])


@pytest.mark.slow
def test_regression_model(space: Path, tmp_path: Path) -> None:
    from dnntune.testing import shared_data

    frame = pd.read_csv(shared_data("diamonds.csv.gz")).sample(2500, random_state=0)
    path = tmp_path / "diamonds.csv"
    _with_holes(frame, ["cut", "clarity", "carat"]).to_csv(path, index=False)
    # Robust scaling: the exported graph clips smoothly as the preprocessing does.
    run = _tune(path, "price", tmp_path / "run", space, numeric_scaling="robust")
    done = export_onnx(run, rows=pd.read_csv(path))
    (value,) = _session(done.path).run(None, onnx_feeds(frame.head(30), done.path))
    expected = dnntune.load(run).predict(frame.head(30))["prediction"].to_numpy()
    assert value.shape == (30,)
    np.testing.assert_allclose(value, expected, rtol=1e-5)


@pytest.mark.slow
def test_what_onnx_cannot_express_is_one_line_and_no_file(
    hotel_rows: Path, space: Path, tmp_path: Path, cli
) -> None:
    """The copy encoding looks rows up by a hash of their values: refused, nothing written."""
    run = _tune(hotel_rows, "is_canceled", tmp_path / "run", space, 1, copy_encoding=True)
    manifest = json.loads((run / "model" / "manifest.json").read_text())
    assert any(f["preprocessing"]["copies"] for f in manifest["folds"])
    r = cli("export", str(run))
    assert r.returncode == 2, r
    (line,) = r.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: the model uses the copy encoding") and "copy_encoding" in line
    assert "Traceback" not in r.stderr
    assert not (run / "model.onnx").exists()
    assert not list(run.glob(".model.onnx*"))


def test_export_options_are_checked(cli, tmp_path: Path) -> None:
    r = cli("export", str(tmp_path), "--format", "pmml")
    assert r.returncode == 2 and "error: --format 'pmml' is not one dnntune writes" in r.stderr
    r = cli("export", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "error: " in r.stderr and "Traceback" not in r.stderr
