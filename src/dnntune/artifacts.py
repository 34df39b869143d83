"""Save and load models as safetensors weights plus a JSON manifest; atomic file writes.

Nothing here pickles or unpickles: weights are safetensors, everything else is JSON or CSV.

A model folder holds ``manifest.json`` and the weights it names (``trial<N>_fold<K>.safetensors``)
with their SHA-256. A better trial writes its weights under new names first, then replaces the
manifest in one ``os.replace``, then deletes the weights no manifest names: a process killed at
any point leaves a manifest whose weights are all present.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch
from optuna.trial import TrialState
from safetensors.torch import load_file, save_file
from torch import nn

from dnntune._names import first_line
from dnntune.baseline import BASELINE_ATTR
from dnntune.config import Task, TuneConfig
from dnntune.data import Dataset, Preprocessor, Scale
from dnntune.engine import METRICS, Metric, predictions_from_outputs
from dnntune.exceptions import DataError
from dnntune.model import make_model
from dnntune.objective import MODEL_PARAMS, BestModel, model_kwargs
from dnntune.space import PARAMETERS

__all__ = [
    "FORMAT_VERSION",
    "LoadedModel",
    "atomic_path",
    "load_model",
    "prediction_frame",
    "read_manifest",
    "read_summary",
    "run_info",
    "save_model",
    "sha256",
    "write_json",
    "write_run_outputs",
]

# The model folder's format; a folder in another format is refused (see load_model).
FORMAT_VERSION = 4
MANIFEST = "manifest.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".joblib")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def prediction_frame(
    predictions: np.ndarray, task: Task, classes: Sequence[Any], targets: Sequence[str]
) -> pd.DataFrame:
    """Probabilities and labels (classification) or values (regression) as named columns."""
    if task is Task.REGRESSION:
        if predictions.ndim == 2:  # several targets
            return pd.DataFrame(
                {f"prediction_{t}": predictions[:, j] for j, t in enumerate(targets)}
            )
        return pd.DataFrame({"prediction": predictions})
    if task is Task.BINARY:
        proba = np.stack([1.0 - predictions, predictions], axis=1)
    else:
        proba = predictions
    if task is Task.MULTILABEL:
        out = {f"proba_{t}": proba[:, j] for j, t in enumerate(targets)}
        out.update({str(t): (proba[:, j] >= 0.5).astype(int) for j, t in enumerate(targets)})
        return pd.DataFrame(out)
    out = {f"proba_{c}": proba[:, j] for j, c in enumerate(classes)}
    labels = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    frame = pd.DataFrame(out)
    frame["prediction"] = labels
    return frame


@dataclass
class OutOfFold:
    """A trial's out-of-fold predictions: dataset rows (sorted), predictions (probabilities or
    values, in the target's units) and the true targets of those rows."""

    rows: np.ndarray
    predictions: np.ndarray
    truth: np.ndarray


def out_of_fold(best: BestModel, task: Task) -> OutOfFold | None:
    """The out-of-fold predictions of a trial's fold models (None when it ran no fold)."""
    parts, rows, truth = [], [], []
    for fold, outputs, valid in zip(best.folds, best.oof_outputs, best.valid_rows, strict=True):
        t = fold.tensors
        parts.append(predictions_from_outputs(outputs, task, y_shift=t.y_shift, y_scale=t.y_scale))
        rows.append(valid)
        truth.append(t.y_valid_eval)
    if not parts:
        return None
    all_rows = np.concatenate(rows)
    order = np.argsort(all_rows, kind="stable")
    return OutOfFold(all_rows[order], np.concatenate(parts)[order], np.concatenate(truth)[order])


def oof_frame(
    oof: OutOfFold, folds: np.ndarray, info: dict[str, Any], row_ids: np.ndarray | None
) -> pd.DataFrame:
    """Out-of-fold predictions as the model folder's CSV: file row, fold, prediction columns."""
    frame = prediction_frame(oof.predictions, Task(info["task"]), info["classes"], info["target"])
    frame.insert(0, "fold", folds[oof.rows])
    frame.insert(0, "row", row_ids[oof.rows] if row_ids is not None else oof.rows)
    return frame


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_weights(directory: Path, name: str, state: dict[str, torch.Tensor]) -> dict[str, str]:
    """A network's weights as a safetensors file in ``directory``; its manifest entry part."""
    with atomic_path(directory / name) as tmp:
        save_file({k: v.detach().cpu().clone().contiguous() for k, v in state.items()}, str(tmp))
    return {"weights": name, "sha256": sha256(directory / name)}


def replace_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest``, then delete the files of the folder it does not name (an earlier
    model's, or the temporary files of a process killed while it wrote). Call with the
    folder's lock held."""
    write_json(directory / MANIFEST, manifest)
    entries = [*manifest["folds"], *(manifest.get("refit") or [])]
    keep = {MANIFEST, manifest["oof_predictions"], ".lock", *(e["weights"] for e in entries)}
    for path in directory.iterdir():
        if path.is_file() and path.name not in keep:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on the model folder, held across processes (POSIX ``flock``)."""
    import fcntl

    with (directory / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save_model(
    best: BestModel,
    directory: Path,
    info: dict[str, Any],
    *,
    only_if_better: Callable[[float, float], bool] | None = None,
) -> Path:
    """Write the best trial's fold models, out-of-fold predictions and manifest to ``directory``.

    ``info`` adds task, metric, columns, classes, data and versions to the manifest; its
    ``row_ids`` (not stored) maps dataset rows to file rows for ``oof.csv``. With
    ``only_if_better(new, saved)``, a model already saved (by another worker, or an earlier
    session) is replaced only when the new value is better; the check and the swap happen under
    a lock on the folder.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with locked(directory):
        if only_if_better is not None and (directory / MANIFEST).is_file():
            saved = json.loads((directory / MANIFEST).read_text(encoding="utf-8")).get("value")
            if saved is not None and not only_if_better(best.value, float(saved)):
                return directory
        return _save_model(best, directory, info)


def _save_model(best: BestModel, directory: Path, info: dict[str, Any]) -> Path:
    tag = f"trial{best.trial_number}"
    folds: list[dict[str, Any]] = []
    for fold, state, score, epoch in zip(
        best.folds, best.states, best.fold_scores, best.best_epochs, strict=True
    ):
        folds.append(
            {
                "fold": fold.index,
                **write_weights(directory, f"{tag}_fold{fold.index}.safetensors", state),
                "score": score,
                "best_epoch": epoch,
                "y_shift": fold.tensors.y_shift,
                "y_scale": fold.tensors.y_scale,
                "preprocessing": fold.preprocessor.to_dict(),
            }
        )
    extra = {k: v for k, v in info.items() if k not in ("row_ids", "fold_ids")}
    task = Task(info["task"])
    oof = out_of_fold(best, task)
    oof_name = f"{tag}_oof.csv"
    oof_value = None
    if oof is None:
        write_csv(directory / oof_name, pd.DataFrame())
    else:
        oof_value = float(METRICS[info["metric"]](oof.truth, oof.predictions, task))
        frame = oof_frame(oof, info["fold_ids"], info, info.get("row_ids"))
        write_csv(directory / oof_name, frame)
    manifest = {
        "format": "dnntune-model",
        "format_version": FORMAT_VERSION,
        "created_at": now_iso(),
        "trial_number": best.trial_number,
        "value": best.value,
        "oof_value": oof_value,
        "oof_predictions": oof_name,
        "params": best.params,
        "architecture": {"d_out": best.d_out, **model_kwargs(best.params)},
        **extra,
        "folds": folds,
    }
    replace_manifest(directory, manifest)
    return directory


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class LoadedModel:
    """A model folder's networks with their preprocessing and target scales. ``weights``: each
    network's share of the prediction (empty: equal shares), from the ensemble's member
    weights split over each member's folds."""

    manifest: dict[str, Any]
    preprocessors: list[Preprocessor]
    models: list[nn.Module]
    y_shifts: list[Scale]
    y_scales: list[Scale]
    weights: list[float] = field(default_factory=list)

    def shares(self) -> np.ndarray:
        n = len(self.models)
        return np.asarray(self.weights) if self.weights else np.full(n, 1.0 / n)


def _refuse_pickle(path: Path) -> None:
    raise DataError(
        f"{str(path)!r} is a pickle-based file ({path.suffix}); dnntune never unpickles a model "
        "because loading a pickle runs code from it; pass a run folder written by dnntune tune"
    )


def model_dir(path: str | Path) -> Path:
    """The model folder for a run folder, a model folder or its manifest; refuses pickles."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        _refuse_pickle(path)
    if not path.exists():
        raise DataError(f"model {str(path)!r} does not exist; pass a run folder of dnntune tune")
    if path.is_file() and path.name == MANIFEST:
        path = path.parent
    if (path / "model" / MANIFEST).is_file():
        return path / "model"
    if (path / MANIFEST).is_file():
        return path
    pickles = (
        [p for p in sorted(path.iterdir()) if p.suffix.lower() in PICKLE_SUFFIXES]
        if path.is_dir()
        else []
    )
    if pickles:
        _refuse_pickle(pickles[0])
    raise DataError(
        f"no {MANIFEST} in {str(path)!r} or its model/ folder; pass a run folder of dnntune tune"
    )


def _read_json(path: Path, what: str, fix: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{str(path)!r} is not {what} ({first_line(exc)}); {fix}") from None


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """A run folder's summary.json, refused in one line when it is missing or not JSON."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise DataError(f"no summary.json in {str(run_dir)!r}; pass a run folder of dnntune tune")
    summary = _read_json(path, "readable JSON", "run dnntune tune again to rewrite it")
    if not isinstance(summary, dict) or not isinstance(summary.get("study"), str):
        raise DataError(f"{str(path)!r} is not the summary of a dnntune run (no study name)")
    return summary


def saved_trial(directory: Path) -> tuple[int, float] | None:
    """The (trial number, value) of the model saved in ``directory``; None when there is none
    or it cannot be read."""
    try:
        manifest = read_manifest(directory)
        return int(manifest["trial_number"]), float(manifest["value"])
    except (DataError, OSError, KeyError, TypeError, ValueError):
        return None


def read_manifest(directory: Path) -> dict[str, Any]:
    """A model folder's manifest, refused in one line when it is not JSON, not a dnntune
    manifest, or of another format."""
    path = directory / MANIFEST
    manifest = _read_json(
        path, "a readable JSON manifest", "restore the model folder or tune again"
    )
    if not isinstance(manifest, dict) or manifest.get("format") != "dnntune-model":
        raise DataError(f"{str(path)!r} is not a dnntune model manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"the model in {str(directory)!r} has format {manifest.get('format_version')}; this "
            f"dnntune reads format {FORMAT_VERSION}; tune again to get a model it can load"
        )
    return manifest


def _weights_path(directory: Path, name: Any) -> Path:
    """The weight file a manifest names: a safetensors file inside the model folder."""
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise DataError(
            f"the manifest in {str(directory)!r} names weights {name!r} outside its folder; a "
            "model folder only names files in itself"
        )
    path = directory / name
    if path.suffix != ".safetensors":
        _refuse_pickle(path)
    return path


def _architecture(manifest: dict[str, Any], directory: Path) -> dict[str, Any]:
    """The manifest's network shape, checked against the parameters' own rules."""
    arch = manifest.get("architecture")
    wanted = {"d_out", *MODEL_PARAMS}
    if not isinstance(arch, dict) or set(arch) != wanted:
        raise DataError(
            f"the manifest in {str(directory)!r} has no valid architecture (it needs "
            f"{', '.join(sorted(wanted))}); restore the model folder or tune again"
        )
    problems = [
        f"{k} {PARAMETERS[k].check(arch[k])}" for k in MODEL_PARAMS if PARAMETERS[k].check(arch[k])
    ]
    d_out = arch["d_out"]
    if isinstance(d_out, bool) or not isinstance(d_out, int) or d_out < 1:
        problems.append(f"d_out must be a positive integer, but got {d_out!r}")
    if problems:
        raise DataError(
            f"the manifest in {str(directory)!r} has an invalid architecture: {'; '.join(problems)}"
        )
    return arch


def load_model(path: str | Path, *, refit: bool = False) -> LoadedModel:
    """Load the fold models (or the refit models) of a run: format, file names, architectures
    and checksums checked; nothing is unpickled. An ensemble's networks come with their
    weights."""
    directory = model_dir(path)
    manifest = read_manifest(directory)
    if refit and not manifest.get("refit"):
        raise DataError(f"{str(directory)!r} has no refit model; run dnntune refit first")
    try:
        members = _members(manifest, directory)
        entries = list(manifest["refit"] if refit else manifest["folds"])
        trials = [_trial(entry.get("trial", manifest.get("trial_number"))) for entry in entries]
        loaded = LoadedModel(manifest, [], [], [], [])
        for entry, trial in zip(entries, trials, strict=True):
            arch, weight = members[trial]
            _load_entry(directory, entry, arch, loaded)
            loaded.weights.append(weight / trials.count(trial))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        what = f"lacks {exc}" if isinstance(exc, KeyError) else f"is damaged ({exc})"
        raise DataError(
            f"the manifest in {str(directory)!r} {what}; restore the model folder or tune again"
        ) from None
    if not math.isclose(sum(loaded.weights), 1.0, rel_tol=1e-6):
        raise DataError(
            f"the manifest in {str(directory)!r} weighs its networks {sum(loaded.weights):.6g} "
            "in all, not 1; restore the model folder or tune again"
        )
    return loaded


def _trial(number: Any) -> int | None:
    """A manifest's trial number; None for an estimator's network, which no trial made."""
    return None if number is None else int(number)


def _members(
    manifest: dict[str, Any], directory: Path
) -> dict[int | None, tuple[dict[str, Any], float]]:
    """Each member trial's (checked architecture, weight), shared equally by its networks: the
    ensemble's members, or the one trial (or estimator) of a single model."""
    ensemble = manifest.get("ensemble")
    if not ensemble:
        return {_trial(manifest.get("trial_number")): (_architecture(manifest, directory), 1.0)}
    return {
        int(m["trial"]): (_architecture(m, directory), float(m["weight"]))
        for m in ensemble["members"]
    }


def _load_entry(
    directory: Path, entry: dict[str, Any], arch: dict[str, Any], loaded: LoadedModel
) -> None:
    weights = _weights_path(directory, entry["weights"])
    if not weights.is_file() or sha256(weights) != entry["sha256"]:
        raise DataError(
            f"weights {str(weights)!r} are missing or do not match the manifest's checksum"
        )
    pre = Preprocessor.from_dict(entry["preprocessing"])
    model = make_model(layout=pre.layout(), **arch)
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error for a file of another kind
        reason = first_line(exc)
        raise DataError(
            f"weights {str(weights)!r} are not a safetensors file ({reason}); dnntune loads "
            "nothing else"
        ) from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # shapes that do not match the architecture
        reason = first_line(exc)
        raise DataError(
            f"weights {str(weights)!r} do not fit the manifest's network: {reason}"
        ) from None
    loaded.preprocessors.append(pre)
    loaded.models.append(model.eval())
    loaded.y_shifts.append(_scale(entry["y_shift"], arch["d_out"]))
    loaded.y_scales.append(_scale(entry["y_scale"], arch["d_out"]))


def _scale(value: Any, d_out: int) -> Scale:
    """A fold's target shift or scale: a number, or one per output of a network with several
    (regression on several targets)."""
    if isinstance(value, list):
        if len(value) != d_out:
            raise ValueError(f"{len(value)} target scales for a network of {d_out} outputs")
        return [float(v) for v in value]
    return float(value)


def torch_versions() -> dict[str, str]:
    import platform

    from dnntune import __version__

    return {
        "dnntune": __version__,
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "python": platform.python_version(),
    }


def run_info(config: TuneConfig, dataset: Dataset, metric: Metric) -> dict[str, Any]:
    """What a saved model records of its run: task, metric, columns, data, versions, settings
    (``row_ids`` and ``fold_ids``, not stored, map dataset rows to file rows and folds for the
    out-of-fold file)."""
    source = Path(dataset.source)
    return {
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
            "sha256": sha256(source) if source.is_file() else None,
        },
        "versions": torch_versions(),
        "config": config.to_dict(),
        "row_ids": dataset.row_ids,
        "fold_ids": dataset.folds,
    }


def _epochs(trials: list[optuna.trial.FrozenTrial]) -> dict[str, Any]:
    """Epochs saved by early stopping and pruning: of the trials that ended that way, not of
    failed ones (out of memory, interrupted), which record no epochs run."""
    ended = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]

    def count(t: optuna.trial.FrozenTrial, key: str) -> int:
        return int(t.user_attrs.get(key, 0))

    run = sum(count(t, "epochs_run") for t in ended)
    budget = sum(count(t, "epochs_budget") for t in ended)
    pruned = sum(
        count(t, "epochs_budget") - count(t, "epochs_run")
        for t in ended
        if t.state is TrialState.PRUNED
    )
    return {
        "run": run,
        "budget": budget,
        "saved_share": round(1 - run / budget, 4) if budget else None,
        "saved_by_pruning_share": round(pruned / budget, 4) if budget else None,
    }


def write_run_outputs(
    study: optuna.Study, config: TuneConfig, dataset: Dataset, metric: Metric, wall: float
) -> None:
    """summary.json, best_params.json (when a trial completed) and trials.csv of a run."""
    run_dir = config.run_dir
    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    complete = [
        t
        for t in trials
        if t.state is TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
    ]
    best = study.best_trial if complete else None
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
        "epochs": _epochs(trials),
        "auto_stop": study.user_attrs.get("auto_stop"),
        "baseline": study.user_attrs.get(BASELINE_ATTR),
        "data": {"source": dataset.source, "rows": dataset.n_rows, "folds": dataset.n_folds},
        "sampler": config.search.sampler.value,
        "pruner": config.search.pruner.value,
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
