"""The benchmarks run (quick mode) and print their JSON line; timings are not asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _bench(script: str, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Run ``benchmarks/<script>`` and parse its last line, the JSON summary."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_bench_engine_quick(hotel: Path) -> None:
    proc, result = _bench("bench_engine.py", "--quick")
    for key in (
        "speedup",
        "peak_fraction",
        "samples_per_s_baseline",
        "samples_per_s_dnntune",
        "auc_baseline",
        "auc_dnntune",
        "batch_size",
    ):
        assert key in result
    assert result["batch_size"] == 512
    assert result["samples_per_s_baseline"] > 0 and result["samples_per_s_dnntune"] > 0
    assert 0.5 < result["auc_dnntune"] <= 1.0
    assert set(result["ablation_speedups"]) == {
        "torch nn.Dropout mask",
        "per-tensor foreach optimizer",
        "default glibc malloc",
    }
    assert "(a) original pipeline" in proc.stdout and "(b) dnntune engine" in proc.stdout


def test_dnntune_dropout_keeps_pytorch_semantics() -> None:
    import torch

    from dnntune.model import Dropout

    layer = Dropout(0.4)
    x = torch.ones(200_000, requires_grad=True)
    y = layer(x)
    assert y.eq(0).float().mean().item() == pytest.approx(0.4, abs=0.005)
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.6))
    y.sum().backward()
    assert torch.equal(x.grad != 0, y != 0)
    layer.eval()
    assert torch.equal(layer(x), x)


@pytest.mark.slow
def test_bench_parallel_quick(credit_g: Path) -> None:
    _, result = _bench("bench_parallel.py", "--trials", "2")
    assert set(result) >= {"trials_per_min_1", "trials_per_min_2", "speedup"}
    assert result["trials_per_min_1"] > 0 and result["trials_per_min_2"] > 0


@pytest.mark.slow
def test_bench_search_short_budget(hotel: Path, tmp_path: Path) -> None:
    import pandas as pd

    # 15,000 of the hotel rows, under the same file name (the study is named after it).
    sample = tmp_path / "hotel_bookings.csv.gz"
    pd.read_csv(hotel).sample(15_000, random_state=0).to_csv(sample, index=False)
    kept = tmp_path / "kept"
    _, result = _bench(
        "bench_search.py", "--data", str(sample), "--budget", "8", "--keep", str(kept),
        "--group-duplicates",
    )  # fmt: skip
    assert set(result) >= {
        "auc_original",
        "auc_dnntune",
        "time_to_original_best_s",
        "speedup",
        "budget_s",
    }
    assert result["budget_s"] == 8 and result["group_duplicates"] is True
    summary = json.loads((kept / "summary.json").read_text())
    assert summary["config"]["group_duplicates"] is True  # both sides: (a) shares its fold 0
    # (a)'s first trial may be a hopeless one (SGD at lr 1e-5 scores about 0.5).
    assert 0.0 < result["auc_original"] <= 1.0
    # A few seconds leave dnntune no complete 5-fold trial, but fold 0's epoch scores, with
    # their times from the trial's timeline, already count against (a)'s first trials.
    assert result["time_to_original_best_s"] is not None
    assert 0 < result["time_to_original_best_s"] < 30
    assert (tmp_path / "kept" / "study.db").exists()
    assert "Study 'hotel_bookings-is_canceled'" in (tmp_path / "kept" / "output.txt").read_text()


@pytest.mark.slow
def test_bench_quality_short_budget(credit_g: Path, tmp_path: Path) -> None:
    # A small space (3 epochs, one narrow layer; a trial takes about a second): whole trials
    # fit in the budget even on a loaded machine, where starting Python and reading the table
    # take seconds and the default's first trial may be cut by the deadline.
    space = tmp_path / "small.yaml"
    space.write_text("num_layers: 1\nhidden_size: 32\nepochs: 3\n")
    proc, result = _bench(
        "bench_quality.py", "--tables", "credit_g", "--budget", "10", "--space", str(space)
    )
    (row,) = result["tables"]
    assert row["table"] == "credit_g" and row["metric"] == "roc_auc"
    assert 0.5 < row["dnntune"] <= 1 and 0.5 < row["baseline"] <= 1 and row["trials"] >= 1
    assert row["at_or_above"] == (row["dnntune"] >= row["baseline"])
    assert result["budget_s"] == 10 and result["at_or_above"] in (0, 1)
    assert result["space"] == str(space)
    assert "credit_g" in proc.stdout.splitlines()[1]


@pytest.mark.slow
def test_bench_budget_short_budget(credit_g: Path) -> None:
    """A table given by path (as tables from elsewhere are), a short budget: a model, scored on
    its held-out fifth beside the baseline."""
    proc, result = _bench(
        "bench_budget.py", "--tables", "none", "--extra", f"{credit_g}:target", "--budget", "10"
    )
    (row,) = result["tables"]
    assert row["table"] == "credit_g" and row["exit_code"] == 0 and result["with_model"] == 1
    assert row["rows"] == 1000 and row["metric"] == "roc_auc"
    assert 0.5 < row["test"] <= 1 and 0.5 < row["baseline_test"] <= 1
    assert row["model"] in ("trial", "cut trial") or row["model"].startswith("ensemble of ")
    assert "credit_g" in proc.stdout.splitlines()[1]


@pytest.mark.slow
def test_bench_test_rows_and_bench_onnx_short(credit_g: Path, tmp_path: Path) -> None:
    """One table, a short budget: dnntune, HistGradientBoosting and LightGBM scored on the
    same held-out fifth with the same metric, and the standing by group; then bench_onnx on
    that run (its --run: no second study)."""
    pytest.importorskip("lightgbm")
    kept = tmp_path / "kept"
    proc, result = _bench(
        "bench_test_rows.py", "--tables", "credit_g", "--budget", "8", "--keep", str(kept)
    )
    (row,) = result["tables"]
    assert row["table"] == "credit_g" and row["metric"] == "roc_auc" and not row["held_back"]
    for key in ("test", "baseline_test", "lightgbm_test"):
        assert 0.5 < row[key] <= 1, key
    assert row["vs_lightgbm"] == pytest.approx(
        (row["test"] - row["lightgbm_test"]) / row["lightgbm_test"]
    )
    dev = result["development"]
    assert dev["tables"] == 1 and dev["lightgbm"]["compared"] == 1
    assert dev["lightgbm"]["at_or_above"] == int(row["vs_lightgbm"] >= 0)
    assert result["held_back"]["tables"] == 0
    assert "development: 1 tables" in proc.stdout

    pytest.importorskip("onnxruntime")
    proc, result = _bench(
        "bench_onnx.py", "--run", str(kept / "credit_g"), "--data", str(kept / "credit_g-test.csv"),
        "--rows", "150", "--single", "3", "--repeats", "1",
    )  # fmt: skip
    assert result["rows"] == 150 and result["networks"] >= 1
    assert result["predict_s"] > 0 and result["onnx_s"] > 0 and result["speedup"] > 0
    assert result["max_difference"] <= 1e-5
    assert "one row (ms)" in proc.stdout
