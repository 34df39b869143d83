"""A checked input and its open study (:class:`PreparedRun`): its outputs, the delivered
model, and how the candidates score."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from dnntune._names import setting_name
from dnntune.artifacts import (
    RunScores,
    Score,
    read_manifest,
    read_summary,
    record_in_summary,
    write_run_outputs,
)
from dnntune.baseline import Baseline
from dnntune.config import TuneConfig
from dnntune.data import Dataset
from dnntune.engine import Metric
from dnntune.ensemble import POOL, Pool, Selection, ensemble_run
from dnntune.exceptions import (
    DataError,
    NoModelError,
)
from dnntune.objective import SIZED_ATTR, Objective
from dnntune.space import SearchSpace
from dnntune.study._probe import probe_trial
from dnntune.study._result import Notes, TuneResult
from dnntune.tracking import Tracker

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _best_value(study: optuna.Study) -> float | None:
    """The study's best value so far (None before a trial completed)."""
    if any(t.state is TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return study.best_value
    return None


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
    tracker: Tracker | None = None  # the study's MLflow run (also among the callbacks)
    baseline: Baseline | None = None
    ensemble: Selection | None = None
    scores: RunScores | None = None
    finished_setup: float = 0.0  # when the first trial could start (time.monotonic())
    first_trial: int = 0  # the number of this run's first trial (earlier ones: earlier runs)

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
        """Select the ensemble of the pooled trials and deliver it when it passes the rule
        (``dnntune.ensemble``: no worse than the best trial, better on one score); with the
        ensemble off, put back the best trial alone where an earlier run delivered one. Then
        record how the delivered model, the best trial and the baseline score (``scores`` in
        summary.json)."""
        self._select()
        self.scores = self._scores()
        if self.scores is not None:
            record_in_summary(self.config.run_dir, "scores", self.scores.to_dict())
        if self.tracker is not None:
            run = {"experiment_id": self.tracker.experiment_id, "run_id": self.tracker.run_id}
            record_in_summary(self.config.run_dir, "mlflow", run)
            self.tracker.finish(self.config.run_dir, read_summary(self.config.run_dir))

    def check_delivered(self) -> None:
        """Within a time limit, a model is delivered whenever a first epoch could train: a
        completed trial's, or the folds the deadline let a first trial finish (said in a
        note). When the limit ran out before any epoch finished, one line says so. A first
        trial sized to fit the limit is said in a note, whichever process (``--jobs``) ran it."""
        timeout = self.config.search.timeout
        for number, sized in self._sized_trials():
            self.note(
                f"trial {number} trained at most {sized['epochs']:g} of {sized['of']:g} epochs "
                f"per fold to finish within {setting_name('timeout')} {timeout:g} s (an epoch "
                f"took {sized['seconds_per_epoch']:.2f} s); a longer limit trains it fully"
            )
        if self.deadline is None or _best_value(self.study) is not None:
            return
        manifest = self.config.run_dir / "model" / "manifest.json"
        if manifest.is_file():
            saved = read_manifest(manifest.parent)
            if saved.cut_by_deadline:
                n, trial = len(saved.folds), saved.members[0].trial
                self.note(
                    f"no trial completed within {setting_name('timeout')} {timeout:g} s: the "
                    f"model delivered is trial {trial}'s {n} of {self.objective.n_folds} folds, "
                    f"cut by the deadline{self._trial_time()}"
                )
            return
        trials = self.study.get_trials(deepcopy=False)
        if any(t.user_attrs.get("epochs_run") for t in trials):
            return  # epochs ran, and every trial was pruned or failed: not the time limit
        spent = self.finished_setup - self.started
        try:
            estimate = probe_trial(self.objective)
        except (ValueError, RuntimeError):  # the probe only adds a figure to the line
            estimate = None
        fix = f"a first epoch needs more: raise {setting_name('timeout')}"
        if estimate is not None and math.isfinite(estimate.seconds):
            total = spent + estimate.seconds
            fix = f"{estimate.describe()}: raise {setting_name('timeout')} to {total:.0f} s or more"
        raise NoModelError(
            f"{setting_name('timeout')} {timeout:g} s ran out before a first epoch finished "
            f"(reading and preparing the data and the baseline took {spent:.1f} s); {fix}"
        )

    def _sized_trials(self) -> list[tuple[int, dict[str, float]]]:
        """This run's completed trials that were sized to the time limit, with their sizing."""
        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return [
            (t.number, t.user_attrs[SIZED_ATTR])
            for t in complete
            if t.number >= self.first_trial and SIZED_ATTR in t.user_attrs
        ]

    def _trial_time(self) -> str:
        """How long one full trial of the cut one would take, from its epochs' times."""
        for trial in reversed(self.study.get_trials(deepcopy=False)):
            timeline = trial.user_attrs.get("report_seconds") or []
            epochs = trial.user_attrs.get("epochs_run", 0)
            if trial.user_attrs.get("stop_reason") == "timeout" and timeline and epochs:
                per_epoch = timeline[-1][1] / epochs
                full = per_epoch * int(trial.user_attrs.get("epochs_budget", epochs))
                return f"; one full trial needs about {full:.0f} s"
        return ""

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
