"""The report: computed values first, then the HTML in a real headless browser, the PNGs and
the dashboard."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import optuna
import pytest

import dnntune
from dnntune.report import (
    best_fold_scores,
    best_so_far,
    importances,
    learning_curves,
    render_html,
    render_pngs,
    top_pair,
    trial_table,
    write_report,
)
from dnntune.testing import write_space


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, credit_g: Path):
    tmp = tmp_path_factory.mktemp("report")
    result = dnntune.tune(
        data=str(credit_g),
        target="target",
        trials=8,
        folds=3,
        sampler="random",
        space=str(write_space(tmp / "s.yaml")),
        output_dir=str(tmp / "run"),
    )
    return result, tmp / "run"


def test_computed_values(run) -> None:
    result, _ = run
    study = result.study
    imp = importances(study)
    assert imp and sum(imp.values()) == pytest.approx(1.0)
    assert top_pair(imp) == tuple(sorted(imp, key=imp.get, reverse=True)[:2])
    hist = best_so_far(study)
    assert (np.diff(hist["best"]) >= 0).all()  # maximize: best so far never decreases
    assert hist["best"].iloc[-1] == pytest.approx(study.best_value)
    folds = best_fold_scores(study)
    assert len(folds) == 3 and np.mean(folds) == pytest.approx(study.best_value)
    assert {c.number for c in learning_curves(study)} == {t.number for t in study.trials}
    table = trial_table(study)
    assert len(table) == 8 and {"number", "state", "value", "learning_rate"} <= set(table.columns)


def test_report_files(run) -> None:
    _, run_dir = run
    path = write_report(run_dir)
    text = path.read_text()
    assert not re.search(r"<script[^>]+src=", text)  # plotly.js inlined: works offline
    assert text.count("Plotly.newPlot") >= 7
    assert "HistGradientBoosting baseline" in text  # a line in the history plot
    assert "<th>baseline (same folds)</th><td>HistGradientBoosting with its defaults: 0." in text
    assert text.count('id="plot-') >= 7
    for heading in (
        "Summary",
        "Delivered model",
        "Optimization history",
        "Parameter importances",
        "Contour:",
        "Parallel coordinates",
        "Slices",
        "Intermediate values",
        "Timeline",
        "Best trial: score per fold",
        "Trials",
    ):
        assert f"<h2>{heading}" in text, heading
    pngs = sorted(p.name for p in (run_dir / "plots").glob("*.png"))
    assert pngs == [
        "best_trial_folds.png",
        "history.png",
        "importances.png",
        "intermediate_values.png",
        "learning_rate.png",
    ]
    assert os.stat(run_dir / "summary.json").st_mode & 0o044  # not private to the owner


def test_report_of_a_study_whose_trials_were_all_pruned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    study = optuna.create_study(direction="maximize")
    for value in (0.6, 0.7):
        trial = study.ask()
        trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
        trial.report(value, 0)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    with caplog.at_level("WARNING", logger="optuna"):
        path = render_html(study, {"metric": "roc_auc"}, None, tmp_path / "report.html")
        pngs = render_pngs(study, {"metric": "roc_auc"}, tmp_path / "plots")
    assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.text
    text = path.read_text()
    assert "Optimization history" not in text and "<h2>Intermediate values" in text
    assert text.count("<td>pruned</td>") == 2  # both in the trials table
    # A pruned trial's value is its last running estimate: the learning-rate plot shows it.
    assert [p.name for p in pngs] == ["intermediate_values.png", "learning_rate.png"]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("DNNTUNE_REQUIRE_BROWSER"):
            pytest.fail("DNNTUNE_REQUIRE_BROWSER is set but chromium is not installed")
        pytest.skip("headless Chromium not installed (apt-get install chromium)")
    return found


def test_report_renders_offline_in_headless_chromium(run, tmp_path: Path) -> None:
    _, run_dir = run
    path = write_report(run_dir)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--proxy-server=127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=10000",
        "--enable-logging=stderr",
        "--v=0",
    ]
    proc = subprocess.run(
        [_chromium(), *flags, "--dump-dom", path.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    ids = re.findall(r'id="(plot-\d+)"', dom)
    assert len(ids) >= 7
    chunks = re.split(r'id="plot-\d+"', dom)[1:]
    for plot_id, chunk in zip(ids, chunks, strict=True):
        assert "main-svg" in chunk, f"{plot_id} did not render"
    assert "Uncaught" not in proc.stderr and "CONSOLE" not in proc.stderr, proc.stderr[-2000:]
    shot = tmp_path / "report.png"
    subprocess.run(
        [_chromium(), *flags, "--window-size=1200,2400", f"--screenshot={shot}", path.as_uri()],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.is_file() and shot.stat().st_size > 10_000


@pytest.mark.slow
def test_tune_writes_the_report_unless_asked_not_to(cli, tmp_path: Path, credit_g: Path) -> None:
    space = str(write_space(tmp_path / "s.yaml"))
    common = (
        "tune",
        "--data",
        str(credit_g),
        "--target",
        "target",
        "--trials",
        "2",
        "--folds",
        "3",
        "--max-folds",
        "1",
        "--space",
        space,
        "--no-progress",
    )
    r = cli(*common, "--output-dir", "a")
    assert r.returncode == 0, r
    assert "Report: a/report.html" in r.stdout and (tmp_path / "a" / "report.html").is_file()
    r = cli(*common, "--output-dir", "b", "--no-report")
    assert r.returncode == 0 and not (tmp_path / "b" / "report.html").exists()
    r = cli("report", "b")
    assert r.returncode == 0 and (tmp_path / "b" / "report.html").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dashboard_serves_the_study(run) -> None:
    result, run_dir = run
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dnntune", "dashboard", str(run_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body = None
        for _ in range(60):
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/studies", timeout=2
                ) as resp:
                    body = json.loads(resp.read())
                break
            except OSError:
                time.sleep(0.5)
        assert body is not None, "dashboard did not answer"
        names = [s["study_name"] for s in body["study_summaries"]]
        assert result.study.study_name in names
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
    assert f"http://127.0.0.1:{port}/" in out
