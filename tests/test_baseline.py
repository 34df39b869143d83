"""The gradient-boosting baseline: scikit-learn's HistGradientBoosting with its defaults,
cross-validated on exactly the study's folds with the study's metric, stored for every process
that opens the study, printed, and drawn in the report."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import log_loss

import dnntune
from dnntune.data import plan_columns
from dnntune.testing import write_space


def _wine_with_folds(wine: Path, tmp_path: Path) -> tuple[pd.DataFrame, Path]:
    """The white wines (numbers only) with a fold column of our own: rows 0, 3, 6... in fold
    'a', and so on, no shuffling, which no seeded split would give."""
    table = pd.read_csv(wine, sep="\t")
    table["good"] = (table.pop("target") >= 7).astype(int)
    table["kfold"] = np.array(["a", "b", "c"])[np.arange(len(table)) % 3]
    path = tmp_path / "wine.csv"
    table.to_csv(path, index=False)
    return table, path


@pytest.mark.slow
def test_the_baseline_runs_on_the_fold_column_s_rows_with_the_study_s_metric(
    wine: Path, tmp_path: Path
) -> None:
    table, path = _wine_with_folds(wine, tmp_path)
    features = table.drop(columns=["good", "kfold"])
    assert plan_columns(features).numeric == list(features.columns)  # raw numbers only
    result = dnntune.tune(
        str(path), "good", fold_column="kfold", metric="logloss", trials=1,
        space=str(write_space(tmp_path / "s.yaml")), output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    expected = []
    for fold in ("a", "b", "c"):
        valid = (table["kfold"] == fold).to_numpy()
        model = HistGradientBoostingClassifier(random_state=42)
        model.fit(features[~valid].to_numpy(), table["good"][~valid])
        proba = model.predict_proba(features[valid].to_numpy())[:, 1]
        expected.append(log_loss(table["good"][valid], proba, labels=[0, 1]))
    baseline = result.baseline
    assert baseline is not None and baseline.metric == "logloss"
    assert np.allclose(baseline.fold_scores, expected, rtol=0, atol=1e-12)
    assert baseline.value == pytest.approx(np.mean(expected), abs=1e-12)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["baseline"] == baseline.to_dict()
    assert result.study.user_attrs["baseline"] == baseline.to_dict()


def test_the_baseline_leaves_the_callers_warning_filters_as_it_found_them(
    tmp_path: Path, credit_g: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scikit-learn's threaded helpers can leave their warning filters behind after a fit;
    a fit that always does must not change the filters of the process that asked for it."""
    settings = {
        "data": str(credit_g), "target": "target", "folds": 2, "max_folds": 1, "trials": 1,
        "space": str(write_space(tmp_path / "s.yaml")),
    }  # fmt: skip
    dnntune.tune(output_dir=str(tmp_path / "warm"), **settings)  # imports done
    fit = HistGradientBoostingClassifier.fit

    def fit_leaving_a_filter(self, *args, **kwargs):
        warnings.simplefilter("ignore")
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(HistGradientBoostingClassifier, "fit", fit_leaving_a_filter)
    filters = list(warnings.filters)
    result = dnntune.tune(output_dir=str(tmp_path / "run"), **settings)
    assert result.baseline is not None and np.isfinite(result.baseline.value)
    assert warnings.filters == filters


def test_the_baseline_on_categories_dates_missing_values_and_two_targets(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            "x": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
            "city": rng.choice([f"c{i}" for i in range(300)], size=n),  # more than 255 levels
            "day": pd.date_range("2024-01-01", periods=n, freq="D").astype(str),
        }
    )
    frame["u"] = frame["x"].fillna(0) * 3 + rng.normal(scale=0.1, size=n)
    frame["v"] = np.arange(n) * 0.5 + rng.normal(size=n)  # follows the date
    frame.to_csv(tmp_path / "t.csv", index=False)
    result = dnntune.tune(
        str(tmp_path / "t.csv"), "u,v", folds=3, max_folds=2, trials=1,
        space=str(write_space(tmp_path / "s.yaml")), output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    baseline = result.baseline
    assert baseline is not None and baseline.metric == "rmse"
    assert len(baseline.fold_scores) == 2 and np.isfinite(baseline.value)
    # The date is a number to the trees: without it v (a line in time, its spread 43) would
    # leave the mean of the two RMSEs near 20.
    assert max(baseline.fold_scores) < 5


@pytest.mark.slow
def test_no_baseline_skips_it_and_the_cli_prints_it_otherwise(
    cli, tmp_path: Path, credit_g: Path
) -> None:
    common = (
        "tune", "--data", str(credit_g), "--target", "target", "--trials", "1",
        "--folds", "3", "--space", str(write_space(tmp_path / "s.yaml")), "--no-progress",
    )  # fmt: skip
    r = cli(*common, "--output-dir", "with", "--no-report")
    assert r.returncode == 0, r
    assert "note: fitting the HistGradientBoosting baseline on the study's 3 folds" in r.stderr
    line = next(x for x in r.stdout.splitlines() if "baseline HistGradientBoosting:" in x)
    assert line.split()[2].startswith("0.") and "(3-fold mean 0." in line
    summary = json.loads((tmp_path / "with" / "summary.json").read_text())
    assert summary["baseline"]["value"] > 0.5 and summary["baseline"]["oof_value"] > 0.5
    assert summary["scores"]["baseline"]["out-of-fold"] == summary["baseline"]["oof_value"]
    r = cli(*common, "--output-dir", "without", "--no-baseline")
    assert r.returncode == 0, r
    assert "baseline" not in r.stdout
    assert json.loads((tmp_path / "without" / "summary.json").read_text())["baseline"] is None
    assert (
        "<th>baseline (same folds)</th><td>none</td>"
        in (tmp_path / "without" / "report.html").read_text()
    )
