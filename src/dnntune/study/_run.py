"""Run a tuning study in this process: prepare the run, run its trials, write its outputs.

:func:`prepare_run` checks the input and opens (or creates) the study; :func:`run_trials` runs
trials on it; :func:`run_study` is the two for one process, with the outputs written at the
end. Workers that share a study (``dnntune.parallel``) use the same parts."""

from __future__ import annotations

import time
from collections.abc import Callable

from dnntune._names import first_line, setting_name
from dnntune._owners import end_orphans
from dnntune.artifacts import (
    run_record,
    save_trial,
    saved_trial,
)
from dnntune.baseline import BASELINE_ATTR, Baseline, BaselineTooSlow, gbdt_baseline
from dnntune.config import SamplerName, Task, TuneConfig
from dnntune.data import FOLD_CACHE_SHARE, Dataset, FoldCache, dataset_from_config
from dnntune.engine import Metric, resolve_device, resolve_metric
from dnntune.ensemble import Pool
from dnntune.exceptions import (
    ConfigError,
    TrialCut,
    TrialOutOfMemory,
)
from dnntune.objective import Objective, epoch_slot, fold_count
from dnntune.pruners import make_pruner
from dnntune.samplers import make_sampler
from dnntune.space import SearchSpace, default_space, load_space
from dnntune.study._autostop import _auto_stop
from dnntune.study._epochs import choose_epochs, use_stored_epochs
from dnntune.study._open import _open_study
from dnntune.study._prepared import PreparedRun, _best_value
from dnntune.study._result import Notes, TuneResult
from dnntune.tracking import Tracker, tracking_uri


def prepare_run(
    config: TuneConfig,
    *,
    on_note: Callable[[str], None] | None = None,
    sampler_seed: int | None = None,
    memory_share: float = FOLD_CACHE_SHARE,
    worker: bool = False,
    stale_running: bool = False,
    dataset: Dataset | None = None,
    space: SearchSpace | None = None,
    started: float | None = None,
) -> PreparedRun:
    """Check the input, build the objective and open the study (created if new; refused if it
    was run with other settings). Nothing is written before the input is checked; a run
    folder created for a study that cannot be opened is removed again.

    ``sampler_seed``: a worker's own (default: the config's seed). ``memory_share``: of the
    memory free, what the folds kept prepared between trials may take. ``worker``: a worker
    joining a study created elsewhere (it may read the data from another path). ``dataset``
    and ``space``: built in memory (the scikit-learn estimators' rows and space), in place of
    the configured file and space file. ``stale_running``: every trial still RUNNING was left
    by a dead earlier run (a coordinator's journal file, which has no heartbeat). ``started``
    (``time.monotonic()``): when the command began, from which ``timeout`` counts (default:
    now), so reading the data is inside the budget.

    Workers' RDB storages record a heartbeat per running trial; trials left RUNNING by a
    process of this machine that died without a word are ended (``dnntune._owners``)."""
    started = time.monotonic() if started is None else started
    if config.run_dir.exists() and not config.run_dir.is_dir():
        raise ConfigError(
            f"{setting_name('output_dir')} {str(config.run_dir)!r} is a file, not a folder; "
            "pass a folder for the run's outputs"
        )
    notes = Notes(on_note)
    dataset = dataset or dataset_from_config(config)
    metric = resolve_metric(config.training.metric, dataset.task)
    # Told once the study is open: bad input found meanwhile is then one line, alone.
    pending = [*([] if worker else [_task_line(config, dataset, metric)]), *dataset.notes]
    space = space or (load_space(config.search.space) if config.search.space else default_space())
    seed = config.seed if sampler_seed is None else sampler_seed
    search = config.search
    choice = make_sampler(search.sampler, space=space, seed=seed, grid_points=search.grid_points)
    device = resolve_device(config.training.device)
    folds = FoldCache(dataset, device, config.fold_preprocessing, share=memory_share, on_note=notes)
    deadline = started + search.timeout if search.timeout else None
    slot, n_folds = epoch_slot(space), fold_count(config.training, dataset)
    pruner = make_pruner(search.pruner, epoch_slot=slot, max_steps=n_folds * slot)
    uri = tracking_uri(config.run.mlflow, worker=worker)
    mlflow = None if uri is None else Tracker.connect(uri)  # checked before the study opens
    study = _open_study(config, metric, choice.sampler, pruner, space, worker=worker)
    for msg in pending:
        notes(msg)
    model_folder = config.run_dir / "model"
    orphans = end_orphans(study, saved_trial(model_folder), every_running=stale_running).note()
    if orphans is not None:
        notes(orphans)
    tracker = None
    if mlflow is not None and uri is not None:
        tracker = Tracker.for_study(mlflow, uri, study, config.to_dict())
    record = run_record(config, dataset, metric)
    pool = Pool(config.run_dir, search.ensemble_pool, metric) if search.ensemble else None
    objective = Objective(
        space,
        metric,
        folds,
        config.training,
        seed=config.seed,
        deadline=deadline,
        best_value=_best_value(study),
        on_new_best=lambda models: save_trial(
            models, model_folder, record, only_if_better=metric.better
        ),
        on_trial=None if pool is None else lambda models: pool.add(models, record),
        on_partial=lambda models: save_trial(
            models, model_folder, record, only_if_better=metric.better, partial=True
        ),
    )
    run = PreparedRun(
        config=config,
        dataset=dataset,
        space=space,
        metric=metric,
        objective=objective,
        study=study,
        notes=notes,
        sampler_note=choice.note,
        started=started,
        deadline=deadline,
        callbacks=[
            objective.stop_at_deadline,
            *_auto_stop(config, objective, notes),
            *([tracker] if tracker else []),
        ],
        tracker=tracker,
        first_trial=len(study.get_trials(deepcopy=False)),
    )
    use_stored_epochs(run)
    return run


def _task_line(config: TuneConfig, dataset: Dataset, metric: Metric) -> str:
    """What the run reads the table as: task, classes and metric, and how they were chosen."""
    target = dataset.target
    how = "given" if config.columns.task is not None else "inferred"
    what = f"task {dataset.task.value} ({how}"
    if target.classes and dataset.task is not Task.MULTILABEL:
        shown = ", ".join(str(c) for c in target.classes[:8])
        more = f", ... ({len(target.classes)} in all)" if len(target.classes) > 8 else ""
        what += f"; {len(target.classes)} classes of {target.columns[0]!r}: {shown}{more}"
    elif dataset.task is Task.MULTILABEL:
        what += f"; {len(target.columns)} labels: {', '.join(target.columns)}"
    else:
        what += f"; values of {', '.join(repr(c) for c in target.columns)}"
    chosen = "given" if config.training.metric is not None else "the task's default"
    return (
        f"{what}), metric {metric.name.value} ({chosen}, {metric.direction}d) on "
        f"{dataset.n_rows} rows; {setting_name('task')} and {setting_name('metric')} choose "
        "others"
    )


def run_trials(run: PreparedRun, n_trials: int | None, *, show_progress: bool = False) -> None:
    """Run up to ``n_trials`` trials (None: until the deadline) on the prepared study."""
    run.finished_setup = run.finished_setup or time.monotonic()
    if n_trials == 0:
        return
    run.study.optimize(
        run.objective,
        n_trials=n_trials,
        timeout=run.time_left(),
        show_progress_bar=show_progress,
        gc_after_trial=False,
        callbacks=run.callbacks,
        catch=(TrialOutOfMemory, TrialCut),
    )


# The share of the time left that the baseline may take within a time limit.
BASELINE_SHARE = 0.25


def run_baseline(run: PreparedRun) -> Baseline | None:
    """The study's gradient-boosting baseline (``dnntune.baseline``): the one it stored, or,
    with ``baseline`` on, computed now on the trials' folds and stored. A baseline that
    cannot be computed, or would take more than a quarter of the time left, is a note, and the
    study goes on."""
    stored = Baseline.from_dict(run.study.user_attrs.get(BASELINE_ATTR))
    left = run.time_left()
    if stored is None and run.config.search.baseline and left is not None and left < 1.0:
        run.note(f"no baseline: {setting_name('timeout')} was spent before it could start")
    elif stored is None and run.config.search.baseline:
        seed = run.config.seed
        run.note(
            f"fitting the HistGradientBoosting baseline on the study's {run.objective.n_folds} "
            "folds (its scores come with the run's)"
        )
        # Within a time limit the baseline may take a quarter of what is left.
        budget = None if left is None else BASELINE_SHARE * left
        try:
            stored = gbdt_baseline(
                run.dataset, run.metric, run.objective.n_folds, seed=seed, time_budget=budget
            )
        except (ValueError, TypeError, MemoryError) as exc:
            run.note(f"the HistGradientBoosting baseline failed ({first_line(exc)}); no baseline")
            return None
        except BaselineTooSlow as exc:
            run.note(f"no baseline: {exc} ({setting_name('timeout')} {left:.0f} s left)")
            return None
        run.study.set_user_attr(BASELINE_ATTR, stored.to_dict())
    run.baseline = stored
    return stored


def start_or_resume(run: PreparedRun) -> int | None:
    """Say how the sampler treats the space, and that a study resumes, or choose a new
    study's epochs from its time limit (``_epochs``) and queue its first trials (as many as
    the budget runs); return the trials missing (None: no count, run until the timeout)."""
    if run.sampler_note:
        run.note(run.sampler_note)
    choose_epochs(run)
    done = run.finished
    search = run.config.search
    total = search.n_trials
    if done:
        run.note(f"resuming study {run.study.study_name!r}: {len(done)} finished trials")
    elif search.warm_start and search.sampler is not SamplerName.GRID:
        # A start beyond the trial budget would stay queued in the study, never run.
        for start in run.space.warm_starts()[:total]:
            run.study.enqueue_trial(start, skip_if_exists=True)
    return None if total is None else max(total - len(done), 0)


def run_study(
    config: TuneConfig,
    *,
    show_progress: bool = False,
    on_note: Callable[[str], None] | None = None,
    dataset: Dataset | None = None,
    space: SearchSpace | None = None,
    started: float | None = None,
) -> TuneResult:
    """Run (or resume) the study ``config`` describes in this process; write the run folder.
    ``dataset``, ``space`` and ``started`` are :func:`prepare_run`'s."""
    run = prepare_run(config, on_note=on_note, dataset=dataset, space=space, started=started)
    run_baseline(run)
    remaining = start_or_resume(run)
    try:
        run_trials(run, remaining, show_progress=show_progress)
    finally:
        run.write_outputs()
    run.deliver()
    run.check_delivered()
    return run.result()
