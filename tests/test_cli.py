"""The real CLI in a subprocess, on real files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_cli
from dnntune.testing import TINY_SPACE, synthetic_table

QUICK_WITH_REPORT = ("--folds", "3", "--max-folds", "2", "--no-progress")
QUICK = (*QUICK_WITH_REPORT, "--no-report")  # the report costs seconds; test_report has it


def _space(tmp_path: Path) -> str:
    path = tmp_path / "space.yaml"
    path.write_text(TINY_SPACE)
    return str(path)


@pytest.mark.slow
def test_default_main_job_prints_best_trial_and_model(cli, tmp_path: Path) -> None:
    r = cli("tune", "--trials", "2", "--output-dir", "out")
    assert r.returncode == 0, r
    assert "Trial 0 finished with value: " in r.stdout and "and parameters: {" in r.stdout
    assert "(roc_auc, 5-fold mean)" in r.stdout
    # One estimator for every candidate, the delivered model first.
    scores = r.stdout[r.stdout.index("Scores (roc_auc, maximized; out-of-fold: ") :].splitlines()
    assert scores[1].startswith("  delivered model (") and scores[2].startswith("  best trial ")
    assert scores[3].startswith("  baseline HistGradientBoosting:")
    assert "Sequential(" in r.stdout and "(0): Linear(in_features=" in r.stdout
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metric"] == "roc_auc" and summary["direction"] == "maximize"
    assert summary["trials"]["complete"] == 2
    assert summary["data"] == {"source": "builtin:breast_cancer", "rows": 569, "folds": 5}
    assert summary["best_value"] > 0.95
    assert json.loads((out / "best_params.json").read_text()) == summary["best_params"]
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 2 and "params_optimizer" in trials.columns
    manifest = json.loads((out / "model" / "manifest.json").read_text())
    assert manifest["task"] == "binary"
    # The model is the best trial, or the ensemble of trials that beats it out of fold.
    trials_kept = [m["trial"] for m in manifest["members"]]
    assert summary["best_trial"] in trials_kept
    assert sorted(
        p.name for p in (out / "model").iterdir() if not p.name.startswith(".")
    ) == sorted(
        [f"trial{t}_fold{k}.safetensors" for t in trials_kept for k in range(5)]
        + ["manifest.json", manifest["oof_predictions"]]
    )
    assert not list(out.rglob("*.pt")) and not list(out.rglob("*.pkl"))


# random and tpe also run in test_compare's CLI run, tpe in most tune tests here.
@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["grid", "gp", "cmaes", "qmc"])
def test_each_sampler_runs_on_credit_g(cli, tmp_path: Path, credit_g: Path, sampler: str) -> None:
    trials = "12" if sampler == "gp" else "4"  # gp models the space after 10 start-up trials
    r = cli(
        "tune",
        "--data",
        str(credit_g),
        "--target",
        "target",
        "--sampler",
        sampler,
        "--trials",
        trials,
        "--space",
        _space(tmp_path),
        "--output-dir",
        "out",
        *QUICK,
    )
    assert r.returncode == 0, r
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert sum(summary["trials"].values()) == int(trials)
    assert 0.5 < summary["best_value"] <= 1.0
    if sampler == "cmaes":
        assert r.stderr.count("categorical parameters (optimizer) are drawn by TPE") == 1
    if sampler == "grid":
        assert "grid: 243 combinations" in r.stderr


@pytest.mark.slow
def test_grid_stops_when_exhausted(cli, tmp_path: Path, credit_g: Path) -> None:
    space = tmp_path / "grid.yaml"
    space.write_text(
        "optimizer: [Adam, AdamW]\nlearning_rate: {low: 1.0e-3, high: 1.0e-2, "
        "log: true}\nepochs: 2\nnum_layers: 1\nhidden_size: 16\n"
    )
    r = cli(
        "tune",
        "--data",
        str(credit_g),
        "--target",
        "target",
        "--sampler",
        "grid",
        "--grid-points",
        "2",
        "--trials",
        "50",
        "--space",
        str(space),
        "--output-dir",
        "out",
        *QUICK,
    )
    assert r.returncode == 0, r
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert len(trials) == 4
    assert set(zip(trials.params_optimizer, trials.params_learning_rate, strict=True)) == {
        ("Adam", 1e-3),
        ("Adam", 1e-2),
        ("AdamW", 1e-3),
        ("AdamW", 1e-2),
    }


def _tune_args(data: Path, space: str, *extra: str, target: str = "target") -> tuple[str, ...]:
    """``dnntune tune`` on a table with the tiny space and the quick settings."""
    return ("tune", "--data", str(data), "--target", target, "--space", space, *QUICK, *extra)


@pytest.fixture(scope="module")
def credit_study(tmp_path_factory: pytest.TempPathFactory, credit_g: Path):
    """One run shared by the tests that resume, refuse or repeat it: study 'credit', 3 trials,
    in ``root / 'runs' / 'credit'``; returns the root and the arguments that made it."""
    root = tmp_path_factory.mktemp("credit")
    args = _tune_args(credit_g, _space(root), "--study", "credit")
    r = run_cli(*args, "--trials", "3", cwd=root)
    assert r.returncode == 0, r
    return root, args


@pytest.mark.slow
def test_resume_continues_numbering(cli, tmp_path: Path, credit_study) -> None:
    root, args = credit_study
    shutil.copytree(root / "runs", tmp_path / "runs")
    before = pd.read_csv(tmp_path / "runs" / "credit" / "trials.csv")
    second = cli(*args, "--trials", "5")
    assert second.returncode == 0, second
    assert "resuming study 'credit': 3 finished trials" in second.stderr
    after = pd.read_csv(tmp_path / "runs" / "credit" / "trials.csv")
    assert list(after.number) == [0, 1, 2, 3, 4]
    pd.testing.assert_frame_equal(after.iloc[:3][["number", "value"]], before[["number", "value"]])
    again = cli(*args, "--trials", "5")  # nothing left to do
    assert again.returncode == 0 and len(pd.read_csv(tmp_path / "runs/credit/trials.csv")) == 5


@pytest.mark.slow
def test_resume_with_other_settings_is_refused(cli, tmp_path: Path, credit_study) -> None:
    root, args = credit_study
    shutil.copytree(root / "runs", tmp_path / "runs")
    r = cli(*args, "--metric", "accuracy")
    assert r.returncode == 2
    assert "was run with different settings (metric: 'roc_auc', now 'accuracy')" in r.stderr
    r = cli(*args, "--copy-encoding")
    assert r.returncode == 2
    assert "(copy_encoding: False, now True)" in r.stderr
    assert len(pd.read_csv(tmp_path / "runs" / "credit" / "trials.csv")) == 3  # untouched


@pytest.mark.slow
def test_same_seed_same_trials(cli, tmp_path: Path, credit_study) -> None:
    root, args = credit_study
    r = cli(*args, "--trials", "3", "--output-dir", "again")
    assert r.returncode == 0, r
    runs = [pd.read_csv(d / "trials.csv") for d in (root / "runs" / "credit", tmp_path / "again")]
    cols = [c for c in runs[0].columns if c.startswith("params_")] + ["value", "state"]
    assert len(runs[0]) == 3
    pd.testing.assert_frame_equal(runs[0][cols], runs[1][cols])


@pytest.mark.slow
def test_multiclass_regression_and_multilabel(cli, tmp_path: Path) -> None:
    for task in ("multiclass", "regression", "multilabel"):
        path = tmp_path / f"{task}.csv"
        synthetic_table(300, task=task).to_csv(path, index=False)
        target = "a,b" if task == "multilabel" else "y"
        r = cli(
            "tune",
            "--data",
            str(path),
            "--target",
            target,
            "--trials",
            "2",
            "--space",
            _space(tmp_path),
            "--output-dir",
            task,
            *QUICK_WITH_REPORT,  # the report of each task
        )
        assert r.returncode == 0, r
        summary = json.loads((tmp_path / task / "summary.json").read_text())
        assert summary["task"] == task
        assert (tmp_path / task / "report.html").stat().st_size > 0
        assert (
            summary["metric"]
            == {"multiclass": "logloss", "regression": "rmse", "multilabel": "roc_auc"}[task]
        )
        assert "dropped column 'row_id': ID-like" in r.stderr
        assert "dropped column 'const': constant" in r.stderr


@pytest.mark.slow
def test_fold_seed_keeps_the_folds_of_another_seed(cli, tmp_path: Path, credit_g: Path) -> None:
    folds = {}
    for seed in ("7", "1"):
        r = cli(
            "folds", "--data", str(credit_g), "--target", "target", "--folds", "3",
            "--seed", seed, "--output", f"folds{seed}.csv",
        )  # fmt: skip
        assert r.returncode == 0, r
        folds[seed] = pd.read_csv(tmp_path / f"folds{seed}.csv")["kfold"].to_numpy()
    r = cli(
        "folds", "--data", str(credit_g), "--target", "target", "--folds", "3",
        "--seed", "1", "--fold-seed", "7", "--output", "folds1-7.csv",
    )  # fmt: skip
    assert r.returncode == 0, r
    assert (pd.read_csv(tmp_path / "folds1-7.csv")["kfold"].to_numpy() == folds["7"]).all()
    r = cli(
        "tune", "--data", str(credit_g), "--target", "target", "--seed", "1",
        "--fold-seed", "7", "--trials", "1", "--space", _space(tmp_path), "--output-dir", "run",
        *QUICK,
    )  # fmt: skip
    assert r.returncode == 0, r
    assert "Study 'credit_g-target': 1 trial (1 complete) in " in r.stdout
    model = tmp_path / "run" / "model"
    oof = pd.read_csv(model / json.loads((model / "manifest.json").read_text())["oof_predictions"])
    validated = oof["fold"].to_numpy()
    assert (validated == folds["7"][oof["row"]]).all()  # the folds of seed 7
    assert not (validated == folds["1"][oof["row"]]).all()  # not those of its own seed


@pytest.mark.slow
def test_fold_file_round_trip(cli, tmp_path: Path, credit_g: Path) -> None:
    r = cli(
        "folds",
        "--data",
        str(credit_g),
        "--target",
        "target",
        "--folds",
        "4",
        "--output",
        "train_folds.csv",
    )
    assert r.returncode == 0, r
    frame = pd.read_csv(tmp_path / "train_folds.csv")
    assert sorted(frame.kfold.unique()) == [0, 1, 2, 3] and len(frame) == 1000
    r = cli(
        "tune",
        "--data",
        "train_folds.csv",
        "--target",
        "target",
        "--fold-column",
        "kfold",
        "--trials",
        "1",
        "--space",
        _space(tmp_path),
        "--output-dir",
        "out",
        "--no-progress",
    )
    assert r.returncode == 0, r
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["data"]["folds"] == 4


@pytest.mark.slow
def test_fold_file_keeps_duplicate_rows_together(cli, tmp_path: Path, wine: Path) -> None:
    # The white wines repeat rows: plain folds split copies of a row, grouped folds never do.
    # With --drop, as tune takes it, rows are copies when the other columns are equal.
    spans = {}
    variants = {
        "plain": [],
        "grouped": ["--group-duplicates"],
        "dropped": ["--group-duplicates", "--drop", "alcohol"],
    }
    for name, options in variants.items():
        out = f"{name}.csv"
        r = cli("folds", "--data", str(wine), "--target", "target", "--output", out, *options)
        assert r.returncode == 0, r
        frame = pd.read_csv(tmp_path / out)
        for ignored in ((), ("alcohol",)):
            columns = ("target", "kfold", *ignored)
            features = [c for c in frame.columns if c not in columns]
            folds_per_row = frame.groupby(features, dropna=False).kfold.nunique()
            spans[name, ignored] = int((folds_per_row > 1).sum())
        assert sorted(frame.kfold.unique()) == [0, 1, 2, 3, 4] and "alcohol" in frame.columns
    assert spans["plain", ()] > 0 and spans["grouped", ()] == 0
    assert spans["grouped", ("alcohol",)] > 0 and spans["dropped", ("alcohol",)] == 0


@pytest.mark.parametrize(
    ("name", "task", "metric"),
    [("digits", "multiclass", "logloss"), ("diabetes", "regression", "rmse")],
)
@pytest.mark.slow
def test_other_builtin_data_sets(cli, tmp_path: Path, name: str, task: str, metric: str) -> None:
    r = cli(
        "tune",
        "--data",
        f"builtin:{name}",
        "--trials",
        "1",
        "--space",
        _space(tmp_path),
        "--output-dir",
        "out",
        *QUICK,
    )
    assert r.returncode == 0, r
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["task"], summary["metric"]) == (task, metric)


@pytest.mark.slow
def test_wine_as_regression_and_multiclass(cli, tmp_path: Path, wine: Path) -> None:
    # The white wines repeat rows: a note without --group-duplicates, none with it.
    for task, metric, group in (
        ("regression", "rmse", ["--copy-encoding"]),
        ("multiclass", "accuracy", ["--group-duplicates"]),
    ):
        r = cli(
            "tune",
            "--data",
            str(wine),
            "--target",
            "target",
            "--task",
            task,
            "--metric",
            metric,
            "--trials",
            "1",
            "--space",
            _space(tmp_path),
            "--output-dir",
            task,
            *group,
            *QUICK,
        )
        assert r.returncode == 0, r
        summary = json.loads((tmp_path / task / "summary.json").read_text())
        assert summary["task"] == task and summary["metric"] == metric
        grouped = "--group-duplicates" in group
        assert ("of the rows repeat another row's features" in r.stderr) == (not grouped)
        if not grouped:  # the library's notes name this command's options
            assert "; --group-duplicates keeps copies in one fold" in r.stderr
            assert "(--no-copy-encoding turns it off)" in r.stderr


@pytest.mark.slow
def test_two_regression_targets_tune_predict_and_show(cli, tmp_path: Path, wine: Path) -> None:
    """Two numeric targets: one network output each, each standardized on its fold."""
    target = "residual sugar,alcohol"
    r = cli(
        "tune", "--data", str(wine), "--target", target, "--trials", "2", "--folds", "3",
        "--space", _space(tmp_path), "--output-dir", "run", *QUICK,
    )  # fmt: skip
    assert r.returncode == 0, r
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["task"] == "regression" and summary["metric"] == "rmse"
    manifest = json.loads((tmp_path / "run" / "model" / "manifest.json").read_text())
    assert manifest["members"][0]["architecture"]["d_out"] == 2
    assert all(len(f["y_shift"]) == len(f["y_scale"]) == 2 for f in manifest["folds"])
    out = cli("predict", "run", "--data", str(wine), "--output", "pred.csv")
    assert out.returncode == 0, out
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert list(pred.columns) == ["prediction_residual sugar", "prediction_alcohol"]
    table = pd.read_csv(wine, sep="\t")
    # Each output in its target's units: the predictions' means near the targets' means.
    for name in ("residual sugar", "alcohol"):
        mean, std = table[name].mean(), table[name].std()
        assert abs(pred[f"prediction_{name}"].mean() - mean) < std
    oof = pd.read_csv(tmp_path / "run" / "model" / manifest["oof_predictions"])
    assert {"prediction_residual sugar", "prediction_alcohol"} <= set(oof.columns)
    shown = cli("show", "run")
    assert shown.returncode == 0 and "regression" in shown.stdout


def _allocation_of_64_gib_fails() -> bool:
    """Linux refuses (rather than overcommits) an allocation larger than its RAM and swap."""
    try:
        mode = Path("/proc/sys/vm/overcommit_memory").read_text().strip()
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return False
    kib = {line.split(":")[0]: int(line.split()[1]) for line in lines}
    return mode == "0" and kib.get("MemTotal", 0) + kib.get("SwapTotal", 0) < 60 * 2**20


@pytest.mark.skipif(
    not _allocation_of_64_gib_fails(), reason="this machine could allocate 64 GiB and try"
)
@pytest.mark.slow
def test_a_trial_too_large_for_memory_fails_and_the_study_goes_on(
    cli, tmp_path: Path, credit_g: Path
) -> None:
    # 64 networks with a 16384 x 16384 layer each: 64 GiB of weights, refused by the CPU.
    (tmp_path / "big.yaml").write_text(
        "hidden_size: {choices: [16, 16384]}\nnum_layers: 2\nensemble_size: 64\nepochs: 1\n"
    )
    r = cli(
        "tune",
        "--data",
        str(credit_g),
        "--target",
        "target",
        "--space",
        "big.yaml",
        "--sampler",
        "grid",
        "--trials",
        "2",
        *QUICK,
    )
    assert r.returncode == 0, r
    assert "Traceback" not in r.stderr
    assert (
        "because of the following error: out of memory on cpu at num_layers=2, "
        "hidden_size=16384, ensemble_size=64; the study goes on" in r.stderr
    )
    assert "2 trials (1 complete, 1 fail)" in r.stdout
    assert "'hidden_size': 16}" in r.stdout


def test_version(cli) -> None:
    import dnntune

    r = cli("--version")
    assert r.returncode == 0 and r.stdout == f"dnntune {dnntune.__version__}\n", r
