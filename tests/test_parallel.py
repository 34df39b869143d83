"""Several workers on one study: journal file and PostgreSQL, kills, signals, passwords."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import optuna
import pytest
from optuna.trial import TrialState

from dnntune.parallel import default_parallel_storage
from dnntune.storage import open_storage
from dnntune.testing import TINY_SPACE, postgres_url, write_space

FAST = TINY_SPACE.replace("epochs: 4", "epochs: 1")
SLOWER = (
    TINY_SPACE.replace("epochs: 4", "epochs: 400")
    .replace("high: 1.0e-2", "high: 2.0e-3")
    .replace("default: 3.0e-3", "default: 1.0e-3")
)
SLOW = (
    TINY_SPACE.replace("epochs: 4", "epochs: 60")
    .replace("high: 1.0e-2", "high: 2.0e-3")
    .replace("default: 3.0e-3", "default: 1.0e-3")
)


def _pg_url() -> str:
    url = postgres_url()
    if not url:
        if os.environ.get("DNNTUNE_REQUIRE_POSTGRES"):
            pytest.fail("DNNTUNE_REQUIRE_POSTGRES is set but DNNTUNE_TEST_POSTGRES_URL is not")
        pytest.skip("set DNNTUNE_TEST_POSTGRES_URL to run the PostgreSQL tests")
    return url


def _study(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(url))


def _assert_exact(study: optuna.Study, n: int) -> None:
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(n))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)


def _tune_cmd(credit_g: Path, space: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dnntune",
        "tune",
        "--data",
        str(credit_g),
        "--target",
        "target",
        "--folds",
        "2",
        "--max-folds",
        "1",
        "--space",
        str(space),
        "--no-progress",
        "--no-report",
        *extra,
    ]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["journal", "postgres"])
def test_four_workers_run_exactly_the_study_s_trials(
    backend: str, tmp_path: Path, credit_g: Path
) -> None:
    space = write_space(tmp_path / "s.yaml", FAST)
    name = f"par-{uuid.uuid4().hex[:8]}"
    extra = ["--jobs", "4", "--trials", "20", "--study", name, "--output-dir", "run"]
    env = dict(os.environ)
    url = default_parallel_storage(tmp_path / "run")
    if backend == "postgres":
        url = _pg_url()
        env["DNNTUNE_STORAGE"] = url
    proc = subprocess.run(
        _tune_cmd(credit_g, space, *extra),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    try:
        _assert_exact(_study(url, name), 20)
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert sum(summary["trials"].values()) == 20
        assert summary["baseline"]["model"] == "HistGradientBoosting"  # once, by the coordinator
        assert (tmp_path / "run" / "model" / "manifest.json").is_file()
    finally:
        if backend == "postgres":
            optuna.delete_study(study_name=name, storage=url)


@pytest.mark.slow
def test_sigkilled_worker_trial_is_failed_and_retried(tmp_path: Path, credit_g: Path) -> None:
    url = _pg_url()
    space = write_space(tmp_path / "s.yaml", SLOW)
    name = f"kill-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DNNTUNE_STORAGE": url, "DNNTUNE_HEARTBEAT_INTERVAL": "1"}
    create = subprocess.run(
        _tune_cmd(
            credit_g,
            space,
            "--trials",
            "1",
            "--study",
            name,
            "--output-dir",
            "run",
            "--pruner",
            "none",
            "--patience",
            "60",
        ),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert create.returncode == 0, create.stderr
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dnntune",
                "worker",
                "--study",
                name,
                "--index",
                str(i),
                "--trials",
                "4",
                "--threads",
                "1",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(3)
    ]
    try:
        study = _study(url, name)
        victim = None
        for _ in range(120):  # wait until every worker runs a trial
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if len(running) >= 3:
                victim = running[0]
                break
            time.sleep(0.25)
        assert victim is not None, "workers did not start"
        workers[0].send_signal(signal.SIGKILL)
        for w in workers[1:]:
            assert w.wait(timeout=300) == 0
        if study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            # The other workers ended before the killed one's grace period did (a loaded
            # machine's timing): the next worker to start a trial ends it.
            time.sleep(4)  # the grace period: twice the 1 s heartbeat, and then some
            late = [sys.executable, "-m", "dnntune", "worker", "--study", name, "--trials", "1"]
            last = subprocess.run(
                late, cwd=tmp_path, env=env, capture_output=True, timeout=300, check=False
            )
            assert last.returncode == 0, last.stderr
        trials = study.get_trials(deepcopy=False)
        assert not [t for t in trials if t.state is TrialState.RUNNING]
        failed = [t for t in trials if t.state is TrialState.FAIL]
        assert failed, "the killed trial was not marked failed"
        retried = [t for t in trials if t.system_attrs.get("failed_trial") is not None]
        assert retried
        for again in retried:
            # Each retry starts from the parameters its failed trial had drawn (none when the
            # worker died before drawing them; the retry then draws its own).
            source = trials[again.system_attrs["retry_history"][-1]]
            assert source.state is TrialState.FAIL
            assert again.params.items() >= source.params.items()
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        optuna.delete_study(study_name=name, storage=url)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_end_cleanly_and_the_run_resumes(
    sig: signal.Signals, tmp_path: Path, credit_g: Path
) -> None:
    space = write_space(tmp_path / "s.yaml", SLOWER)
    cmd = _tune_cmd(
        credit_g, space, "--trials", "1", "--study", "sig", "--pruner", "none", "--patience", "1000"
    )
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    url = f"sqlite:///{tmp_path / 'runs' / 'sig' / 'study.db'}"
    db = tmp_path / "runs" / "sig" / "study.db"
    for _ in range(600):  # up to a minute on a loaded machine
        # Read with sqlite3 itself: opening an Optuna storage here could create the tables
        # while the run does, and break it.
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
                running = con.execute("SELECT count(*) FROM trials WHERE state = 'RUNNING'")
                if running.fetchone()[0]:
                    break
        except sqlite3.Error:
            pass
        assert proc.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.1)
    else:
        pytest.fail("no trial started")
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)  # a hang fails here; how fast is not a unit test's
    assert proc.returncode == 130, err
    # One line for the trial the signal ended, no page of library frames.
    assert "Traceback" not in err
    assert "because of the following error: interrupted (Ctrl-C or SIGTERM)." in err
    first = _study(url, "sig").get_trials()
    assert first and not [t for t in first if t.state is TrialState.RUNNING]
    assert first[-1].state is TrialState.FAIL
    if sig is signal.SIGINT:
        return  # the same handler: resuming is checked once, after SIGTERM
    # The same study resumed; a timeout (not part of its identity) ends the long trial early.
    again = subprocess.run(
        [*cmd, "--timeout", "15"],  # starting Python and the data may take 6 s on a busy machine
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    numbers = [t.number for t in _study(url, "sig").get_trials()]
    assert numbers == list(range(len(numbers))) and len(numbers) > len(first)


def test_an_interrupt_python_drops_still_ends_the_trial(
    tmp_path: Path, credit_g: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import weakref

    import dnntune
    from dnntune import _signals

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    hook = sys.unraisablehook

    class Thing:
        pass

    def collected(_: object) -> None:  # a weakref callback, as SQLAlchemy's registry has
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler runs here, and raises inside the callback

    try:
        sys.unraisablehook = sys.__unraisablehook__  # Python's own, which prints (not pytest's)
        _signals.install()
        thing = Thing()
        ref = weakref.ref(thing, collected)
        del thing  # Python drops the exception ("Exception ignored in ...") and carries on
        assert ref() is None and _signals._Signal.came
        assert "Exception ignored" not in capfd.readouterr().err  # not a traceback for it
        with pytest.raises(_signals.Interrupted):
            dnntune.tune(
                data=str(credit_g),
                target="target",
                trials=1,
                folds=2,
                space=str(write_space(tmp_path / "s.yaml")),
                output_dir=str(tmp_path / "run"),
            )
    finally:
        _signals._Signal.came = False
        sys.unraisablehook = hook
        for s, handler in handlers.items():
            signal.signal(s, handler)
    (trial,) = _study(f"sqlite:///{tmp_path / 'run' / 'study.db'}", "credit_g-target").trials
    assert trial.state is TrialState.FAIL and "epochs_run" not in trial.user_attrs


SENTINEL = "S3nt1n3l@{pw}%:/x"


@pytest.mark.slow
def test_password_appears_nowhere(tmp_path: Path, credit_g: Path) -> None:
    base = _pg_url()
    encoded = quote(SENTINEL, safe="")
    # Trust authentication accepts any password, so the study really runs with this URL.
    url = base.replace("postgres@", f"postgres:{encoded}@", 1)
    assert encoded in url
    name = f"pw-{uuid.uuid4().hex[:8]}"
    space = write_space(tmp_path / "s.yaml", FAST)
    outputs = []
    for args, env in (
        (["--storage", url, "--trials", "2"], os.environ),
        (["--trials", "3", "--jobs", "2"], {**os.environ, "DNNTUNE_STORAGE": url}),
        (["--storage", url.replace("127.0.0.1:5432", "127.0.0.1:1"), "--trials", "1"], os.environ),
    ):
        proc = subprocess.run(
            _tune_cmd(credit_g, space, "--study", name, "--output-dir", "run", *args),
            cwd=tmp_path,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        outputs += [proc.stdout, proc.stderr]
    scheme = base.split("://")[0]
    assert f"cannot open storage '{scheme}://postgres:***@127.0.0.1:1/test'" in outputs[-1]
    try:
        study = _study(url, name)
        assert len(study.trials) == 3
        system = study._storage.get_study_system_attrs(study._study_id)
        attrs = json.dumps([study.user_attrs, system, [t.user_attrs for t in study.trials]])
        files = "".join(
            p.read_text(errors="replace")
            for p in (tmp_path / "run").rglob("*")
            if p.is_file() and p.suffix in (".json", ".csv", ".log", ".html")
        )
        for text in [*outputs, attrs, files]:
            assert SENTINEL not in text and encoded not in text
    finally:
        optuna.delete_study(study_name=name, storage=url)


def test_sqlite_is_refused_for_several_workers(cli, tmp_path: Path) -> None:
    r = cli("tune", "--jobs", "2", "--storage", "sqlite:///x.db")
    assert r.returncode == 2
    assert "--jobs 2 cannot share the storage" in r.stderr and "several writers lock it" in r.stderr


@pytest.mark.slow
def test_two_workers_on_a_redis_journal(tmp_path: Path, credit_g: Path) -> None:
    url = os.environ.get("DNNTUNE_TEST_REDIS_URL")
    if not url:
        if os.environ.get("DNNTUNE_REQUIRE_POSTGRES"):
            pytest.fail("CI sets DNNTUNE_TEST_REDIS_URL; it is missing")
        pytest.skip("set DNNTUNE_TEST_REDIS_URL to run the Redis test")
    name = f"redis-{uuid.uuid4().hex[:8]}"
    space = write_space(tmp_path / "s.yaml", FAST)
    env = {**os.environ, "DNNTUNE_STORAGE": url}
    proc = subprocess.run(
        _tune_cmd(
            credit_g, space, "--jobs", "2", "--trials", "10", "--study", name, "--output-dir", "run"
        ),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    _assert_exact(_study(url, name), 10)


@pytest.mark.slow
def test_workers_first_trials_sized_to_the_time_limit_are_said(
    tmp_path: Path, credit_g: Path
) -> None:
    """10,000 epochs per fold cannot fit 20 s: each worker sizes the first trial it runs (no
    trial has completed yet) and the coordinator's notes name every sized trial of the run."""
    slow = TINY_SPACE.replace("epochs: 4", "epochs: 10000\nbatch_size: 16")
    space = write_space(tmp_path / "s.yaml", slow)
    extra = ["--jobs", "2", "--trials", "2", "--timeout", "20", "--patience", "10000"]
    proc = subprocess.run(
        _tune_cmd(credit_g, space, *extra, "--no-baseline", "--output-dir", "run"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    study = _study(default_parallel_storage(tmp_path / "run"), "credit_g-target")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    sized = [t for t in complete if "sized_epochs" in t.user_attrs]
    assert sized, [t.user_attrs for t in study.trials]
    for t in sized:
        epochs = t.user_attrs["sized_epochs"]["epochs"]
        line = f"trial {t.number} trained at most {epochs} of 10000 epochs per fold"
        assert line in proc.stderr, proc.stderr
    assert (tmp_path / "run" / "model" / "manifest.json").is_file()
