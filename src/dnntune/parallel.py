"""Several worker processes on one study: ``tune(jobs=N)`` here, ``run_worker`` anywhere.

The coordinator (``tune`` with ``jobs > 1``) checks the input and creates the study exactly as a
single-process run does, then starts N ``dnntune worker`` processes on the same storage and
shows one progress bar for all of them. Storages: a journal file in the run folder by default
(SQLite locks up under several writers), or the user's PostgreSQL/MySQL or Redis URL. The URL
reaches the workers through ``DNNTUNE_STORAGE``, never through their command line.

Seeds: the folds and the model initializations use ``--seed``; worker ``i``'s sampler uses
``seed + 7919 * (i + 1)``, so workers draw different parameter sets. Which trial gets which
parameters depends on timing, so a run with N > 1 workers is not reproducible trial by trial.

``--trials`` counts the trials of the whole study: the missing ones are handed out one at a
time through a locked counter file in the run folder, so a worker with fast trials takes more.
On an RDB storage the workers beat a heartbeat; a killed worker's trial is marked failed by
the next worker and retried with the same parameters. A journal file has no heartbeat: when
the coordinator starts, trials left RUNNING by an earlier, dead run are marked failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna

from dnntune._names import setting_example, setting_name
from dnntune._signals import raise_if_interrupted
from dnntune.config import MAX_SEED, TuneConfig
from dnntune.data import FOLD_CACHE_SHARE
from dnntune.exceptions import ConfigError, StorageError
from dnntune.storage import MEMORY, open_storage, redact
from dnntune.study import (
    FINISHED,
    PreparedRun,
    TuneResult,
    prepare_run,
    run_baseline,
    run_study,
    run_trials,
    start_or_resume,
)
from dnntune.tracking import ENV as MLFLOW_ENV

__all__ = ["default_parallel_storage", "run_worker", "tune_config"]


def default_parallel_storage(run_dir: Path) -> str:
    return f"journal:{(run_dir / 'study.journal').resolve()}"


def tune_config(
    config: TuneConfig,
    *,
    show_progress: bool = False,
    on_note: Callable[[str], None] | None = None,
    started: float | None = None,
) -> TuneResult:
    """Run (or resume) a study; with ``run.jobs > 1`` in worker processes sharing its storage.
    ``started`` (``time.monotonic()``): when the command began, from which ``timeout``
    counts (default: now)."""
    started = time.monotonic() if started is None else started
    if config.run.jobs <= 1:
        return run_study(config, show_progress=show_progress, on_note=on_note, started=started)
    return _coordinate(config, show_progress=show_progress, on_note=on_note, started=started)


def _coordinate(
    config: TuneConfig,
    *,
    show_progress: bool,
    on_note: Callable[[str], None] | None,
    started: float,
) -> TuneResult:
    jobs = config.run.jobs
    url = config.run.storage or default_parallel_storage(config.run_dir)
    if url.startswith("sqlite") or url == MEMORY:
        why = "several writers lock it" if url != MEMORY else "it lives in one process"
        raise ConfigError(
            f"{setting_example('jobs', jobs)} cannot share the storage {redact(url)!r}: {why}; "
            f"leave {setting_name('storage')} unset to use a journal file in the run folder, "
            "or pass a PostgreSQL URL"
        )
    config = config.replace(storage=url)
    # A journal file has no heartbeat: before the workers start, a trial still RUNNING was
    # left by a dead earlier run.
    prepared = prepare_run(
        config, on_note=on_note, stale_running=url.startswith("journal:"), started=started
    )
    study = prepared.study
    done = len(prepared.finished)
    total = config.search.n_trials
    run_baseline(prepared)
    remaining = start_or_resume(prepared)
    prepared.write_outputs()  # the run folder is complete while the workers run
    procs, logs = _start_workers(prepared, url, remaining) if remaining != 0 else ([], [])
    try:
        _watch(study, procs, total, done, show_progress)
    except KeyboardInterrupt:
        _stop(procs)
        raise
    finally:
        for log in logs:
            log.close()
        prepared.write_outputs()
    prepared.deliver()
    prepared.check_delivered()
    failed = [p.returncode for p in procs if p.returncode not in (0, None)]
    if failed and on_note is not None:
        on_note(f"{len(failed)} worker(s) ended with an error; see {config.run_dir}/worker-*.log")
    return prepared.result()


def _start_workers(
    prepared: PreparedRun, url: str, remaining: int | None
) -> tuple[list[subprocess.Popen[bytes]], list]:
    """``dnntune worker`` processes on the study; the URL reaches them in the environment."""
    config = prepared.config
    jobs, run_dir = config.run.jobs, config.run_dir
    tickets = run_dir / ".tickets"
    if remaining is not None:
        tickets.write_text(f"0 {remaining}\n")
    threads = max(1, (os.cpu_count() or 1) // jobs)
    procs, logs = [], []
    for i in range(jobs):
        cmd = [
            *(sys.executable, "-m", "dnntune", "worker", "--study", prepared.study.study_name),
            *("--index", str(i), "--threads", str(threads)),
            # The workers share the machine's memory.
            *("--memory-share", f"{FOLD_CACHE_SHARE / jobs:.4g}"),
            *("--data", config.columns.data, "--output-dir", str(run_dir)),
        ]
        if remaining is not None:
            cmd += ["--tickets", str(tickets)]
        left = prepared.time_left()
        if left is not None:
            cmd += ["--timeout", f"{max(left, 1.0):.1f}"]
        log = (run_dir / f"worker-{i}.log").open("wb")
        logs.append(log)
        env = {**os.environ, "DNNTUNE_STORAGE": url}
        if prepared.tracker is not None:  # the study's copy of the URI hides its password
            env[MLFLOW_ENV] = prepared.tracker.uri
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
    return procs, logs


def ticket_taker(path: Path) -> Callable[[], bool]:
    """A function that takes one trial from the shared ``used total`` counter file; False when
    all are taken. The file is locked while read and rewritten (POSIX ``flock``)."""
    import fcntl

    def take() -> bool:
        with path.open("r+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            used, total = (int(v) for v in handle.read().split())
            if used >= total:
                return False
            handle.seek(0)
            handle.write(f"{used + 1} {total}\n")
            handle.truncate()
            return True

    return take


def _watch(
    study: optuna.Study,
    procs: list[subprocess.Popen[bytes]],
    total: int | None,
    done: int,
    show_progress: bool,
) -> None:
    """One progress bar for all workers: finished trials of the whole study."""
    bar = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=done if total else 0, unit="trial", file=sys.stderr)
    seen = done
    while True:
        raise_if_interrupted()
        alive = any(p.poll() is None for p in procs)
        finished = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
        if bar is not None and finished > seen:
            bar.update(finished - seen)
            with contextlib.suppress(ValueError):
                bar.set_postfix_str(f"best {study.best_value:.6g}")
        seen = max(seen, finished)
        if not alive:
            break
        time.sleep(0.5)
    if bar is not None:
        bar.close()


def _stop(procs: list[subprocess.Popen[bytes]], grace: float = 20.0) -> None:
    """SIGTERM every worker (each marks its running trial failed), then wait, then kill."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    end = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(end - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            p.kill()


def run_worker(
    *,
    storage: str,
    study_name: str,
    index: int = 0,
    trials: int | None = None,
    timeout: float | None = None,
    data: str | None = None,
    output_dir: str | None = None,
    threads: int | None = None,
    tickets: Path | None = None,
    on_note: Callable[[str], None] | None = None,
    memory_share: float = FOLD_CACHE_SHARE,
) -> TuneResult:
    """Join ``study_name`` on ``storage`` and run trials until ``trials`` or ``timeout``.

    The data, target, space and settings come from the study's stored configuration; ``data``
    and ``output_dir`` override the paths (another machine may mount them elsewhere). The
    worker's sampler seed is derived from ``index``; with ``tickets`` (workers of one
    coordinator) it takes one trial at a time from that counter file, so fast workers take
    more. It beats a heartbeat on RDB storages and leaves the run folder's summary to the
    coordinator.
    """
    if threads:
        import torch

        torch.set_num_threads(threads)
    config = _stored_config(storage, study_name, timeout, data, output_dir)
    run = prepare_run(
        config,
        on_note=on_note,
        sampler_seed=(config.seed + 7919 * (index + 1)) % (MAX_SEED + 1),
        memory_share=memory_share,
        worker=True,
    )
    if tickets is None:
        run_trials(run, trials)
        return run.result()
    take = ticket_taker(tickets)
    while take():
        left = run.time_left()
        if left is not None and left <= 0:
            break
        run_trials(run, 1)
    return run.result()


def _stored_config(
    storage: str, study_name: str, timeout: float | None, data: str | None, output: str | None
) -> TuneConfig:
    try:
        stored = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except KeyError:
        raise StorageError(
            f"no study {study_name!r} in {redact(storage)!r}; check {setting_name('study')}"
        ) from None
    raw = stored.user_attrs.get("config")
    if raw is None:
        raise StorageError(f"study {study_name!r} was not created by dnntune tune")
    overrides: dict[str, object] = {
        "storage": storage,
        "study": study_name,
        "trials": None,
        "timeout": timeout,
        "jobs": 1,
    }
    if data:
        overrides["data"] = data
    if output:
        overrides["output_dir"] = output
    try:
        return TuneConfig.from_dict(raw, **overrides)
    except ConfigError as exc:
        raise StorageError(
            f"study {study_name!r} holds settings this dnntune does not read ({exc}); start a "
            f"new study with dnntune tune"
        ) from None
