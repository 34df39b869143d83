"""MLflow tracking, read back with MLflow's own client: one run per study with the settings,
the scores and the model folder; a nested run per trial with its parameters, fold scores and
state; a resumed study, the --jobs workers and the ONNX export log into that same run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import dnntune
from dnntune.testing import TINY_SPACE, write_space

mlflow = pytest.importorskip("mlflow")


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs(uri: str, study: str):
    client = _client(uri)
    experiment = client.get_experiment_by_name(study)
    assert experiment is not None, f"no MLflow experiment {study!r}"
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MLflow puts the artifacts of a SQLite store under ./mlruns: keep them in tmp_path."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_a_study_is_one_run_with_a_nested_run_per_trial(in_tmp: Path, credit_g: Path) -> None:
    uri = f"sqlite:///{in_tmp / 'mlflow.db'}"
    space = write_space(in_tmp / "s.yaml", TINY_SPACE)
    settings = {
        "data": str(credit_g), "target": "target", "folds": 2, "space": str(space),
        "output_dir": str(in_tmp / "run"), "mlflow": uri,
    }  # fmt: skip
    result = dnntune.tune(**settings, trials=2)  # type: ignore[arg-type]
    (parent,), children = _runs(uri, result.study.study_name)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["folds"] == "2" and parent.data.params["target"] == '["target"]'
    assert parent.data.metrics["best_value"] == pytest.approx(result.best_value)
    assert parent.data.metrics["baseline_value"] == pytest.approx(result.baseline.value)
    assert "delivered_out_of_fold" in parent.data.metrics
    client = _client(uri)
    files = {f.path for f in client.list_artifacts(parent.info.run_id, "model")}
    assert "model/manifest.json" in files and not any(p.endswith(".lock") for p in files)
    assert "summary.json" in {f.path for f in client.list_artifacts(parent.info.run_id)}

    trials = {t.number: t for t in result.study.trials}
    assert sorted(int(c.data.tags["dnntune.trial"]) for c in children) == sorted(trials)
    for child in children:
        trial = trials[int(child.data.tags["dnntune.trial"])]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["dnntune.state"] == trial.state.name.lower()
        assert child.data.params == {k: str(v) for k, v in trial.params.items()}
        history = client.get_metric_history(child.info.run_id, "fold_score")
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
            trial.user_attrs["fold_scores"]
        )
        if trial.value is not None:
            assert child.data.metrics["value"] == pytest.approx(trial.value)

    # Resumed with more trials: the same run, more nested runs; the export is logged there.
    dnntune.tune(**settings, trials=3)  # type: ignore[arg-type]
    (again,), children = _runs(uri, result.study.study_name)
    assert again.info.run_id == parent.info.run_id and len(children) == 3
    pytest.importorskip("onnxruntime")
    from dnntune.export import export_onnx

    done = export_onnx(in_tmp / "run")
    assert done.mlflow_run == parent.info.run_id
    assert "model.onnx" in {f.path for f in client.list_artifacts(parent.info.run_id)}


@pytest.mark.slow
def test_jobs_workers_log_into_the_study_s_run(in_tmp: Path, credit_g: Path, cli) -> None:
    uri = f"sqlite:///{in_tmp / 'mlflow.db'}"
    space = write_space(in_tmp / "s.yaml", TINY_SPACE)
    r = cli(
        "tune", "--data", str(credit_g), "--target", "target", "--folds", "2", "--trials", "2",
        "--jobs", "2", "--space", str(space), "--output-dir", str(in_tmp / "run"),
        "--no-report", "--no-baseline", "--mlflow", uri,
    )  # fmt: skip
    assert r.returncode == 0, r
    (parent,), children = _runs(uri, "credit_g-target")
    assert len(children) == 2 and parent.info.status == "FINISHED"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}


def test_the_uri_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from dnntune.tracking import ENV, tracking_uri

    monkeypatch.setenv(ENV, "sqlite:///env.db")
    assert tracking_uri(None) == "sqlite:///env.db"
    assert tracking_uri("sqlite:///flag.db") == "sqlite:///flag.db"  # the setting first
    # A worker reads the setting from the study (password hidden): the environment first.
    assert tracking_uri("http://u:***@host", worker=True) == "sqlite:///env.db"
    monkeypatch.delenv(ENV)
    assert tracking_uri(None) is None


def test_without_mlflow_installed_it_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from dnntune.exceptions import ConfigError
    from dnntune.tracking import Tracker

    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(ConfigError, match=r"pip install 'dnntune\[mlflow\]'"):
        Tracker.connect(f"sqlite:///{tmp_path / 'm.db'}")


def test_an_unusable_uri_is_one_line(tmp_path: Path, cli) -> None:
    r = cli("tune", "--trials", "1", "--mlflow", "nosuchscheme://x", "--output-dir", "run")
    assert r.returncode == 2, r
    assert r.stderr.strip().splitlines()[-1].startswith("error: --mlflow 'nosuchscheme://x'")
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()  # checked before the study opened: nothing written
