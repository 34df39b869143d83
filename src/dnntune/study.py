"""Run a tuning study: data, space, sampler, pruner and storage put together; outputs written."""

from __future__ import annotations

import hashlib
import math
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from torch import nn

from dnntune._logs import quiet_expected_failures
from dnntune.artifacts import atomic_path, save_model, torch_versions, write_json
from dnntune.config import SamplerName, TuneConfig, stored_identity
from dnntune.data import Dataset, dataset_from_config
from dnntune.engine import Metric, resolve_device, resolve_metric
from dnntune.exceptions import StorageError, TrialOutOfMemory
from dnntune.objective import FOLD_CACHE_SHARE, BestModel, Objective
from dnntune.pruners import make_pruner
from dnntune.samplers import make_sampler, silence_experimental_warnings
from dnntune.space import SearchSpace, default_space, load_space, stored_space
from dnntune.storage import default_storage_url, open_storage, redact

__all__ = ["TuneResult", "tune"]

CONFIG_ATTR = "dnntune_config"
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@dataclass
class TuneResult:
    """What a study produced. ``model`` is the best trial's first-fold model (None when the best
    trial ran in an earlier session; its saved copy is in ``run_dir / 'model'``)."""

    study: optuna.Study
    metric: Metric
    run_dir: Path
    best: BestModel | None
    notes: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0
    dataset: Dataset | None = field(default=None, repr=False)

    @property
    def best_trial(self) -> optuna.trial.FrozenTrial:
        return self.study.best_trial

    @property
    def best_params(self) -> dict[str, Any]:
        return self.study.best_params

    @property
    def best_value(self) -> float:
        return self.study.best_value

    @property
    def model(self) -> nn.Module | None:
        if self.best is not None:
            return self.best.build(0)
        saved = self.run_dir / "model" / "manifest.json"
        if saved.is_file():  # the best trial ran in another process or an earlier session
            from dnntune.artifacts import load_model

            return load_model(self.run_dir).models[0]
        return None

    @property
    def models(self) -> list[nn.Module]:
        return [self.best.build(i) for i in range(len(self.best.states))] if self.best else []


def _file_digest(source: str) -> str | None:
    path = Path(source)
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_study(
    config: TuneConfig,
    metric: Metric,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    storage_url: str,
    space: SearchSpace,
    *,
    heartbeat: bool = False,
) -> optuna.Study:
    storage = open_storage(storage_url, heartbeat=heartbeat)
    name = config.study_name
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            sampler=sampler,
            pruner=pruner,
            direction=metric.optuna_direction,
            load_if_exists=True,
        )
    except ValueError as exc:
        raise StorageError(f"cannot use study {name!r} in {redact(storage_url)!r}: {exc}") from None
    if study.direction.name.lower() != metric.direction:
        raise StorageError(
            f"study {name!r} in {redact(storage_url)!r} was created to "
            f"{study.direction.name.lower()}, but metric {metric.name.value!r} must be "
            f"{metric.direction}d; use another --study name"
        )
    stored = study.user_attrs.get(CONFIG_ATTR)
    wanted = {**config.identity(), "metric": metric.name.value, "space": space.to_dict()}
    if stored is not None:
        # The release that added lr_schedule also added bin_encoding to the stored settings.
        had_schedule = "bin_encoding" in stored
        stored = stored_identity(stored)
        stored["space"] = stored_space(stored.get("space") or {}, had_schedule=had_schedule)
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, wanted)
        study.set_user_attr("config", config.to_dict())
    elif {k: v for k, v in stored.items() if not heartbeat or k != "data"} != {
        k: v for k, v in wanted.items() if not heartbeat or k != "data"
    }:
        # A worker may read the data from another path (another machine's mount).
        diff = [
            _difference(k, stored.get(k), wanted[k])
            for k in sorted(wanted)
            if stored.get(k) != wanted[k] and not (heartbeat and k == "data")
        ]
        raise StorageError(
            f"study {name!r} in {redact(storage_url)!r} was run with different settings "
            f"({'; '.join(diff)}); rerun with the same settings to resume, or pass a new --study"
        )
    return study


def _difference(key: str, stored: Any, wanted: Any) -> str:
    """One setting that differs, for the refusal to resume: values, or the space's parameters."""
    if isinstance(wanted, int | float | str | list | None):  # lists: the column settings
        return f"{key}: {stored!r}, now {wanted!r}"
    if key == "space" and isinstance(stored, dict):
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
    return key


class AutoStop:
    """Stop the study when further improvement is unlikely to exceed the CV noise.

    After ``min_trials`` completed trials, Optuna's regret bound (a Gaussian-process estimate of
    how much better the best value can still get) is compared with the cross-validation error
    of the best trial (the spread of its fold scores); when the first is smaller, the study
    stops and the reason is recorded (Optuna's Terminator with a CV error evaluator).
    """

    def __init__(self, note: Callable[[str], None], min_trials: int = 20) -> None:
        from optuna.terminator import CrossValidationErrorEvaluator, RegretBoundEvaluator

        with warnings.catch_warnings():  # experimental, and deprecated since Optuna 4.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", FutureWarning)
            self.improvement = RegretBoundEvaluator()
            self.error = CrossValidationErrorEvaluator()
        self.min_trials = min_trials
        self.note = note
        self.reason: str | None = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if len(trials) < self.min_trials or self.reason is not None:
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                room = self.improvement.evaluate(trials, study.direction)
                noise = self.error.evaluate(trials, study.direction)
        except (ValueError, RuntimeError, KeyError):  # not enough information yet
            return
        if room < noise:
            self.reason = (
                f"auto-stop after {len(trials)} completed trials: the estimated room for "
                f"improvement ({room:.4g}) fell below the cross-validation noise ({noise:.4g})"
            )
            self.note(self.reason)
            study.set_user_attr("auto_stop", self.reason)
            study.stop()


def tune(
    config: TuneConfig | None = None,
    *,
    show_progress: bool = False,
    on_note: Callable[[str], None] | None = None,
    optimize: bool = True,
    worker_index: int | None = None,
    worker_trials: int | None = None,
    take_ticket: Callable[[], bool] | None = None,
    memory_share: float = FOLD_CACHE_SHARE,
    **overrides: Any,
) -> TuneResult:
    """Run (or resume) the study described by ``config`` in this process; write the run folder.

    Keyword ``overrides`` build or amend the configuration: ``tune(data="x.csv", target=("y",))``.
    ``optimize=False`` only checks the input and creates (or loads) the study. With
    ``worker_index`` this process is one of several workers of a study: its sampler seed is
    derived from the index, it runs ``worker_trials`` trials, beats a heartbeat on RDB storages,
    and leaves the warm start and the run folder's summary to the coordinator. ``take_ticket``
    (workers of one coordinator) is asked before each trial; the worker stops when it says no.
    ``memory_share``: of the memory free, what the folds kept prepared between trials may take
    (see :meth:`Objective.fold`; workers sharing a machine split it).
    """
    t0 = time.monotonic()
    if config is None:
        config = TuneConfig(**overrides)
    elif overrides:
        config = TuneConfig(**{**config.__dict__, **overrides})
    notes: list[str] = []

    def note(msg: str) -> None:
        notes.append(msg)
        if on_note is not None:
            on_note(msg)

    # Everything that can be wrong with the input is checked before anything is written.
    dataset = dataset_from_config(config)
    for msg in dataset.notes:
        note(msg)
    space = load_space(config.space) if config.space else default_space()
    metric = resolve_metric(config.metric, dataset.task)
    silence_experimental_warnings()
    sampler_seed = config.seed if worker_index is None else config.seed + 7919 * (worker_index + 1)
    choice = make_sampler(
        config.sampler, space=space, seed=sampler_seed, grid_points=config.grid_points
    )
    if choice.note and worker_index is None:
        note(choice.note)
    deadline = t0 + config.timeout if config.timeout else None
    objective = Objective(
        dataset,
        space,
        metric,
        device=resolve_device(config.device),
        patience=config.patience,
        max_folds=config.max_folds,
        seed=config.seed,
        deadline=deadline,
        report_cv_scores=config.auto_stop,
        numeric_bins=config.numeric_bins,
        bin_encoding=config.bin_encoding,
        copy_encoding=config.copies,
        fold_cache_share=memory_share,
        on_note=note,
    )
    pruner = make_pruner(
        config.pruner, epoch_slot=objective.epoch_slot, max_steps=objective.max_steps
    )

    run_dir = config.run_dir
    created = not run_dir.exists()
    storage_url = config.storage or default_storage_url(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        study = _load_study(
            config,
            metric,
            choice.sampler,
            pruner,
            storage_url,
            space,
            heartbeat=worker_index is not None,
        )
    except BaseException:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise

    done = [t for t in study.get_trials(deepcopy=False) if t.state in FINISHED]
    if worker_index is not None:
        if any(t.state is optuna.trial.TrialState.COMPLETE for t in done):
            objective.best_value = study.best_value
    elif done:
        note(f"resuming study {study.study_name!r}: {len(done)} finished trials")
        completed = [t for t in done if t.state is optuna.trial.TrialState.COMPLETE]
        if completed:
            objective.best_value = study.best_value
    elif config.warm_start and config.sampler is not SamplerName.GRID:
        start = space.warm_start()
        if start is not None:
            study.enqueue_trial(start, skip_if_exists=True)
    n_trials = config.n_trials
    remaining = None if n_trials is None else max(n_trials - len(done), 0)
    if worker_index is not None:
        remaining = worker_trials

    info = {
        "task": dataset.task.value,
        "metric": metric.name.value,
        "direction": metric.direction,
        "columns": dataset.plan.features,
        "ignored_columns": dataset.plan.dropped,
        "target": list(dataset.target.columns),
        "classes": dataset.target.classes,
        "data": {
            "source": dataset.source,
            "rows": dataset.n_rows,
            "sha256": _file_digest(dataset.source),
        },
        "versions": torch_versions(),
        "config": config.to_dict(),
        "row_ids": dataset.row_ids,
    }

    def keep_best(best: BestModel) -> None:
        save_model(best, run_dir / "model", info, only_if_better=metric.better)

    objective.on_new_best = keep_best

    if not optimize:
        wall = time.monotonic() - t0
        _write_outputs(study, config, dataset, metric, run_dir, wall)
        return TuneResult(study, metric, run_dir, None, notes, wall, dataset)
    quiet_expected_failures()
    try:
        callbacks = [AutoStop(note)] if config.auto_stop else []
        if config.auto_stop and objective.n_folds < 2:
            note("--auto-stop needs at least 2 folds per trial (the CV noise); it is off")
            callbacks = []
        if take_ticket is not None:
            # Trials are handed out one at a time, so fast workers take more of them.
            while take_ticket():
                timeout = None if deadline is None else deadline - time.monotonic()
                if timeout is not None and timeout <= 0:
                    break
                study.optimize(
                    objective,
                    n_trials=1,
                    timeout=timeout,
                    gc_after_trial=False,
                    callbacks=callbacks,
                    catch=(TrialOutOfMemory,),
                )
        elif remaining != 0:
            timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            study.optimize(
                objective,
                n_trials=remaining,
                timeout=timeout,
                show_progress_bar=show_progress,
                gc_after_trial=False,
                callbacks=callbacks,
                catch=(TrialOutOfMemory,),
            )
    finally:
        wall = time.monotonic() - t0
        if worker_index is None:
            _write_outputs(study, config, dataset, metric, run_dir, wall)
    return TuneResult(study, metric, run_dir, objective.best, notes, wall, dataset)


def _write_outputs(
    study: optuna.Study,
    config: TuneConfig,
    dataset: Dataset,
    metric: Metric,
    run_dir: Path,
    wall: float,
) -> None:
    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    has_best = any(
        t.state is optuna.trial.TrialState.COMPLETE
        and t.value is not None
        and math.isfinite(t.value)
        for t in trials
    )
    best = study.best_trial if has_best else None
    # Epochs saved by early stopping and pruning: of the trials that ended that way, not of
    # failed ones (out of memory, interrupted), which record no epochs run.
    ended = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    run = sum(int(t.user_attrs.get("epochs_run", 0)) for t in ended)
    budget = sum(int(t.user_attrs.get("epochs_budget", 0)) for t in ended)
    pruned_saved = sum(
        int(t.user_attrs.get("epochs_budget", 0)) - int(t.user_attrs.get("epochs_run", 0))
        for t in ended
        if t.state is TrialState.PRUNED
    )
    epochs = {
        "run": run,
        "budget": budget,
        "saved_share": round(1 - run / budget, 4) if budget else None,
        "saved_by_pruning_share": round(pruned_saved / budget, 4) if budget else None,
    }
    summary = {
        "study": study.study_name,
        "metric": metric.name.value,
        "direction": metric.direction,
        "task": dataset.task.value,
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "best_params": best.params if best else None,
        "trials": counts,
        "wall_time_s": round(wall, 2),
        "epochs": epochs,
        "auto_stop": study.user_attrs.get("auto_stop"),
        "data": {"source": dataset.source, "rows": dataset.n_rows, "folds": dataset.n_folds},
        "sampler": config.sampler.value,
        "pruner": config.pruner.value,
        "config": config.to_dict(),
    }
    write_json(run_dir / "summary.json", summary)
    if best:
        write_json(run_dir / "best_params.json", best.params)
    frame = study.trials_dataframe()
    # The per-epoch timeline is long and lives in the study; the table keeps one row per trial.
    frame = frame.drop(columns=["user_attrs_report_seconds"], errors="ignore")
    with atomic_path(run_dir / "trials.csv") as tmp:
        frame.to_csv(tmp, index=False)
