"""Architectures (MLP, TabM, TabM-mini) and numeric embeddings (periodic, piecewise-linear) from
their authors' packages; named spaces and ``extends:``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rtdl_num_embeddings
import tabm
import torch

import dnntune
from dnntune.artifacts import load_model
from dnntune.config import Preprocessing
from dnntune.data import Dataset, Preprocessor, load_table, plan_columns, prepare_fold
from dnntune.data._target import encode_target, infer_task
from dnntune.exceptions import SpaceError
from dnntune.model import EmbeddedInputs, TabMNet, make_model
from dnntune.space import NAMED_SPACES, FixedParam, load_space, parse_space
from dnntune.testing import write_space

ARCHITECTURES = ("mlp", "tabm", "tabm-mini")
EMBEDDINGS = ("none", "periodic", "piecewise_linear")


def _space(architecture: str, embeddings: str) -> str:
    return (
        f"architecture: {architecture}\nnum_embeddings: {embeddings}\n"
        "num_layers: 1\nhidden_size: 16\ndropout: 0.1\nlearning_rate: 3.0e-3\n"
        f"ensemble_size: {1 if architecture == 'mlp' else 4}\nd_embedding: 8\n"
        "n_frequencies: 8\nepochs: 2\n"
    )


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("embeddings", EMBEDDINGS)
def test_each_architecture_and_embedding_trains_saves_loads_and_predicts_identically(
    cli, tmp_path: Path, credit_g: Path, architecture: str, embeddings: str
) -> None:
    space = write_space(tmp_path / "s.yaml", _space(architecture, embeddings))
    run = tmp_path / "run"
    r = cli(
        "tune", "--data", str(credit_g), "--target", "target", "--trials", "1", "--folds", "2",
        "--space", str(space), "--output-dir", str(run), "--no-baseline", "--no-ensemble",
        "--no-report",
    )  # fmt: skip
    assert r.returncode == 0, r
    manifest = json.loads((run / "model" / "manifest.json").read_text())
    arch = manifest["members"][0]["architecture"]
    assert (arch["architecture"], arch["num_embeddings"]) == (architecture, embeddings)
    # The loaded fold models give exactly the out-of-fold predictions made in training.
    loaded = load_model(run)
    kinds = {TabMNet if architecture != "mlp" else torch.nn.Sequential}
    assert {type(m) for m in loaded.models} == kinds
    if embeddings != "none":
        assert any(isinstance(m, EmbeddedInputs) for m in loaded.models[0].modules())
    frame = load_table(str(credit_g)).frame
    oof = pd.read_csv(run / "model" / manifest["oof_predictions"])
    for k, (pre, model) in enumerate(zip(loaded.preprocessors, loaded.models, strict=True)):
        rows = oof[oof["fold"] == k]
        x = torch.from_numpy(pre.transform(frame.iloc[rows["row"]]))
        with torch.inference_mode():
            proba = torch.sigmoid(model(x))[:, 0].numpy()
        np.testing.assert_allclose(rows["proba_1"], proba, rtol=1e-5, atol=1e-6)
    # dnntune predict writes what the Python predictor gives.
    r = cli("predict", str(run), "--data", str(credit_g), "--output", "p.csv")
    assert r.returncode == 0, r
    written = pd.read_csv(tmp_path / "p.csv")
    np.testing.assert_allclose(
        written["proba_1"], dnntune.load(run).predict(frame)["proba_1"], rtol=1e-6
    )
    r = cli("show", str(run))
    assert r.returncode == 0 and f"network:     {architecture}" in r.stdout, r


def test_the_packages_own_modules_build_the_networks() -> None:
    from dnntune.data import InputLayout

    layout = InputLayout(
        6, numeric=(0, 2), encoded=(3, 4), bins=((-1.0, 0.0, 1.0), (-1.0, 0.5, 1.0))
    )
    model = make_model(
        layout=layout,
        d_out=3,
        architecture="tabm",
        num_embeddings="piecewise_linear",
        num_layers=2,
        hidden_size=16,
        ensemble_size=5,
        d_embedding=4,
    )
    assert isinstance(model, TabMNet)
    assert isinstance(model.backbone, tabm.MLPBackboneBatchEnsemble)
    assert isinstance(model.head, tabm.LinearEnsemble)
    embed = model.inputs.embed
    assert isinstance(embed, rtdl_num_embeddings.PiecewiseLinearEmbeddings)
    # Two numeric columns embedded in 4, and the two columns that are neither numeric nor
    # the preprocessing's bins (1 and 5) as they are.
    assert model.inputs.others.tolist() == [1, 5] and model.inputs.d_out == 2 * 4 + 2
    x = torch.randn(7, 6)
    assert model.train()(x).shape == (7, 5, 3)  # each member's outputs in training
    assert model.eval()(x).shape == (7, 3)  # their mean in eval mode
    mini = make_model(layout=6, d_out=1, architecture="tabm-mini", num_layers=1, hidden_size=8)
    assert isinstance(mini.backbone, tabm.MLPBackboneMiniEnsemble)
    periodic = make_model(
        layout=layout, d_out=1, num_embeddings="periodic", num_layers=1, hidden_size=8
    )
    assert isinstance(periodic[0].embed, rtdl_num_embeddings.PeriodicEmbeddings)


def test_bins_come_from_training_rows_only(wine: Path) -> None:
    frame = load_table(str(wine)).frame
    features = frame.drop(columns="target")
    target = encode_target(frame[["target"]], infer_task(frame[["target"]]))
    folds = np.arange(len(frame)) % 2
    plan = plan_columns(features)
    settings = Preprocessing()

    def bins(data: pd.DataFrame) -> dict[str, list[float]]:
        dataset = Dataset(data, target, folds, plan, source="wine")
        fold = prepare_fold(dataset, 0, torch.device("cpu"), settings)
        return fold.preprocessor.embedding_bins_

    before = bins(features)
    assert all(len(b) > 2 for b in before.values())  # real quantile bins, not a fallback
    changed = features.copy()
    valid = folds == 0  # fold 0 validates on these rows
    changed.loc[valid, "alcohol"] = changed.loc[valid, "alcohol"] * 100
    assert bins(changed) == before
    changed.loc[np.flatnonzero(~valid)[:500], "alcohol"] = 20.0  # a training row changes
    assert bins(changed)["alcohol"] != before["alcohol"]


def test_a_regression_with_embeddings_round_trips_through_the_python_api(
    tmp_path: Path, wine: Path
) -> None:
    """Wine is large enough for the preprocessing's own bins, which embeddings replace."""
    space = write_space(tmp_path / "s.yaml", _space("tabm-mini", "piecewise_linear"))
    result = dnntune.tune(
        str(wine), "target", trials=1, folds=2, space=str(space), baseline=False,
        ensemble=False, task="regression", output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    loaded = load_model(tmp_path / "run")
    layout = loaded.preprocessors[0].layout()
    assert layout.encoded and len(layout.numeric) == 11
    frame = load_table(str(wine)).frame.head(30)
    out = dnntune.load(tmp_path / "run").predict(frame)["prediction"]
    assert np.isfinite(out).all() and result.best_value > 0


def test_named_spaces_and_extends_load(tmp_path: Path) -> None:
    assert {"default", "classic", "mlp", "mlp-plr", "mlp-ple", "tabm"} <= set(NAMED_SPACES)
    for name in NAMED_SPACES:
        space = load_space(name)
        assert space.source == name and space.warm_start() is not None, name
    tabm_space = load_space("tabm")
    assert tabm_space.params["architecture"] == FixedParam("architecture", "tabm")
    assert tabm_space.params["ensemble_size"] == FixedParam("ensemble_size", 32)
    start = tabm_space.warm_start()
    assert start is not None
    assert (start["num_layers"], start["hidden_size"], start["learning_rate"]) == (3, 512, 2e-3)
    assert start["weight_decay"] == 3e-4
    assert set(parse_space("classic").tuned) == {
        "optimizer", "num_layers", "hidden_size", "dropout", "learning_rate"
    }  # fmt: skip
    path = write_space(tmp_path / "s.yaml", "extends: tabm\nensemble_size: 8\nepochs: 3\n")
    extended = load_space(path)
    assert extended.params["ensemble_size"] == FixedParam("ensemble_size", 8)
    assert extended.params["hidden_size"] == tabm_space.params["hidden_size"]
    assert extended.params["epochs"] == FixedParam("epochs", 3)
    bad = write_space(tmp_path / "b.yaml", "extends: tabn\n")
    with pytest.raises(SpaceError, match=r"'extends' names 'tabn', which is no named space"):
        load_space(bad)


def test_a_named_space_runs_from_the_command_line(cli, tmp_path: Path, credit_g: Path) -> None:
    space = write_space(
        tmp_path / "s.yaml",
        "extends: mlp-ple\nnum_layers: 1\nhidden_size: 16\nepochs: 2\nd_embedding: 8\n",
    )
    r = cli(
        "tune", "--data", str(credit_g), "--target", "target", "--trials", "2", "--folds", "2",
        "--space", str(space), "--output-dir", "run", "--no-baseline", "--no-report",
    )  # fmt: skip
    assert r.returncode == 0, r
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["trials"]["complete"] == 2
    r = cli("tune", "--data", str(credit_g), "--target", "target", "--space", "tabn")
    assert r.returncode == 2 and "name a space: default, classic" in r.stderr, r


def test_bins_are_distinct_in_float32() -> None:
    """Values that differ in float64 only (0.3 and 0.1 + 0.2, as sums in a file give) make
    quantiles the network's float32 cannot tell apart; the bins stay valid."""
    rng = np.random.default_rng(0)
    x = np.r_[np.full(300, 0.3), np.full(300, 0.1 + 0.2), rng.normal(size=400)]
    frame = pd.DataFrame({"x": x, "z": rng.normal(size=1000)})
    pre = Preprocessor(plan_columns(frame)).fit(frame)
    edges = np.asarray(pre.embedding_bins_["x"], dtype=np.float32)
    assert (np.diff(edges) > 0).all()
    model = make_model(
        layout=pre.layout(), d_out=1, num_embeddings="piecewise_linear", num_layers=1,
        hidden_size=8,
    )  # fmt: skip
    assert model(torch.from_numpy(pre.transform(frame))).shape == (1000, 1)
