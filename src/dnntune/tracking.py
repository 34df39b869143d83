"""MLflow tracking of a study: one MLflow run per study, a nested run per trial.

The study's run holds the settings as parameters, the best value as trials finish, the
baseline's and the delivered model's scores, and the model folder (and the ONNX file, once
exported) as artifacts. Each trial's nested run holds its parameters, its value, its fold
scores (one step per fold), its best epochs and its state. The run's ID is kept in the Optuna
study, so a resumed study, every ``--jobs`` worker and every ``dnntune worker`` of a fleet log
into the same run. Everything goes through ``MlflowClient`` with an explicit tracking URI:
nothing is set in MLflow's process-wide state.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import optuna

from dnntune._names import first_line, setting_name
from dnntune._redact import redact
from dnntune.exceptions import ConfigError

__all__ = ["ENV", "RUN_ATTR", "Tracker", "tracking_uri"]

T = TypeVar("T")
ENV = "DNNTUNE_MLFLOW_TRACKING_URI"
RUN_ATTR = "mlflow_run"  # the study's user attribute: {"experiment_id": ..., "run_id": ...}
_BATCH = 900  # MLflow takes at most 1,000 metrics in one log_batch
_STATES = {
    optuna.trial.TrialState.COMPLETE: "FINISHED",
    optuna.trial.TrialState.PRUNED: "KILLED",
    optuna.trial.TrialState.FAIL: "FAILED",
}


def tracking_uri(setting: str | None, *, worker: bool = False) -> str | None:
    """The URI to track to: the setting, else ``DNNTUNE_MLFLOW_TRACKING_URI``. A worker reads
    the setting from the study, where a password is hidden: there the environment comes
    first (the coordinator passes the URI to its workers in it)."""
    env = os.environ.get(ENV) or None
    return (env or setting) if worker else (setting or env)


def _client(uri: str) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError(
            f"{setting_name('mlflow')} needs MLflow's client: pip install 'dnntune[mlflow]'"
        ) from None
    return _attempt(uri, lambda: MlflowClient(tracking_uri=uri))


def _attempt(uri: str, call: Callable[[], T]) -> T:
    """``call()``, with MLflow's errors (a URI it cannot use, a server it cannot reach) as one
    line."""
    try:
        return call()
    except Exception as exc:  # MLflow raises its own exceptions and the transport's
        raise ConfigError(
            f"{setting_name('mlflow')} {redact(uri)!r} cannot be used ({first_line(exc)}); "
            "check the URI, or leave it out to tune without MLflow"
        ) from None


def _ms(when: Any) -> int:
    return int((when.timestamp() if when is not None else time.time()) * 1000)


class Tracker:
    """The MLflow run of one study; called as an Optuna callback after each trial."""

    def __init__(self, client: Any, uri: str, experiment_id: str, run_id: str) -> None:
        self.client = client
        self.uri = uri
        self.experiment_id = experiment_id
        self.run_id = run_id

    @staticmethod
    def connect(uri: str) -> Any:
        """MLflow's client for ``uri``, checked before anything is written: one line for a URI
        MLflow cannot use or a server it cannot reach."""
        client = _client(uri)
        _attempt(uri, lambda: client.search_experiments(max_results=1))
        return client

    @classmethod
    def for_study(
        cls, client: Any, uri: str, study: optuna.Study, settings: dict[str, Any]
    ) -> Tracker:
        """The study's MLflow run: the one its first process made, or a new one (with the
        settings as parameters) in the experiment named after the study."""
        stored = study.user_attrs.get(RUN_ATTR)
        if stored and _usable(client, stored["run_id"]):
            client.update_run(stored["run_id"], status="RUNNING")
            return cls(client, uri, stored["experiment_id"], stored["run_id"])
        experiment_id = _attempt(uri, lambda: _experiment(client, study.study_name))
        run = client.create_run(
            experiment_id,
            run_name=study.study_name,
            tags={"dnntune.study": study.study_name, "mlflow.source.name": "dnntune"},
        )
        tracker = cls(client, uri, experiment_id, run.info.run_id)
        tracker._log(params={k: _param(v) for k, v in settings.items()})
        study.set_user_attr(RUN_ATTR, {"experiment_id": experiment_id, "run_id": tracker.run_id})
        return tracker

    @classmethod
    def of_run(cls, uri: str, run: dict[str, str]) -> Tracker:
        """The tracker of a study's run recorded earlier (its summary's ``mlflow`` entry)."""
        return cls(_client(uri), uri, run["experiment_id"], run["run_id"])

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Log a finished trial as a nested run, and the study's best value so far."""
        attrs = trial.user_attrs
        child = self.client.create_run(
            self.experiment_id,
            run_name=f"trial {trial.number}",
            start_time=_ms(trial.datetime_start),
            tags={
                "mlflow.parentRunId": self.run_id,
                "dnntune.trial": str(trial.number),
                "dnntune.state": trial.state.name.lower(),
                **({"dnntune.stop_reason": attrs["stop_reason"]} if "stop_reason" in attrs else {}),
            },
        )
        metrics: list[tuple[str, float, int]] = []
        if trial.value is not None:
            metrics.append(("value", trial.value, 0))
        metrics += [("fold_score", v, k) for k, v in enumerate(attrs.get("fold_scores", []))]
        metrics += [("best_epoch", v, k) for k, v in enumerate(attrs.get("best_epochs", []))]
        metrics += [("epochs_run", attrs.get("epochs_run", 0), 0)]
        self._log(child.info.run_id, params={k: _param(v) for k, v in trial.params.items()},
                  metrics=metrics)  # fmt: skip
        state = _STATES.get(trial.state, "FAILED")
        self.client.set_terminated(child.info.run_id, state, end_time=_ms(trial.datetime_complete))
        best = _best(study)
        if best is not None:
            self._log(metrics=[("best_value", best, trial.number)])

    def finish(self, run_dir: Path, summary: dict[str, Any]) -> None:
        """Log the run's outcome (trial counts, baseline, the delivered model's scores) and its
        files (the model folder and summary.json); end the run."""
        metrics: list[tuple[str, Any, int]] = []  # (values that are not numbers are left out)
        for state, n in summary.get("trials", {}).items():
            metrics.append((f"trials_{state}", n, 0))
        if summary.get("baseline"):
            metrics.append(("baseline_value", summary["baseline"]["value"], 0))
        for key, score in (summary.get("scores") or {}).items():
            if isinstance(score, dict):  # delivered, best_trial, baseline
                metrics.append((f"{key}_out_of_fold", score.get("out-of-fold"), 0))
        self._log(metrics=metrics)
        model = run_dir / "model"
        for path in sorted(model.iterdir()) if model.is_dir() else []:
            if path.is_file() and not path.name.startswith("."):
                self.client.log_artifact(self.run_id, str(path), "model")
        if (run_dir / "summary.json").is_file():
            self.client.log_artifact(self.run_id, str(run_dir / "summary.json"))
        self.client.set_terminated(self.run_id, "FINISHED")

    def log_file(self, path: Path) -> None:
        """Add a file (an exported model) to the study's run."""
        self.client.log_artifact(self.run_id, str(path))

    def _log(
        self,
        run_id: str | None = None,
        *,
        params: dict[str, str] | None = None,
        metrics: list[tuple[str, Any, int]] | None = None,
    ) -> None:
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        kept = [Metric(k, float(v), now, s) for k, v, s in metrics or [] if _finite(v)]
        pairs = [Param(k, v) for k, v in (params or {}).items()]
        for i in range(0, max(len(kept), len(pairs), 1), _BATCH):
            self.client.log_batch(
                run_id or self.run_id, metrics=kept[i : i + _BATCH], params=pairs[i : i + _BATCH]
            )


def _usable(client: Any, run_id: str) -> bool:
    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except Exception:  # deleted, or another tracking server
        return False


def _experiment(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name))
    except Exception:  # another worker made it meanwhile
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def _best(study: optuna.Study) -> float | None:
    try:
        return float(study.best_value)
    except ValueError:
        return None


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]  # MLflow's limit on a parameter's value
