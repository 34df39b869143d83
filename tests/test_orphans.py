"""Trials left RUNNING by a process that died are ended by the next run on the same machine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from dnntune._owners import OWNER_ATTR, end_orphans
from dnntune.storage import open_storage

# Study.ask on a storage with a heartbeat warns that the heartbeat is meant for optimize.
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid names no process
    return proc.pid


def _study(tmp_path: Path) -> optuna.Study:
    url = f"sqlite:///{tmp_path / 'orphans.db'}"
    return optuna.create_study(study_name="s", storage=open_storage(url, heartbeat=True))


def _running(study: optuna.Study, owner: str) -> int:
    trial = study.ask()
    trial.suggest_float("x", 0, 10)
    trial.set_user_attr(OWNER_ATTR, owner)
    return trial.number


def test_a_new_trial_records_its_process_as_its_owner(tmp_path: Path) -> None:
    study = _study(tmp_path)
    trial = study.ask()
    assert trial.user_attrs[OWNER_ATTR] == f"{socket.gethostname()}:{os.getpid()}"


def test_orphans_are_failed_and_queued_once_and_the_living_are_left_alone(
    tmp_path: Path,
) -> None:
    host = socket.gethostname()
    study = _study(tmp_path)
    dead = _running(study, f"{host}:{_dead_pid()}")
    mine = _running(study, f"{host}:{os.getpid()}")  # this process: alive
    parent = _running(study, f"{host}:{os.getppid()}")  # alive
    elsewhere = _running(study, f"another-{host}:{_dead_pid()}")  # the heartbeat's job

    ended = end_orphans(study)

    assert ended.failed == [dead] and ended.completed == []
    states = {t.number: t.state for t in study.get_trials()}
    assert states[dead] is TrialState.FAIL
    assert {states[n] for n in (mine, parent, elsewhere)} == {TrialState.RUNNING}
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs["retry_of"] == dead
    assert "marked failed and queued again (trial 0)" in str(ended.note())

    # The retry dies too: failed, and not queued a third time.
    retry = study.ask()
    assert retry.number == waiting[0].number
    assert retry.suggest_float("x", 0, 10) == study.trials[dead].params["x"]
    retry.set_user_attr(OWNER_ATTR, f"{host}:{_dead_pid()}")
    assert end_orphans(study).failed == [retry.number]
    assert not study.get_trials(states=(TrialState.WAITING,))


def test_an_orphan_whose_model_was_saved_is_completed_with_the_saved_value(
    tmp_path: Path,
) -> None:
    host = socket.gethostname()
    study = _study(tmp_path)
    saved = _running(study, f"{host}:{_dead_pid()}")
    other = _running(study, f"{host}:{_dead_pid()}")

    ended = end_orphans(study, saved=(saved, 0.875))

    assert ended.completed == [saved] and ended.failed == [other]
    assert study.trials[saved].state is TrialState.COMPLETE
    assert study.trials[saved].value == 0.875
    assert study.best_trial.number == saved
    assert "completed from its saved model (trial 0)" in str(ended.note())
    assert end_orphans(study).note() is None  # nothing left to end


# A child that opens the study, dies (os._exit, as abruptly as SIGKILL) at the first write after
# a trial became RUNNING, before anything else about that trial is stored.
_DIE_AFTER_RUNNING = """
import os, sys
import optuna
from optuna.storages import RDBStorage
from dnntune import storage
def die(*args, **kwargs):
    os._exit(0)
storage._OwnedRDBStorage._started = die  # right after a new trial is written
RDBStorage.set_trial_user_attr = die  # right after a queued trial is taken
study = optuna.load_study(study_name="s", storage=storage.open_storage(sys.argv[1]))
study.ask()
os._exit(3)
"""


@pytest.mark.parametrize("queued", [False, True], ids=["created", "taken"])
def test_a_process_killed_as_its_trial_starts_leaves_an_orphan_the_next_run_ends(
    tmp_path: Path, queued: bool
) -> None:
    url = f"sqlite:///{tmp_path / 'orphans.db'}"
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    if queued:
        study.enqueue_trial({"x": 1.0})
    child = subprocess.run([sys.executable, "-c", _DIE_AFTER_RUNNING, url], check=False)
    assert child.returncode == 0  # it died in the window, not after
    (running,) = study.get_trials(states=(TrialState.RUNNING,))
    assert (OWNER_ATTR in running.user_attrs) is not queued  # a taken one holds only a claim

    assert end_orphans(study).failed == [running.number]
    assert study.trials[running.number].state is TrialState.FAIL
