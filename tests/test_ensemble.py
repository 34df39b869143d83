"""Ensemble selection over the best trials: the pool, the greedy selection, the delivered blend."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import dnntune
from dnntune.artifacts import load_model
from dnntune.config import MetricName, Task
from dnntune.data import load_table
from dnntune.engine import METRICS
from dnntune.ensemble import Pool, ensemble_run, select
from dnntune.testing import TINY_SPACE, write_space

# Wide enough that the trials differ, small enough to train in a second.
SPACE = TINY_SPACE + "dropout: {low: 0.0, high: 0.5, default: 0.1}\n"


@pytest.fixture(scope="module")
def blended(tmp_path_factory: pytest.TempPathFactory, credit_g: Path) -> Path:
    """A run whose delivered model is an ensemble of several trials."""
    tmp = tmp_path_factory.mktemp("ensemble")
    for seed in range(3):  # a blend beats the best trial on credit_g for nearly every seed
        run = tmp / f"run{seed}"
        dnntune.tune(
            data=str(credit_g),
            target="target",
            trials=8,
            folds=3,
            pruner="none",
            baseline=False,
            seed=seed,
            ensemble_pool=5,
            space=str(write_space(tmp / "s.yaml", SPACE)),
            output_dir=str(run),
        )
        if json.loads((run / "summary.json").read_text())["ensemble"]["delivered"]:
            return run
    pytest.fail("no seed gave an ensemble better than its best trial")


def _resume(run: Path, credit_g: Path, **extra: object) -> dnntune.TuneResult:
    """Resume a copy of the blended run's study with its settings (its 8 trials are done, so
    no trial runs: the study delivers again)."""
    config = json.loads((run / "summary.json").read_text())["config"]
    return dnntune.tune(
        data=str(credit_g),
        target="target",
        folds=3,
        pruner="none",
        baseline=False,
        seed=config["seed"],
        trials=8,
        space=config["space"],
        output_dir=str(run),
        ensemble_pool=5,
        **extra,
    )


def _pool_predictions(run: Path) -> dict[int, np.ndarray]:
    return {
        int(p.stem.removeprefix("trial")): load_file(str(p))["oof"].numpy().astype(np.float64)
        for p in (run / "pool").glob("trial*.safetensors")
    }


def test_the_stated_score_is_reproduced_from_the_saved_predictions_and_weights(
    blended: Path, credit_g: Path
) -> None:
    summary = json.loads((blended / "summary.json").read_text())
    chosen = summary["ensemble"]
    weights = {m["trial"]: m["weight"] for m in chosen["members"]}
    assert len(weights) >= 2 and sum(weights.values()) == pytest.approx(1.0)
    predictions = _pool_predictions(blended)
    truth = load_file(str(blended / "pool" / "truth.safetensors"))
    y = load_table(str(credit_g)).frame["target"].to_numpy()[truth["row_ids"].numpy()]
    np.testing.assert_array_equal(truth["truth"].numpy(), y)
    blend = sum(w * predictions[t] for t, w in weights.items())
    auc = METRICS[MetricName.ROC_AUC]
    assert auc(y, blend, Task.BINARY) == pytest.approx(chosen["value"], abs=1e-12)
    best = chosen["best_trial"]
    assert best["trial"] == summary["best_trial"]
    assert auc(y, predictions[best["trial"]], Task.BINARY) == pytest.approx(best["value"])
    assert chosen["value"] >= best["value"]
    # On the proper score too: the blend's log loss is no worse than the best trial's.
    logloss = METRICS[MetricName.LOGLOSS]
    proper = chosen["proper_score"]
    assert proper["name"] == "logloss"
    assert logloss(y, blend, Task.BINARY) == pytest.approx(proper["value"], abs=1e-12)
    assert logloss(y, predictions[best["trial"]], Task.BINARY) == pytest.approx(
        proper["best_trial_value"]
    )
    assert proper["value"] <= proper["best_trial_value"]
    assert chosen["value"] > best["value"] or proper["value"] < proper["best_trial_value"]
    # The model folder says the same.
    manifest = json.loads((blended / "model" / "manifest.json").read_text())
    assert manifest["oof_value"] == pytest.approx(chosen["value"], abs=1e-12)
    assert {m["trial"]: m["weight"] for m in manifest["members"]} == weights
    assert manifest["best_trial"] == summary["best_trial"]  # what resuming compares with


def test_the_saved_ensemble_predicts_its_out_of_fold_blend(blended: Path, credit_g: Path) -> None:
    manifest = json.loads((blended / "model" / "manifest.json").read_text())
    oof = pd.read_csv(blended / "model" / manifest["oof_predictions"])
    assert sorted(oof["row"]) == list(range(1000)) and set(oof["fold"]) == {0, 1, 2}
    loaded = load_model(blended)
    frame = load_table(str(credit_g)).frame
    folds = [int(f["fold"]) for f in manifest["folds"]]
    weights = {m["trial"]: m["weight"] for m in manifest["members"]}
    for k in range(3):
        rows = oof[oof["fold"] == k]
        blend = np.zeros(len(rows))
        networks = zip(manifest["folds"], loaded.preprocessors, loaded.models, strict=True)
        for entry, pre, model in networks:
            if entry["fold"] != k:
                continue
            x = torch.from_numpy(pre.transform(frame.iloc[rows["row"]]))
            with torch.inference_mode():
                blend += weights[entry["trial"]] * torch.sigmoid(model(x))[:, 0].numpy()
        np.testing.assert_allclose(rows["proba_1"], blend, rtol=1e-5, atol=1e-6)
    # predict: each member's folds averaged, the members weighted.
    shares = loaded.shares()
    assert shares.sum() == pytest.approx(1.0) and len(shares) == len(folds)
    out = dnntune.load(blended).predict(frame.head(20))
    assert out["proba_1"].between(0, 1).all()


def test_the_pool_keeps_the_best_trials_only(blended: Path) -> None:
    import optuna

    study = optuna.load_study(
        study_name=json.loads((blended / "summary.json").read_text())["study"],
        storage=f"sqlite:///{blended / 'study.db'}",
    )
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    best = sorted(done, key=lambda t: -t.value)[:5]
    assert set(_pool_predictions(blended)) == {t.number for t in best}


def test_refit_of_an_ensemble_refits_each_member(cli, blended: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(blended, copy)
    r = cli("refit", str(copy))
    assert r.returncode == 0, r
    manifest = json.loads((copy / "model" / "manifest.json").read_text())
    members = [m["trial"] for m in manifest["members"]]
    assert [e["trial"] for e in manifest["refit"]] == members
    loaded = load_model(copy, refit=True)
    weights = [m["weight"] for m in manifest["members"]]
    np.testing.assert_allclose(loaded.shares(), weights)
    r = cli("show", str(copy))
    assert r.returncode == 0, r
    assert f"Ensemble of {len(members)} trials (trial {members[0]} x" in r.stdout
    assert "(the ensemble)" in r.stdout
    for trial in members:
        assert f"trial {trial}: " in r.stdout  # the refit line


def test_the_ensemble_command_and_no_ensemble_put_back_the_best_trial(
    cli, blended: Path, tmp_path: Path, credit_g: Path
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(blended, copy)
    best = json.loads((copy / "summary.json").read_text())["best_trial"]
    r = cli("ensemble", str(copy), "--size", "1")  # one round: the best trial alone
    assert r.returncode == 0, r
    assert "Ensemble of 1 trial(s)" in r.stdout and "the best trial is delivered" in r.stdout
    manifest = json.loads((copy / "model" / "manifest.json").read_text())
    assert [m["trial"] for m in manifest["members"]] == [best]
    assert sorted(f["fold"] for f in manifest["folds"]) == [0, 1, 2]
    assert sorted(p.name for p in (copy / "model").glob("*.safetensors")) == [
        f"trial{best}_fold{k}.safetensors" for k in range(3)
    ]
    r = cli("ensemble", str(copy))  # the default rounds: the blend again
    assert r.returncode == 0 and "; delivered" in r.stdout, r
    assert len(json.loads((copy / "model" / "manifest.json").read_text())["members"]) > 1
    # Resuming with the ensemble off delivers the best trial alone.
    _resume(copy, credit_g, ensemble=False)
    manifest = json.loads((copy / "model" / "manifest.json").read_text())
    assert [m["trial"] for m in manifest["members"]] == [best]
    r = cli("ensemble", str(tmp_path / "missing"))
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_greedy_selection_blends_complementary_predictions() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    signal = y + rng.normal(0, 1.0, 400)
    a = 1 / (1 + np.exp(-(signal + rng.normal(0, 1.5, 400))))
    b = 1 / (1 + np.exp(-(signal + rng.normal(0, 1.5, 400))))
    noise = rng.uniform(size=400)
    metric = METRICS[MetricName.ROC_AUC]
    members, value, rounds = select([a, b, noise], y, metric, Task.BINARY, rounds=10)
    assert {j for j, _ in members} == {0, 1}  # the noise is never picked
    assert sum(w for _, w in members) == pytest.approx(1.0)
    single = max(metric(y, p, Task.BINARY) for p in (a, b))
    assert rounds[0] == pytest.approx(single)  # round 1: the best alone
    assert value > single and value == max(rounds)
    blend = sum(w * [a, b, noise][j] for j, w in members)
    assert metric(y, blend, Task.BINARY) == pytest.approx(value)


def test_a_run_without_pool_is_refused_in_one_line(tmp_path: Path, credit_g: Path) -> None:
    from dnntune.exceptions import DataError

    run = tmp_path / "run"
    dnntune.tune(
        data=str(credit_g),
        target="target",
        trials=1,
        folds=2,
        baseline=False,
        ensemble=False,
        space=str(write_space(tmp_path / "s.yaml")),
        output_dir=str(run),
    )
    assert not (run / "pool").exists()
    with pytest.raises(DataError, match=r"no ensemble pool in .*; run dnntune tune with the"):
        ensemble_run(run)
    assert Pool(run, 5, METRICS[MetricName.ROC_AUC]).entries() == []


def test_a_near_constant_candidate_never_enters_the_blend(blended: Path, tmp_path: Path) -> None:
    """A pooled trial whose predictions are constant within each fold, at per-fold offsets that
    happen to fit those folds' base rates, is left out of the selection."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    copy = tmp_path / "run"
    shutil.copytree(blended, copy)
    truth = load_file(str(copy / "pool" / "truth.safetensors"))
    folds, y = truth["folds"].numpy(), truth["truth"].numpy()
    summary = json.loads((copy / "summary.json").read_text())
    best = summary["best_trial"]
    flat_trial = next(t for t in _pool_predictions(copy) if t != best)
    path = copy / "pool" / f"trial{flat_trial}.safetensors"
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iter)
    offsets = np.array([y[folds == k].mean() for k in folds], dtype=np.float32)
    tensors["oof"] = torch.from_numpy(offsets + np.float32(1e-5) * (np.arange(len(y)) % 2))
    save_file(tensors, str(path), metadata=metadata)
    selection = ensemble_run(copy)
    assert flat_trial in selection.excluded
    assert flat_trial not in [t for t, _ in selection.members]
    assert (
        flat_trial
        in json.loads((copy / "summary.json").read_text())["ensemble"]["excluded_near_constant"]
    )


def test_a_blend_that_squeezes_probabilities_is_not_delivered() -> None:
    """A blend that wins on ROC-AUC by squeezing probabilities toward the middle loses on log
    loss: selected on the proper score and checked on both, the best trial stays alone."""
    from dnntune.ensemble import Selection, passes_rule

    auc, logloss = METRICS[MetricName.ROC_AUC], METRICS[MetricName.LOGLOSS]
    squeezed = Selection("roc_auc", [(1, 0.5), (2, 0.5)], 0.853, 1, 0.841, "logloss", 0.544, 0.458)
    assert not passes_rule(squeezed, auc, logloss)
    honest = Selection("roc_auc", [(1, 0.5), (2, 0.5)], 0.853, 1, 0.841, "logloss", 0.450, 0.458)
    assert passes_rule(honest, auc, logloss)
    tie = Selection("roc_auc", [(1, 0.5), (2, 0.5)], 0.841, 1, 0.841, "logloss", 0.458, 0.458)
    assert not passes_rule(tie, auc, logloss)


def test_the_ensemble_command_keeps_refit_models_and_a_resumed_study_keeps_its_size(
    cli, blended: Path, tmp_path: Path, credit_g: Path
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(blended, copy)
    assert cli("refit", str(copy)).returncode == 0
    before = [
        m["trial"] for m in json.loads((copy / "model" / "manifest.json").read_text())["members"]
    ]
    summary = json.loads((copy / "summary.json").read_text())
    best = summary["best_trial"]
    r = cli("ensemble", str(copy), "--size", "1")
    assert r.returncode == 0, r
    manifest = json.loads((copy / "model" / "manifest.json").read_text())
    if best in before:  # the member that stays keeps its refit network
        assert [e["trial"] for e in manifest["refit"]] == [best]
        dnntune.load(copy, refit=True)
    else:
        assert manifest["refit"] == [] and "the refit models were left out" in r.stderr
    # Resuming the study (no trial left to run) selects with the size the user chose.
    result = _resume(copy, credit_g)
    assert any("ensemble --size 1" in note for note in result.notes), result.notes
    manifest = json.loads((copy / "model" / "manifest.json").read_text())
    assert [m["trial"] for m in manifest["members"]] == [best]
    # The result describes what was delivered, and scores it as the summary does.
    assert result.delivered is not None and not result.delivered.manifest.is_ensemble
    assert len(result.models) == 3 and result.model is result.models[0]
    assert result.scores is not None
    assert result.scores.delivered.candidate == f"delivered model (trial {best})"
    stored = json.loads((copy / "summary.json").read_text())["scores"]
    assert stored == result.scores.to_dict()
