"""Run a tuning study in this process: prepare the run, run its trials, write its outputs.

:func:`prepare_run` checks the input and opens (or creates) the study; :func:`run_trials` runs
trials on it; :func:`run_study` is the two for one process, with the outputs written at the
end. Workers that share a study (``dnntune.parallel``) use the same parts.
"""

from __future__ import annotations

import functools
import math
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from torch import nn

from dnntune._names import Message, first_line, setting_name
from dnntune._owners import end_orphans
from dnntune.artifacts import (
    LoadedModel,
    RunScores,
    Score,
    load_model,
    read_manifest,
    record_in_summary,
    run_record,
    save_trial,
    saved_trial,
    write_run_outputs,
)
from dnntune.baseline import BASELINE_ATTR, Baseline, gbdt_baseline
from dnntune.config import CONFIG_FORMAT, SamplerName, Task, TuneConfig
from dnntune.data import FOLD_CACHE_SHARE, Dataset, FoldCache, dataset_from_config
from dnntune.engine import Metric, resolve_device, resolve_metric
from dnntune.ensemble import POOL, Pool, Selection, ensemble_run
from dnntune.exceptions import (
    ConfigError,
    DataError,
    NoModelError,
    StorageError,
    TrialOutOfMemory,
)
from dnntune.objective import Objective, TrialModels, epoch_slot, fold_count
from dnntune.pruners import make_pruner
from dnntune.samplers import make_sampler
from dnntune.space import SearchSpace, default_space, load_space
from dnntune.storage import default_storage_url, open_storage, redact

__all__ = [
    "AutoStop",
    "PreparedRun",
    "TuneResult",
    "prepare_run",
    "run_baseline",
    "run_study",
    "run_trials",
    "start_or_resume",
]

CONFIG_ATTR = "dnntune_config"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass
class TuneResult:
    """What a study produced: the study, its notes, the baseline, the ensemble selection, and
    the delivered model in ``run_dir / 'model'`` (``delivered``: the best trial's fold networks
    or the ensemble's, as ``predict`` uses them; ``model`` and ``models``: its networks).
    ``scores`` compares the delivered model, the best trial alone and the baseline out of
    fold. Asking for the best trial or the model of a study with no completed trial raises
    :class:`NoModelError`."""

    study: optuna.Study
    metric: Metric
    run_dir: Path
    best: TrialModels | None
    notes: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0
    dataset: Dataset | None = field(default=None, repr=False)
    baseline: Baseline | None = None
    ensemble: Selection | None = None
    scores: RunScores | None = None

    @property
    def best_trial(self) -> optuna.trial.FrozenTrial:
        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            counts: dict[str, int] = {}
            for t in self.study.get_trials(deepcopy=False):
                counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
            states = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none"
            raise NoModelError(
                f"no trial of study {self.study.study_name!r} completed (trials: {states}); "
                f"raise {setting_name('timeout')} or {setting_name('trials')}"
            )
        return self.study.best_trial

    @property
    def best_params(self) -> dict[str, Any]:
        return self.best_trial.params

    @property
    def best_value(self) -> float:
        value = self.best_trial.value
        assert value is not None  # a complete trial of a single-objective study has one
        return value

    @functools.cached_property
    def delivered(self) -> LoadedModel | None:
        """The delivered model, loaded from the run folder (None when none was saved)."""
        if not (self.run_dir / "model" / "manifest.json").is_file():
            return None
        return load_model(self.run_dir)

    @property
    def model(self) -> nn.Module | None:
        """The delivered model's first network (the first fold's of its first member)."""
        return self.delivered.models[0] if self.delivered is not None else None

    @property
    def models(self) -> list[nn.Module]:
        """Every network of the delivered model (each member's fold networks)."""
        return self.delivered.models if self.delivered is not None else []


@dataclass
class PreparedRun:
    """A checked input and its open study, ready to run trials."""

    config: TuneConfig
    dataset: Dataset
    space: SearchSpace
    metric: Metric
    objective: Objective
    study: optuna.Study
    notes: Notes
    sampler_note: str | None
    started: float
    deadline: float | None
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]]
    baseline: Baseline | None = None
    ensemble: Selection | None = None
    scores: RunScores | None = None

    @property
    def finished(self) -> list[optuna.trial.FrozenTrial]:
        return [t for t in self.study.get_trials(deepcopy=False) if t.state in FINISHED]

    def time_left(self) -> float | None:
        return None if self.deadline is None else max(self.deadline - time.monotonic(), 0.0)

    def note(self, msg: str) -> None:
        self.notes(msg)

    def write_outputs(self) -> None:
        """summary.json, best_params.json and trials.csv in the run folder."""
        wall = time.monotonic() - self.started
        write_run_outputs(self.study, self.config, self.dataset, self.metric, wall)

    def deliver(self) -> None:
        """Select the ensemble of the pooled trials and deliver it when it beats the best
        trial (``dnntune.ensemble``); with the ensemble off, put back the best trial alone
        where an earlier run delivered an ensemble. Then record how the delivered model, the
        best trial and the baseline score (``scores`` in summary.json)."""
        self._select()
        self.scores = self._scores()
        if self.scores is not None:
            record_in_summary(self.config.run_dir, "scores", self.scores.to_dict())

    def _select(self) -> None:
        search = self.config.search
        run_dir = self.config.run_dir
        manifest = run_dir / "model" / "manifest.json"
        if not manifest.is_file() or not (run_dir / POOL).is_dir():
            return
        if not search.ensemble and not read_manifest(manifest.parent).is_ensemble:
            return
        rounds = Pool(run_dir, 0, self.metric).chosen_rounds()
        if rounds is not None and search.ensemble:
            self.note(
                f"the ensemble keeps the size chosen with dnntune ensemble --size {rounds} "
                "(run it again with another size to change it)"
            )
        if search.ensemble:
            self.note("selecting the ensemble of the best trials on their out-of-fold predictions")
        try:
            selection = ensemble_run(
                run_dir, rounds=rounds or search.ensemble_rounds, deliver=search.ensemble
            )
        except DataError as exc:
            self.note(f"no ensemble: {exc}")
            return
        self.ensemble = selection if search.ensemble else None

    def _scores(self) -> RunScores | None:
        """The delivered model, the best trial alone and the baseline, out of fold."""
        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not any(t.value is not None and math.isfinite(t.value) for t in complete):
            return None
        best = self.study.best_trial
        folds = len(best.user_attrs.get("fold_scores", []))
        best_oof = None
        if self.ensemble is not None and self.ensemble.best_trial == best.number:
            best_oof = self.ensemble.best_value
        delivered = None
        try:
            manifest = read_manifest(self.config.run_dir / "model")
        except DataError:
            manifest = None
        if manifest is not None:
            first = manifest.members[0]
            if manifest.is_ensemble:
                kind, mean = f"ensemble of {len(manifest.members)} trials", None
            else:
                kind, mean = f"trial {first.trial}", first.value
                if first.trial == best.number:
                    best_oof = manifest.oof_value
            n = len([f for f in manifest.folds if f.trial == first.trial])
            delivered = Score(f"delivered model ({kind})", manifest.oof_value, mean, n)
        baseline = None
        if self.baseline is not None:
            b = self.baseline
            oof = b.oof_value if math.isfinite(b.oof_value) else None
            baseline = Score(f"baseline {b.model}", oof, b.value, len(b.fold_scores))
        best_score = Score(f"best trial {best.number} alone", best_oof, best.value, folds)
        return RunScores(
            self.metric.name.value, self.metric.direction, delivered, best_score, baseline
        )

    def result(self) -> TuneResult:
        wall = time.monotonic() - self.started
        run_dir = self.config.run_dir
        best = self.objective.best
        return TuneResult(
            self.study,
            self.metric,
            run_dir,
            best,
            self.notes,
            wall,
            self.dataset,
            self.baseline,
            self.ensemble,
            self.scores,
        )


class Notes(list[str]):
    """The notes of a run, each also told to ``on_note`` as it comes."""

    def __init__(self, on_note: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.on_note = on_note

    def __call__(self, msg: str) -> None:
        self.append(Message(msg))
        if self.on_note is not None:
            self.on_note(self[-1])


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
) -> PreparedRun:
    """Check the input, build the objective and open the study (created if new; refused if it
    was run with other settings). Nothing is written before the input is checked; a run
    folder created for a study that cannot be opened is removed again.

    ``sampler_seed``: a worker's own (default: the config's seed). ``memory_share``: of the
    memory free, what the folds kept prepared between trials may take. ``worker``: a worker
    joining a study created elsewhere (it may read the data from another path). ``dataset``
    and ``space``: built in memory (the scikit-learn estimators' rows and space), in place of
    the configured file and space file. ``stale_running``: every trial still RUNNING was left
    by a dead earlier run (a coordinator's journal file, which has no heartbeat).

    Workers' RDB storages record a heartbeat per running trial; trials left RUNNING by a
    process of this machine that died without a word are ended (``dnntune._owners``)."""
    started = time.monotonic()
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
    study = _open_study(config, metric, choice.sampler, pruner, space, worker=worker)
    for msg in pending:
        notes(msg)
    model_folder = config.run_dir / "model"
    orphans = end_orphans(study, saved_trial(model_folder), every_running=stale_running).note()
    if orphans is not None:
        notes(orphans)
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
    )
    return PreparedRun(
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
        callbacks=_auto_stop(config, objective, notes),
    )


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


def _best_value(study: optuna.Study) -> float | None:
    """The study's best value so far (None before a trial completed)."""
    if any(t.state is TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return study.best_value
    return None


def _auto_stop(
    config: TuneConfig, objective: Objective, note: Callable[[str], None]
) -> list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]]:
    if not config.search.auto_stop:
        return []
    if objective.n_folds < 2:
        note(
            f"{setting_name('auto_stop')} needs at least 2 folds per trial (the CV noise); "
            "it is off"
        )
        return []
    return [AutoStop(note)]


def _open_study(
    config: TuneConfig,
    metric: Metric,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    space: SearchSpace,
    *,
    worker: bool,
) -> optuna.Study:
    run_dir = config.run_dir
    created = not run_dir.exists()
    url = config.run.storage or default_storage_url(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        study = _load_study(config, metric, sampler, pruner, url, space, worker=worker)
    except BaseException:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return study


def _load_study(
    config: TuneConfig,
    metric: Metric,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    url: str,
    space: SearchSpace,
    *,
    worker: bool,
) -> optuna.Study:
    name = config.study_name
    where = f"study {name!r} in {redact(url)!r}"
    try:
        study = optuna.create_study(
            storage=open_storage(url, heartbeat=worker),
            study_name=name,
            sampler=sampler,
            pruner=pruner,
            direction=metric.optuna_direction,
            load_if_exists=True,
        )
    except ValueError as exc:
        raise StorageError(f"cannot use {where}: {exc}") from None
    if study.direction.name.lower() != metric.direction:
        raise StorageError(
            f"{where} was created to {study.direction.name.lower()}, but metric "
            f"{metric.name.value!r} must be {metric.direction}d; use another "
            f"{setting_name('study')} name"
        )
    wanted = {**config.identity(), "metric": metric.name.value, "space": space.to_dict()}
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, wanted)
        study.set_user_attr("config", config.to_dict())
        return study
    if stored.get("format") != CONFIG_FORMAT:
        raise StorageError(
            f"{where} was made by a dnntune whose settings format is "
            f"{stored.get('format')}; this one reads format {CONFIG_FORMAT}; use a new "
            f"{setting_name('study')} name"
        )
    # A worker may read the data from another path (another machine's mount).
    differ = [
        k for k in sorted(wanted) if stored.get(k) != wanted[k] and not (worker and k == "data")
    ]
    if differ:
        diff = "; ".join(_difference(k, stored.get(k), wanted[k]) for k in differ)
        raise StorageError(
            f"{where} was run with different settings ({diff}); rerun with the same settings "
            f"to resume, or pass a new {setting_name('study')}"
        )
    return study


def _difference(key: str, stored: Any, wanted: Any) -> str:
    """One setting that differs, for the refusal to resume: values, or the space's parameters."""
    if key != "space" or not isinstance(stored, dict):
        return f"{key}: {stored!r}, now {wanted!r}"
    changed = []
    for name in sorted(set(stored) | set(wanted)):
        was, now = stored.get(name) or {}, wanted.get(name) or {}
        if was == now:
            continue
        if was.get("type") == now.get("type") == "fixed":  # two values: name both
            changed.append(f"{name} {was['value']!r}, now {now['value']!r}")
        else:
            changed.append(name)
    return f"space: {', '.join(changed)}"


class AutoStop:
    """Stop the study when the best configurations can no longer be told apart.

    After ``min_trials`` completed trials, two numbers are compared:

    * the room for improvement: the mean gap between the ``top`` best values (an estimate of
      what the next record would add, from the spacing at the top of the values found);
    * the cross-validation noise of the best trial: the standard deviation of its fold scores
      times ``sqrt(1/k + 1/(k-1))``, the corrected resampled standard error of a k-fold mean
      (Nadeau and Bengio, 2003), since the folds share most of their training rows.

    When the first falls below the second, further trials are unlikely to find a configuration
    measurably better than the best; the study stops and the reason is recorded.
    """

    def __init__(self, note: Callable[[str], None], min_trials: int = 20, top: int = 5) -> None:
        self.min_trials = min_trials
        self.top = top
        self.note = note
        self.reason: str | None = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        values = [t.value for t in trials if t.value is not None and math.isfinite(t.value)]
        if len(values) < self.min_trials or self.reason is not None:
            return
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        best = sorted(values, reverse=maximize)[: self.top]
        room = abs(best[0] - best[-1]) / (len(best) - 1)
        noise = cv_noise(study.best_trial.user_attrs.get("fold_scores", []))
        if noise is None or not room < noise:
            return
        self.reason = (
            f"auto-stop after {len(values)} completed trials: the estimated room for "
            f"improvement ({room:.4g}) fell below the cross-validation noise ({noise:.4g})"
        )
        self.note(self.reason)
        study.set_user_attr("auto_stop", self.reason)
        study.stop()


def cv_noise(fold_scores: list[float]) -> float | None:
    """The corrected standard error of a k-fold mean score (None for fewer than 2 folds)."""
    k = len(fold_scores)
    if k < 2 or not all(math.isfinite(s) for s in fold_scores):
        return None
    return statistics.stdev(fold_scores) * math.sqrt(1 / k + 1 / (k - 1))


def run_trials(run: PreparedRun, n_trials: int | None, *, show_progress: bool = False) -> None:
    """Run up to ``n_trials`` trials (None: until the deadline) on the prepared study."""
    if n_trials == 0:
        return
    run.study.optimize(
        run.objective,
        n_trials=n_trials,
        timeout=run.time_left(),
        show_progress_bar=show_progress,
        gc_after_trial=False,
        callbacks=run.callbacks,
        catch=(TrialOutOfMemory,),
    )


def run_baseline(run: PreparedRun) -> Baseline | None:
    """The study's gradient-boosting baseline (``dnntune.baseline``): the one it stored, or,
    with ``baseline`` on, computed now on the trials' folds and stored. A baseline that
    cannot be computed is a note, and the study goes on."""
    stored = Baseline.from_dict(run.study.user_attrs.get(BASELINE_ATTR))
    if stored is None and run.config.search.baseline:
        seed = run.config.seed
        run.note(
            f"fitting the HistGradientBoosting baseline on the study's {run.objective.n_folds} "
            "folds (its scores come with the run's)"
        )
        try:
            stored = gbdt_baseline(run.dataset, run.metric, run.objective.n_folds, seed=seed)
        except (ValueError, TypeError, MemoryError) as exc:
            run.note(f"the HistGradientBoosting baseline failed ({first_line(exc)}); no baseline")
            return None
        run.study.set_user_attr(BASELINE_ATTR, stored.to_dict())
    run.baseline = stored
    return stored


def start_or_resume(run: PreparedRun) -> int | None:
    """Say how the sampler treats the space, and that a study resumes, or queue its
    first trials (as many as the budget runs); return the trials missing (None: no count,
    run until the timeout)."""
    if run.sampler_note:
        run.note(run.sampler_note)
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
) -> TuneResult:
    """Run (or resume) the study ``config`` describes in this process; write the run folder.
    ``dataset`` and ``space`` are :func:`prepare_run`'s."""
    run = prepare_run(config, on_note=on_note, dataset=dataset, space=space)
    run_baseline(run)
    remaining = start_or_resume(run)
    try:
        run_trials(run, remaining, show_progress=show_progress)
    finally:
        run.write_outputs()
    run.deliver()
    return run.result()
