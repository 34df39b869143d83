"""Kill ``dnntune tune`` with SIGKILL at chosen moments, many times, and look at what is left.

Run by ``test_crash.py`` in a fresh interpreter: ``python _kill_driver.py WORK_DIR KILLS SEED``.
Each run is a forked child executing the real CLI entry point (``dnntune.cli.main``), so no
run pays for the imports again. The child reports the moments it reaches (a trial starts, an
epoch ends, the model is saved, the run folder's outputs or the report are written) on a pipe;
the parent waits for the moment it chose, lets a random fraction of a second pass and kills the
child. A second forked child then opens the study and the model folder as a user would. This
process itself never runs PyTorch, so forking stays safe. Prints one JSON object per line: a
kill and what was found after it, or a folder's final, uninterrupted run.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import random
import select
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

import dnntune.artifacts
import dnntune.cli
import dnntune.objective
import dnntune.report
import dnntune.study

TRIALS = 2
SPACE = """\
optimizer:     {choices: [Adam, AdamW], default: AdamW}
num_layers:    {low: 1, high: 3, default: 2}
hidden_size:   {low: 16, high: 64, default: 32}
learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true, default: 1.0e-3}
epochs:        {value: 6}
"""
# How long after reaching a moment the kill may come (seconds): within the step that follows.
JITTER = {"trial": 0.05, "epoch": 0.03, "save": 0.03, "outputs": 0.03, "report": 1.0}
DURING_TRIALS = ["trial", "epoch", "save", "epoch"]
AFTER_TRIALS = ["outputs", "report"]


def _announcing(fn: Callable[..., Any], moment: str, fd: int) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        os.write(fd, f"{moment}\n".encode())
        return fn(*args, **kwargs)

    return wrapper


def _child(fd: int, argv: list[str]) -> None:
    """Run the CLI with each moment announced on ``fd``; never returns."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    objective = dnntune.objective
    objective.Objective.__call__ = _announcing(objective.Objective.__call__, "trial", fd)
    objective._EpochReport.__call__ = _announcing(objective._EpochReport.__call__, "epoch", fd)
    writer = dnntune.artifacts.ModelWriter  # every save of the model folder writes through it
    writer.fold_network = _announcing(writer.fold_network, "save", fd)
    prepared = dnntune.study._prepared  # where PreparedRun.write_outputs finds it
    prepared.write_run_outputs = _announcing(prepared.write_run_outputs, "outputs", fd)
    dnntune.report.write_report = _announcing(dnntune.report.write_report, "report", fd)
    sys.argv = ["dnntune", *argv]
    code = 1
    try:
        dnntune.cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os._exit(code)


def _import_what_a_run_imports(work: Path) -> None:
    """Run the CLI once, uninterrupted, in a child that sends back the modules it imported, and
    import them here (imports only: this process still runs no PyTorch), so that no later
    child pays for them."""

    def modules() -> dict[str, Any]:
        sys.argv = ["dnntune", *_argv(work / "warm-up", work, seed=0)]
        with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
            dnntune.cli.main()
        return {"modules": sorted(sys.modules)}

    for name in _in_child(modules).get("modules", []):
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def _argv(run_dir: Path, work: Path, seed: int) -> list[str]:
    return [
        *("tune", "--output-dir", str(run_dir), "--space", str(work / "space.yaml")),
        *("--trials", str(TRIALS), "--folds", "2", "--no-progress", "--seed", str(seed)),
    ]


def _start(argv: list[str]) -> tuple[int, int]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        _child(write, argv)
    os.close(write)
    return pid, read


def _wait_for(read: int, moment: str, count: int, limit: float) -> bool:
    """Read announcements until the ``count``-th ``moment`` (True), or the child's end or
    ``limit`` (False)."""
    end = time.monotonic() + limit
    buffer = b""
    while time.monotonic() < end:
        ready, _, _ = select.select([read], [], [], max(end - time.monotonic(), 0.0))
        if not ready:
            break
        chunk = os.read(read, 4096)
        if not chunk:
            return False
        buffer += chunk
        if buffer.split(b"\n").count(moment.encode()) >= count:
            return True
    return False


def _in_child(check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``check()`` in a forked child (it may use PyTorch), its result back as JSON."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            out = check()
        except BaseException as exc:
            out = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(write, json.dumps(out, default=str).encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks) or b'{"error": "the check died"}')


def _inspect(run_dir: Path) -> dict[str, Any]:
    """What a user finds in the run folder: the study's trial states, the model's predictions
    on the training table, the JSON outputs."""
    import numpy as np
    import pandas as pd

    import dnntune
    from dnntune.artifacts import read_summary

    found: dict[str, Any] = {}
    storage = f"sqlite:///{run_dir / 'study.db'}"
    summaries = optuna.get_all_study_summaries(storage)
    trials = []
    if summaries:
        study = optuna.load_study(study_name=summaries[0].study_name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        states = [t.state.name for t in trials]
        found["states"] = {s: states.count(s) for s in set(states)}
    if (run_dir / "model" / "manifest.json").is_file():
        number = json.loads((run_dir / "model" / "manifest.json").read_text())["best_trial"]
        found["model_trial_state"] = trials[number].state.name
        from sklearn.datasets import load_breast_cancer

        rows = load_breast_cancer(as_frame=True).frame.head(50)
        predicted = dnntune.load(run_dir).predict(rows)
        numbers = predicted.select_dtypes("number").to_numpy(dtype=float)
        found["predicted_rows"] = len(predicted)
        found["predictions_finite"] = bool(np.isfinite(numbers).all())
    if (run_dir / "summary.json").is_file():
        found["summary_trials"] = read_summary(run_dir)["trials"]
        found["trials_csv_rows"] = len(pd.read_csv(run_dir / "trials.csv"))
        json.loads((run_dir / "best_params.json").read_text())
    if (run_dir / "report.html").is_file():
        found["report_complete"] = (
            (run_dir / "report.html").read_text().rstrip().endswith("</html>")
        )
    found["files"] = sorted(p.name for p in run_dir.rglob("*") if p.is_file())
    return found


def main() -> None:
    work, kills, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    (work / "space.yaml").write_text(SPACE)
    _import_what_a_run_imports(work)
    done, folder = 0, 0
    while done < kills:
        run_dir = work / f"run{folder}"
        argv = _argv(run_dir, work, seed=folder)
        plan, after = iter(DURING_TRIALS * 50), iter(AFTER_TRIALS * 50)
        finished_trials = False
        while done < kills:
            moment = next(after) if finished_trials else next(plan)
            pid, read = _start(argv)
            # The n-th epoch of the run: often in its second trial, after a first one ended.
            count = rng.randint(1, 20) if moment == "epoch" else 1
            reached = _wait_for(read, moment, count, limit=120)
            if reached:
                time.sleep(rng.uniform(0, JITTER[moment]))
                os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            os.close(read)
            killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            if not killed and not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
                # A run that fails by itself would be restarted for ever: stop, and say so.
                print(json.dumps({"error": f"a run ended with status {status} before {moment}"}))
                sys.exit(1)
            if not killed:  # the run ended first: its study has all its trials
                finished_trials = True
                continue
            done += 1
            found = _in_child(lambda run_dir=run_dir: _inspect(run_dir))
            print(json.dumps({"kill": done, "folder": folder, "moment": moment, **found}))
            sys.stdout.flush()
            if finished_trials and moment == "report":
                break
        pid, read = _start(argv)  # the folder's last run, left to finish
        _, status = os.waitpid(pid, 0)
        os.close(read)
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        found = _in_child(lambda run_dir=run_dir: _inspect(run_dir))
        print(json.dumps({"final": folder, "exit_code": code, "trials": TRIALS, **found}))
        sys.stdout.flush()
        folder += 1


if __name__ == "__main__":
    main()
