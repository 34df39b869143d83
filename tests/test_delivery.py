"""Deliver the model: fold ensemble, out-of-fold predictions, refit, predict, show, safety."""

from __future__ import annotations

import json
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

import dnntune
from dnntune.artifacts import load_model
from dnntune.data import load_table
from dnntune.exceptions import DataError
from dnntune.testing import TINY_SPACE, write_space


def _ensemble_on(result: dnntune.TuneResult, frame: pd.DataFrame) -> np.ndarray:
    """The in-memory fold models of the best trial, averaged, on ``frame``."""
    best = result.best
    assert best is not None
    probs = []
    for i, fold in enumerate(best.folds):
        x = torch.from_numpy(fold.preprocessor.transform(frame))
        with torch.inference_mode():
            probs.append(torch.sigmoid(best.build(i)(x))[:, 0].numpy())
    return np.mean(probs, axis=0)


@pytest.fixture(scope="module")
def credit_run(tmp_path_factory: pytest.TempPathFactory, credit_g: Path):
    tmp = tmp_path_factory.mktemp("credit")
    result = dnntune.tune(
        data=str(credit_g),
        target="target",
        trials=3,
        folds=3,
        space=str(write_space(tmp / "s.yaml")),
        output_dir=str(tmp / "run"),
        ensemble=False,  # the best trial's fold models (tests/test_ensemble.py: the blend)
    )
    return result, tmp / "run"


def test_predict_on_training_file_equals_the_ensemble(
    cli, tmp_path: Path, credit_g: Path, credit_run
) -> None:
    result, run = credit_run
    r = cli("predict", "--model", str(run), "--data", str(credit_g), "--output", "p.csv")
    assert r.returncode == 0, r
    assert "wrote p.csv (1000 rows, 3 fold models)" in r.stdout
    assert "note: ignored 1 column(s) the model does not use" not in r.stderr  # target is known
    pred = pd.read_csv(tmp_path / "p.csv")
    assert list(pred.columns) == ["proba_0", "proba_1", "prediction"]
    expected = _ensemble_on(result, load_table(str(credit_g)).frame)
    np.testing.assert_allclose(pred["proba_1"], expected, rtol=1e-5, atol=1e-6)
    assert set(pred["prediction"]) <= {0, 1}
    assert (pred["prediction"] == (pred["proba_1"] >= 0.5).astype(int)).all()


def test_out_of_fold_predictions_and_metric_are_saved(credit_run, credit_g: Path) -> None:
    _, run = credit_run
    manifest = json.loads((run / "model" / "manifest.json").read_text())
    oof = pd.read_csv(run / "model" / manifest["oof_predictions"])
    assert sorted(oof["row"]) == list(range(1000)) and set(oof["fold"]) == {0, 1, 2}
    y = load_table(str(credit_g)).frame["target"].to_numpy()
    assert manifest["oof_value"] == pytest.approx(roc_auc_score(y[oof["row"]], oof["proba_1"]))
    # Each row's OOF prediction comes from the model that did not see it.
    loaded = load_model(run)
    frame = load_table(str(credit_g)).frame
    for k in range(3):
        rows = oof[oof["fold"] == k]
        x = torch.from_numpy(loaded.preprocessors[k].transform(frame.iloc[rows["row"]]))
        with torch.inference_mode():
            p = torch.sigmoid(loaded.models[k](x))[:, 0].numpy()
        np.testing.assert_allclose(rows["proba_1"], p, rtol=1e-5, atol=1e-6)


def test_python_api_load_predict(credit_run, credit_g: Path) -> None:
    result, run = credit_run
    frame = load_table(str(credit_g)).frame.head(50)
    predictor = dnntune.load(run)
    out = predictor.predict(frame)
    np.testing.assert_allclose(out["proba_1"], _ensemble_on(result, frame), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_column_checks(cli, tmp_path: Path, credit_g: Path, credit_run) -> None:
    _, run = credit_run
    frame = load_table(str(credit_g)).frame
    frame.drop(columns=["age", "duration"]).to_csv(tmp_path / "removed.csv", index=False)
    r = cli("predict", "--model", str(run), "--data", "removed.csv", "--output", "p.csv")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "error: the data lacks 2 columns the model needs: 'duration', 'age'" in r.stderr
    assert not (tmp_path / "p.csv").exists()

    frame.rename(columns={"age": "agee"}).to_csv(tmp_path / "renamed.csv", index=False)
    r = cli("predict", str(run), "--data", "renamed.csv", "--output", "p.csv")  # as show
    assert r.returncode == 2
    assert "lacks 1 column the model needs: 'age' (did you mean 'agee'?)" in r.stderr

    typo = frame.astype({"age": object, "duration": object})
    typo.loc[3, "age"] = "abc"
    typo.loc[[5, 6], "duration"] = None  # empty cells are missing values, not typos
    typo.to_csv(tmp_path / "typo.csv", index=False)
    r = cli("predict", "--model", str(run), "--data", "typo.csv", "--output", "p.csv")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (
        "error: the model reads column 'age' as numbers, but the data has 1 value that is not "
        "a number, e.g. 'abc' in data row 4; fix it or leave the cell empty" in r.stderr
    )
    assert not (tmp_path / "p.csv").exists()
    typo.loc[3, "age"] = None
    typo.to_csv(tmp_path / "typo.csv", index=False)
    r = cli("predict", "--data", "typo.csv", "--output", "p.csv")
    assert r.returncode == 2 and "error: name the run folder: dnntune predict runs/NAME" in r.stderr
    r = cli("predict", str(run), "--model", str(tmp_path), "--data", "typo.csv")
    assert r.returncode == 2 and "two run folders given" in r.stderr
    r = cli("predict", str(run), "--model", str(run), "--data", "typo.csv", "--output", "p.csv")
    assert r.returncode == 0, r
    assert pd.read_csv(tmp_path / "p.csv")["proba_1"].notna().all()
    (tmp_path / "p.csv").unlink()

    new_level = frame.assign(purpose=999, extra_col="x")
    new_level.to_csv(tmp_path / "new.csv", index=False)
    r = cli(
        "predict",
        "--model",
        str(run),
        "--data",
        "new.csv",
        "--output",
        "p.csv",
        "--id-column",
        "age",
    )
    assert r.returncode == 0, r
    assert "note: ignored 1 column(s) the model does not use: 'extra_col'" in r.stderr
    pred = pd.read_csv(tmp_path / "p.csv")
    assert pred.columns[0] == "age" and len(pred) == 1000
    assert pred["proba_1"].between(0, 1).all()


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
def test_pickled_model_is_refused_and_never_run(cli, tmp_path: Path, credit_g: Path) -> None:
    marker = tmp_path / "pwned"
    targets = []
    for name in ("model.pt", "pytorch_model.bin"):
        evil = tmp_path / name.replace(".", "_")
        evil.mkdir()
        (evil / name).write_bytes(pickle.dumps(_Evil(marker)))
        targets.append((evil / name, evil))
    # Each command on each kind of path: the pickle file itself, and a folder holding one.
    (pt_file, pt_dir), (bin_file, bin_dir) = targets
    for command, target in (("predict", pt_file), ("predict", bin_dir), ("show", bin_file)):
        args = ["--model", str(target), "--data", str(credit_g), "--output", "p.csv"]
        r = cli(command, *args) if command == "predict" else cli(command, str(target))
        assert r.returncode == 2, r
        assert "is a pickle-based file" in r.stderr and "never unpickles" in r.stderr
    r = cli("show", str(pt_dir))
    assert r.returncode == 2 and "is a pickle-based file" in r.stderr
    assert not marker.exists()


def test_manifest_pointing_at_a_pickle_is_refused(tmp_path: Path, credit_run) -> None:
    _, run = credit_run
    bad = tmp_path / "model"
    bad.mkdir()
    manifest = json.loads((run / "model" / "manifest.json").read_text())
    manifest["folds"][0]["weights"] = "fold0.pt"
    (bad / "manifest.json").write_text(json.dumps(manifest))
    (bad / "fold0.pt").write_bytes(pickle.dumps(_Evil(tmp_path / "pwned")))
    with pytest.raises(DataError, match="is a pickle-based file"):
        load_model(bad)
    assert not (tmp_path / "pwned").exists()


def test_tampered_weights_fail_the_checksum(tmp_path: Path, credit_run) -> None:
    import shutil

    _, run = credit_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    manifest = json.loads((copy / "model" / "manifest.json").read_text())
    weights = copy / "model" / manifest["folds"][1]["weights"]
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(DataError, match="do not match the manifest's checksum"):
        load_model(copy)


def _damaged(tmp_path: Path, run: Path, change) -> Path:
    """A copy of the run's model folder whose manifest ``change`` edited in place."""
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(run / "model", copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    change(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda m: m["folds"][0].update(weights="../../secret.safetensors"),
            "names weights '../../secret.safetensors' outside its folder",
        ),
        (
            lambda m: m["members"][0]["architecture"].update(hidden_size=-3),
            "has an invalid architecture: hidden_size must be >= 1, but got -3",
        ),
        (
            lambda m: m["members"][0]["architecture"].update(
                hidden_size=10**9
            ),  # would allocate petabytes
            "has an invalid architecture: hidden_size must be <= 16384, but got 1000000000",
        ),
        (
            lambda m: m["members"][0]["architecture"].update(module="os.system"),
            "has no valid architecture (it needs activation, architecture, batch_norm, ",
        ),
        (lambda m: m.pop("folds"), "lacks 'folds'; restore the model folder or tune again"),
        (lambda m: m["folds"][0].pop("preprocessing"), "lacks 'preprocessing'"),
    ],
)
def test_a_damaged_or_hostile_manifest_is_refused_in_one_line(
    tmp_path: Path, credit_run, change, message: str
) -> None:
    _, run = credit_run
    with pytest.raises(DataError) as refused:
        load_model(_damaged(tmp_path, run, change))
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_pickle_renamed_safetensors_is_refused_and_never_run(tmp_path: Path, credit_run) -> None:
    from dnntune.artifacts import sha256

    _, run = credit_run
    copy = _damaged(tmp_path, run, lambda m: None)
    manifest = json.loads((copy / "manifest.json").read_text())
    weights = copy / manifest["folds"][0]["weights"]
    weights.write_bytes(pickle.dumps(_Evil(tmp_path / "pwned")))
    manifest["folds"][0]["sha256"] = sha256(weights)  # the attacker fixed the checksum too
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"are not a safetensors file \(.*\); dnntune loads"):
        load_model(copy)
    assert not (tmp_path / "pwned").exists()


def test_a_manifest_that_is_not_json_is_refused(tmp_path: Path, credit_run) -> None:
    _, run = credit_run
    copy = _damaged(tmp_path, run, lambda m: None)
    (copy / "manifest.json").write_text('{"format": "dnntune-model", "folds": [')
    with pytest.raises(DataError, match=r"manifest.json' is not a readable JSON manifest \("):
        load_model(copy)


def test_predict_refuses_infinite_values(credit_run, credit_g: Path) -> None:
    _, run = credit_run
    frame = load_table(str(credit_g)).frame
    frame.loc[2, "credit_amount"] = float("inf")
    with pytest.raises(DataError, match=r"column 'credit_amount' has the value inf in data row 3"):
        dnntune.load(run).predict(frame)


def test_show_prints_what_the_model_is(cli, credit_run) -> None:
    _, run = credit_run
    r = cli("show", str(run))
    assert r.returncode == 0, r
    for text in (
        "task:        binary, classes [0, 1]",
        "metric:      roc_auc (maximize): out-of-fold ",
        "out-of-fold",
        "parameters:  {'architecture': 'mlp'",
        "credit_g.tsv.gz (1000 rows, sha256",
        "columns:     20 used\n    numeric:     duration, credit_amount, age\n"
        "    categorical: checking_status, credit_history, purpose, ",
        "copies:      none\n",  # no two applications are alike
        "versions:",
        "Sequential(",
        "Linear(in_features=",
    ):
        assert text in r.stdout


@pytest.mark.slow
def test_refit_trains_on_all_rows_and_predicts(
    cli, tmp_path: Path, credit_g: Path, credit_run
) -> None:
    import shutil

    _, run = credit_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    # Folds that peaked after 1 of their 4 epochs: the refit trains 1 epoch.
    path = copy / "model" / "manifest.json"
    stored = json.loads(path.read_text())
    for fold in stored["folds"]:
        fold["best_epoch"] = 1
    path.write_text(json.dumps(stored))
    r = cli("refit", str(copy))
    assert r.returncode == 0, r
    manifest = json.loads((copy / "model" / "manifest.json").read_text())
    (refit,) = manifest["refit"]
    assert refit["trial"] == manifest["best_trial"] and refit["rows"] == 1000
    assert refit["epochs"] == 1
    assert (copy / "model" / refit["weights"]).is_file()
    # It follows the folds' cosine schedule over their full budget: after 1 of 4 epochs its rate
    # has decayed only as far as theirs had then (a 1-epoch schedule would have reached 0).
    params = manifest["members"][0]["params"]
    assert (refit["lr_schedule"], refit["schedule_epochs"]) == ("cosine", params["epochs"])
    expected_rate = params["learning_rate"] * (1 + math.cos(math.pi * 1 / params["epochs"])) / 2
    assert refit["final_learning_rate"] == pytest.approx(expected_rate, rel=1e-6)
    r = cli(
        "predict", "--model", str(copy), "--data", str(credit_g), "--output", "p.csv", "--refit"
    )
    assert r.returncode == 0, r
    assert "refit model" in r.stdout


@pytest.mark.slow
def test_an_ensemble_per_fold_is_saved_loaded_and_refit(
    cli, tmp_path: Path, credit_g: Path
) -> None:
    space = write_space(tmp_path / "s.yaml", TINY_SPACE + "ensemble_size: 3\n")
    result = dnntune.tune(
        data=str(credit_g),
        target="target",
        trials=1,
        folds=2,
        space=str(space),
        output_dir=str(tmp_path / "run"),
    )
    manifest = json.loads((tmp_path / "run" / "model" / "manifest.json").read_text())
    assert manifest["members"][0]["architecture"]["ensemble_size"] == 3
    r = cli("show", "run")
    assert r.returncode == 0, r
    assert "members=3" in r.stdout
    # The saved fold ensembles predict what the trained ones did (each the mean of 3 networks).
    r = cli("predict", "--model", "run", "--data", str(credit_g), "--output", "p.csv")
    assert r.returncode == 0, r
    pred = pd.read_csv(tmp_path / "p.csv")
    expected = _ensemble_on(result, load_table(str(credit_g)).frame)
    np.testing.assert_allclose(pred["proba_1"], expected, rtol=1e-5, atol=1e-6)
    r = cli("refit", "run")
    assert r.returncode == 0, r
    r = cli("predict", "--model", "run", "--data", str(credit_g), "--output", "r.csv", "--refit")
    assert r.returncode == 0, r
    assert pd.read_csv(tmp_path / "r.csv")["proba_1"].between(0, 1).all()


@pytest.mark.slow
def test_hotel_round_trip(cli, tmp_path: Path, hotel: Path) -> None:
    space = TINY_SPACE.replace("epochs: 4", "epochs: 2")
    result = dnntune.tune(
        data=str(hotel),
        target="is_canceled",
        drop="reservation_status,reservation_status_date",
        trials=1,
        folds=5,
        max_folds=2,
        copy_encoding=True,
        space=str(write_space(tmp_path / "s.yaml", space)),
        output_dir=str(tmp_path / "run"),
    )
    r = cli("predict", "--model", "run", "--data", str(hotel), "--output", "p.parquet")
    assert r.returncode == 0, r
    pred = pd.read_parquet(tmp_path / "p.parquet")
    frame = load_table(str(hotel)).frame
    np.testing.assert_allclose(pred["proba_1"], _ensemble_on(result, frame), rtol=1e-4, atol=1e-5)
    # The bookings repeat each other: the saved model carries its folds' copy tables and
    # recognizes copies in the file it reads again, as the validation rows were read in training.
    loaded = load_model(tmp_path / "run")
    assert all(pre.copies_ is not None for pre in loaded.preprocessors)
    assert loaded.preprocessors[0].feature_names_[-2:] == ["copies__target", "copies__count"]
    manifest = json.loads((tmp_path / "run" / "model" / "manifest.json").read_text())
    oof = pd.read_csv(tmp_path / "run" / "model" / manifest["oof_predictions"])
    for k in (0, 1):
        rows = oof[oof["fold"] == k]
        x = torch.from_numpy(loaded.preprocessors[k].transform(frame.iloc[rows["row"]]))
        with torch.inference_mode():
            p = torch.sigmoid(loaded.models[k](x))[:, 0].numpy()
        np.testing.assert_allclose(rows["proba_1"], p, rtol=1e-4, atol=1e-5)
    r = cli("show", "run")
    assert r.returncode == 0, r
    share = f"{loaded.preprocessors[0].copies_.share:.0%}"
    assert f"copies:      2 inputs from identical training rows ({share} of fold 0's" in r.stdout
