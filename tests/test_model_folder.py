"""The model folder has one format: a folder written by any writer (the study, the ensemble,
refit, an estimator's save) loads through every reader (load_model, predict in Python and on
the command line, show, the estimators' load, the report)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dnntune
import dnntune.sklearn
from dnntune.artifacts import FORMAT_VERSION, ModelManifest, load_model, read_manifest
from dnntune.data import load_table
from dnntune.refit import refit
from dnntune.testing import TINY_SPACE, write_space

SPACE = TINY_SPACE + "dropout: {low: 0.0, high: 0.5, default: 0.1}\n"


def _tune(run: Path, credit_g: Path, space: Path, *, seed: int, ensemble: bool) -> Path:
    dnntune.tune(
        data=str(credit_g),
        target="target",
        trials=6 if ensemble else 1,
        folds=3,
        pruner="none",
        baseline=False,
        ensemble=ensemble,
        ensemble_pool=5,
        seed=seed,
        space=str(space),
        output_dir=str(run),
    )
    return run


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, credit_g: Path) -> dict[str, Path]:
    """One model folder per writer."""
    tmp = tmp_path_factory.mktemp("folders")
    space = write_space(tmp / "s.yaml", SPACE)
    out = {"study": _tune(tmp / "study", credit_g, space, seed=0, ensemble=False)}
    for seed in range(4):  # a blend beats the best trial on credit_g for nearly every seed
        run = _tune(tmp / f"ensemble{seed}", credit_g, space, seed=seed, ensemble=True)
        if json.loads((run / "summary.json").read_text())["ensemble"]["delivered"]:
            out["ensemble"] = run
            break
    assert "ensemble" in out, "no seed gave a delivered ensemble"
    out["refit"] = shutil.copytree(out["ensemble"], tmp / "refit")
    refit(out["refit"])
    frame = load_table(str(credit_g)).frame
    X, y = frame.drop(columns="target"), frame["target"]
    estimator = dnntune.sklearn.DNNClassifier(num_layers=1, hidden_size=16, epochs=3)
    out["estimator"] = estimator.fit(X, y).save(tmp / "estimator")
    return out


WRITERS = ["study", "ensemble", "refit", "estimator"]


@pytest.mark.parametrize("writer", WRITERS)
def test_every_writer_leaves_a_folder_every_reader_loads(
    writer: str, folders: dict[str, Path], cli, credit_g: Path, tmp_path: Path
) -> None:
    folder = folders[writer]
    model = folder / "model" if (folder / "model").is_dir() else folder
    manifest = read_manifest(model)
    raw = json.loads((model / "manifest.json").read_text())
    assert raw["format_version"] == FORMAT_VERSION
    assert ModelManifest.from_dict(raw, model) == manifest  # what is written is what is read
    assert {p.name for p in model.iterdir() if not p.name.startswith(".")} == {
        "manifest.json",
        *manifest.files(),
    }
    assert manifest.is_ensemble == (writer in ("ensemble", "refit"))
    assert bool(manifest.refit) == (writer == "refit")
    assert (manifest.estimator is not None) == (writer == "estimator")

    frame = load_table(str(credit_g)).frame.head(50)
    loaded = load_model(folder)
    assert len(loaded.models) == len(manifest.folds)
    assert np.isclose(loaded.shares().sum(), 1.0)
    proba = dnntune.load(folder).predict_array(frame)
    estimator = dnntune.sklearn.load(folder)
    X = frame.drop(columns="target")
    np.testing.assert_allclose(estimator.predict_proba(X)[:, 1], proba, atol=1e-6)
    r = cli("predict", str(folder), "--data", str(credit_g), "--output", str(tmp_path / "p.csv"))
    assert r.returncode == 0, r
    from_cli = pd.read_csv(tmp_path / "p.csv")["proba_1"].to_numpy()[:50]
    np.testing.assert_allclose(from_cli, proba, atol=1e-6)
    r = cli("show", str(folder))
    assert r.returncode == 0 and "task:        binary" in r.stdout, r
    if manifest.is_ensemble:
        assert f"Ensemble of {len(manifest.members)} trials" in r.stdout
    if writer == "refit":
        refit = dnntune.load(folder, refit=True).predict_array(frame)
        assert refit.shape == proba.shape and "refit:       trial " in r.stdout
    if writer != "estimator":  # a run folder: its study and summary make a report
        r = cli("report", str(folder))
        assert r.returncode == 0 and (folder / "report.html").is_file(), r
    if writer in ("ensemble", "refit"):  # (one trial's model: tests/test_export.py)
        _exports_as_predict_predicts(folder, frame, tmp_path, refit=writer == "refit")


def _exports_as_predict_predicts(
    folder: Path, frame: pd.DataFrame, tmp_path: Path, *, refit: bool
) -> None:
    """The ONNX export holds every network of the folder (each member's, with its weight)."""
    ort = pytest.importorskip("onnxruntime")
    from dnntune.export import export_onnx, onnx_feeds

    done = export_onnx(folder, tmp_path / "model.onnx", refit=refit)
    assert done.networks == len(load_model(folder, refit=refit).models)
    session = ort.InferenceSession(str(done.path), providers=["CPUExecutionProvider"])
    proba, _ = session.run(None, onnx_feeds(frame, done.path))
    expected = dnntune.load(folder, refit=refit).predict_array(frame)
    np.testing.assert_allclose(proba[:, 1], expected, atol=1e-5)


def test_evaluate_scores_every_candidate_as_scikit_learn_does(
    folders: dict[str, Path], cli, credit_g: Path, tmp_path: Path
) -> None:
    from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score

    run = folders["refit"]  # an ensemble, with its refit models
    rows = load_table(str(credit_g)).frame.sample(150, random_state=3)
    rows.to_csv(tmp_path / "labelled.csv", index=False)
    r = cli("evaluate", str(run), "--data", str(tmp_path / "labelled.csv"))
    assert r.returncode == 0, r
    assert "Leaderboard on 150 labelled rows" in r.stdout
    board = {
        row["candidate"]: row
        for row in json.loads((run / "evaluation.json").read_text())["leaderboard"]
    }
    manifest = read_manifest(run / "model")
    names = set(board)
    assert f"delivered model (ensemble of {len(manifest.members)} trials)" in names
    assert f"best trial {manifest.best_trial} alone" in names
    assert {"refit model (all rows)", "baseline HistGradientBoosting (the study's rows)"} < names
    y = rows["target"].to_numpy()
    delivered = f"delivered model (ensemble of {len(manifest.members)} trials)"
    for name, on_all_rows in ((delivered, False), ("refit model (all rows)", True)):
        p = dnntune.load(run, refit=on_all_rows).predict_array(rows)
        row = board[name]
        assert row["roc_auc"] == pytest.approx(roc_auc_score(y, p))
        assert row["logloss"] == pytest.approx(log_loss(y, p))
        assert row["accuracy"] == pytest.approx(accuracy_score(y, p >= 0.5))
        assert row["brier"] == pytest.approx(brier_score_loss(y, p))
    # The labelled rows must carry the target, and labels the model knows.
    rows.drop(columns="target").to_csv(tmp_path / "unlabelled.csv", index=False)
    r = cli("evaluate", str(run), "--data", str(tmp_path / "unlabelled.csv"))
    assert r.returncode == 2 and "lacks the target column 'target'" in r.stderr, r
    rows.assign(target=7).to_csv(tmp_path / "odd.csv", index=False)
    r = cli("evaluate", str(run), "--data", str(tmp_path / "odd.csv"), "--no-baseline")
    assert r.returncode == 2 and "labels the model never saw: '7'" in r.stderr, r
    assert "Traceback" not in r.stderr


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize(
    ("damage", "command", "message"),
    [
        (lambda run: _truncate(run / "pool" / "truth.safetensors"), ("ensemble",),
         "the ensemble pool's file"),
        (lambda run: _truncate(run / "pool" / "fold0.json"), ("ensemble", "--size", "1"),
         "the ensemble pool's file"),
        (lambda run: _truncate(run / "model" / "manifest.json"), ("show",),
         "is not a readable JSON manifest"),
        (lambda run: next((run / "model").glob("*.safetensors")).unlink(), ("show",),
         "are missing or do not match the manifest's checksum"),
        (lambda run: (run / "summary.json").unlink(), ("report",), "no summary.json in"),
        (lambda run: _truncate(run / "study.db"), ("report",), "cannot open storage"),
    ],
)  # fmt: skip
def test_a_damaged_run_folder_is_one_line(
    damage, command: tuple[str, ...], message: str, folders: dict[str, Path], cli, tmp_path: Path
) -> None:
    run = shutil.copytree(folders["ensemble"], tmp_path / "run")
    damage(run)
    r = cli(command[0], str(run), *command[1:])
    assert r.returncode == 2, r
    assert r.stderr.startswith("error: ") and message in r.stderr, r
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_evaluate_metrics_for_classes_and_labels_are_scikit_learn_s() -> None:
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    from dnntune.config import Task
    from dnntune.evaluate import score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    p = rng.dirichlet(np.ones(3), 200)
    assert score("brier", y, p, Task.MULTICLASS) == pytest.approx(
        np.mean(np.sum((np.eye(3)[y] - p) ** 2, axis=1))
    )
    assert score("logloss", y, p, Task.MULTICLASS) == pytest.approx(log_loss(y, p))
    labels = rng.integers(0, 2, (200, 2))
    q = rng.random((200, 2))
    assert score("brier", labels, q, Task.MULTILABEL) == pytest.approx(
        np.mean([brier_score_loss(labels[:, j], q[:, j]) for j in range(2)])
    )
    assert score("roc_auc", labels, q, Task.MULTILABEL) == pytest.approx(
        np.mean([roc_auc_score(labels[:, j], q[:, j]) for j in range(2)])
    )
