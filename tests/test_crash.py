"""Crash safety: ``dnntune tune`` killed with SIGKILL at chosen moments, 30 times.

``_kill_driver.py`` kills real CLI runs as a trial starts, after an epoch, while the model is
saved, and while the run folder's outputs and the report are written; after each kill it
opens what is left as a user would. Each folder's study is then run to its end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

KILLS = 30
DRIVER = Path(__file__).with_name("_kill_driver.py")


@pytest.mark.slow
def test_sigkill_at_any_moment_leaves_a_study_that_resumes_and_a_model_that_loads(tmp_path):
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        [sys.executable, str(DRIVER), str(tmp_path), str(KILLS), "7"],
        capture_output=True,
        check=False,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    kills = [x for x in lines if "kill" in x]
    finals = [x for x in lines if "final" in x]

    assert len(kills) == KILLS
    moments = {m: sum(k["moment"] == m for k in kills) for m in {k["moment"] for k in kills}}
    assert moments.keys() == {"trial", "epoch", "save", "outputs", "report"}, moments
    assert moments["trial"] >= 5 and moments["epoch"] >= 5 and moments["save"] >= 3

    finished_before: dict[int, int] = {}
    for kill in kills:
        assert "error" not in kill, kill
        states = kill.get("states", {})
        # The run that was killed failed the trial its predecessor left running.
        assert states.get("RUNNING", 0) <= 1, kill
        finished = states.get("COMPLETE", 0) + states.get("PRUNED", 0)
        assert finished >= finished_before.get(kill["folder"], 0), kill
        finished_before[kill["folder"]] = finished
        if "model_trial_state" in kill:
            # A model is saved once its trial's folds are scored, just before the storage hears
            # of it: a kill in between leaves that trial running, and the next run completes it.
            assert kill["model_trial_state"] in ("COMPLETE", "RUNNING"), kill
            assert kill["predicted_rows"] == 50 and kill["predictions_finite"], kill
        if "summary_trials" in kill:
            assert kill["trials_csv_rows"] == sum(kill["summary_trials"].values()), kill
        assert kill.get("report_complete", True), kill
        assert not any(name.endswith(".tmp") for name in kill["files"]), kill

    assert finals and all(f["exit_code"] == 0 for f in finals), finals
    for final in finals:
        assert "RUNNING" not in final["states"], final
        finished = final["states"].get("COMPLETE", 0) + final["states"].get("PRUNED", 0)
        assert finished == final["trials"], final
        assert final["model_trial_state"] == "COMPLETE", final
        assert final["predicted_rows"] == 50 and final["predictions_finite"], final
        assert final["report_complete"], final
