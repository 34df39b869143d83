"""Ensemble selection over the pool and the delivery of its blend (the rule: module
``dnntune.ensemble``)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open

from dnntune.artifacts import (
    ModelManifest,
    OutOfFold,
    member,
    model_dir,
    oof_frame,
    read_manifest,
    record_in_summary,
    write_json,
    write_model,
)
from dnntune.config import Task
from dnntune.engine import METRICS, Metric, proper_metric
from dnntune.ensemble._pool import CHOSEN, Pool, PoolEntry
from dnntune.exceptions import DataError

__all__ = ["NEAR_CONSTANT", "Selection", "ensemble_run", "near_constant", "passes_rule", "select"]


@dataclass
class Selection:
    """The chosen blend: (trial, weight) members, its out-of-fold score on the study's metric
    and on the task's proper score, the best single trial's (the best by the study's value),
    each round's score on the score it was selected on, and what was delivered."""

    metric: str
    members: list[tuple[int, float]]
    value: float
    best_trial: int
    best_value: float
    proper: str = ""
    proper_value: float = math.nan
    best_proper_value: float = math.nan
    rounds: list[float] = field(default_factory=list)
    excluded: list[int] = field(default_factory=list)
    selected_on: str = ""
    delivered: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": self.value,
            "proper_score": {
                "name": self.proper,
                "value": self.proper_value,
                "best_trial_value": self.best_proper_value,
            },
            "best_trial": {"trial": self.best_trial, "value": self.best_value},
            "members": [{"trial": t, "weight": w} for t, w in self.members],
            "selected_on": self.selected_on,
            "round_values": self.rounds,
            "excluded_near_constant": self.excluded,
            "delivered": self.delivered,
        }

    def line(self) -> str:
        """One line for the terminal: the blend beside the best trial on the study's metric
        and the task's proper score, both out of fold, and which is delivered."""
        parts = ", ".join(f"trial {t} x{w:.2f}" for t, w in self.members[:6])
        if len(self.members) > 6:
            parts += f", ... ({len(self.members)} trials)"
        if self.delivered:
            what = "delivered"
        elif len(self.members) > 1:
            what = "not better on both: the best trial is delivered"
        else:
            what = "the best trial is delivered"
        proper = ""
        if self.proper and self.proper != self.metric:
            proper = f", {self.proper} {self.proper_value:.6f} vs {self.best_proper_value:.6f}"
        return (
            f"Ensemble of {len(self.members)} trial(s) ({parts}), out-of-fold: {self.metric} "
            f"{self.value:.6f} vs {self.best_value:.6f}{proper} for the best trial "
            f"({self.best_trial}) alone; {what}"
        )


# A candidate whose out-of-fold predictions vary less than this within a fold (probabilities;
# for regression, as a share of the target's spread) says nearly nothing about its rows: a
# blend would use it only to shift each fold's predictions, which does not carry to new rows.
NEAR_CONSTANT = 1e-3


def near_constant(
    predictions: np.ndarray, truth: np.ndarray, folds: np.ndarray, task: Task
) -> bool:
    """Whether a candidate's out-of-fold predictions are nearly constant within some fold."""
    values = predictions.reshape(len(predictions), -1)
    spread = 1.0
    if task is Task.REGRESSION:
        spread = float(np.std(truth.reshape(len(truth), -1), axis=0).max()) or 1.0
    for k in np.unique(folds):
        rows = folds == k
        if rows.sum() > 1 and float(values[rows].std(axis=0).max()) < NEAR_CONSTANT * spread:
            return True
    return False


def select(
    predictions: list[np.ndarray],
    truth: np.ndarray,
    metric: Metric,
    task: Task,
    rounds: int,
) -> tuple[list[tuple[int, float]], float, list[float]]:
    """Greedy ensemble selection with replacement: (index, weight) of the chosen predictions
    (candidates in order, ties to the earlier), the blend's score, each round's score."""
    total = np.zeros_like(predictions[0], dtype=np.float64)
    picks: list[int] = []
    scores: list[float] = []
    for r in range(1, rounds + 1):
        best_j, best_score = -1, math.nan
        for j, p in enumerate(predictions):
            score = float(metric(truth, (total + p) / r, task))
            if best_j < 0 or (math.isfinite(score) and metric.better(score, best_score)):
                best_j, best_score = j, score
        total += predictions[best_j]
        picks.append(best_j)
        scores.append(best_score)
    finite = [i for i, s in enumerate(scores) if math.isfinite(s)]
    if not finite:
        return [(0, 1.0)], scores[0], scores
    keep = finite[0]
    for i in finite:
        if metric.better(scores[i], scores[keep]):
            keep = i
    counts = Counter(picks[: keep + 1])
    members = [(j, counts[j] / (keep + 1)) for j in sorted(counts, key=lambda j: (-counts[j], j))]
    return members, scores[keep], scores


def ensemble_run(
    run_dir: str | Path, *, rounds: int = 20, deliver: bool = True, remember: bool = False
) -> Selection:
    """Select the ensemble of a run folder's pooled trials and deliver it (write it as the
    model folder) when ``deliver`` and it is no worse than the best trial alone on both the
    study's metric and the task's proper score (log loss, or RMSE for regression), and better
    on one, out of fold; else deliver the best trial. The selection runs on the proper score
    (then, when that blend does not pass, on the study's metric), so that a blend never buys a
    ranking metric with squeezed probabilities, and never takes a
    candidate whose predictions are nearly constant within a fold. The selection is stored in
    summary.json (``ensemble``) and returned. ``remember``: the user chose ``rounds``
    (``dnntune ensemble --size``); a resumed study selects with them again."""
    run_dir = Path(run_dir)
    directory = model_dir(run_dir)
    manifest = read_manifest(directory)
    metric = METRICS[manifest.metric]
    task = manifest.task
    proper = proper_metric(task)
    pool = Pool(run_dir, 0, metric)
    truth = pool.truth()
    if remember:
        write_json(pool.directory / CHOSEN, {"rounds": rounds})
    y = truth["truth"]
    entries = [e for e in pool.entries() if _covers(e, len(truth["rows"]))]
    if not entries:
        raise DataError(f"the ensemble pool of {str(run_dir)!r} holds no trial; tune first")
    predictions = [e.predictions().astype(np.float64) for e in entries]
    flat = [near_constant(p, y, truth["folds"], task) for p in predictions]
    candidates = [j for j in range(len(entries)) if j == 0 or not flat[j]]
    excluded = [entries[j].trial for j in range(len(entries)) if flat[j] and j != 0]
    # On the proper score first; where it does not pass the rule, on the study's metric.
    selectors = [proper] if proper.name == metric.name else [proper, metric]
    first: Selection | None = None
    for selector in selectors:
        chosen, _, scores = select([predictions[j] for j in candidates], y, selector, task, rounds)
        chosen = [(candidates[j], w) for j, w in chosen]
        blend = np.sum([w * predictions[j] for j, w in chosen], axis=0)
        selection = Selection(
            metric.name.value,
            [(entries[j].trial, w) for j, w in chosen],
            float(metric(y, blend, task)),
            entries[0].trial,
            float(metric(y, predictions[0], task)),
            proper.name.value,
            float(proper(y, blend, task)),
            float(proper(y, predictions[0], task)),
            scores,
            excluded,
            selected_on=selector.name.value,
        )
        selection.delivered = deliver and len(chosen) > 1 and passes_rule(selection, metric, proper)
        first = first or selection
        if selection.delivered:
            break
    if not selection.delivered:  # say what the proper score chose, and why it stays out
        selection = first or selection
    best = entries[0]
    members = selection.members if selection.delivered else [(best.trial, 1.0)]
    if members != [(m.trial, m.weight) for m in manifest.members]:
        if not selection.delivered:
            blend = predictions[0]
        by_trial = {e.trial: e for e in entries}
        oof = OutOfFold(truth["rows"], blend, y)
        kept = _save(directory, [(by_trial[t], w) for t, w in members], oof, truth, pool)
        if not kept:
            selection.notes.append(
                "the refit models were left out: a new member has none; run dnntune refit"
            )
    record_in_summary(run_dir, "ensemble", selection.to_dict())
    return selection


def passes_rule(selection: Selection, metric: Metric, proper: Metric) -> bool:
    """No worse than the best trial on the metric and the proper score, better on one."""
    m, best_m = selection.value, selection.best_value
    p, best_p = selection.proper_value, selection.best_proper_value
    no_worse = not metric.better(best_m, m) and not proper.better(best_p, p)
    return no_worse and (metric.better(m, best_m) or proper.better(p, best_p))


def _covers(entry: PoolEntry, n_rows: int) -> bool:
    try:
        with safe_open(str(entry.path), "pt") as f:
            return bool(f.get_slice("oof").get_shape()[0] == n_rows)
    except (OSError, KeyError, ValueError):
        return False


def _save(
    directory: Path,
    members: list[tuple[PoolEntry, float]],
    oof: OutOfFold,
    truth: dict[str, np.ndarray],
    pool: Pool,
) -> bool:
    """Deliver ``members`` in the model folder: each member's fold models, the blend's
    out-of-fold predictions, then the manifest. The run's record and the study's best trial
    (what resuming and workers compare new trials with) stay as the folder had them, and so do
    the refit networks when every member has one. False when refit networks were left out."""
    with write_model(directory) as writer:
        current = writer.current
        if current is None:
            raise DataError(f"the model folder {str(directory)!r} lost its manifest; tune again")
        folds = tuple(
            writer.fold_network(
                entry.trial,
                int(fold["fold"]),
                entry.fold_state(int(fold["fold"])),
                preprocessing=pool.preprocessing(int(fold["fold"])),
                y_shift=fold["y_shift"],
                y_scale=fold["y_scale"],
                score=fold["score"],
                best_epoch=fold["best_epoch"],
            )
            for entry, _ in members
            for fold in entry.folds
        )
        single = len(members) == 1
        name = f"trial{members[0][0].trial}_oof.csv" if single else "ensemble_oof.csv"
        frame = oof_frame(
            oof, truth["row_ids"], truth["folds"], current.task, current.classes, current.target
        )
        writer.csv(name, frame)
        metric = METRICS[current.metric]
        trials = {e.trial for e, _ in members}
        refit = tuple(r for r in current.refit if r.trial in trials)
        if {r.trial for r in refit} != trials:
            refit = ()
        manifest: ModelManifest = current.replace(
            members=tuple(member(e.trial, w, e.value, e.params, e.d_out) for e, w in members),
            folds=folds,
            refit=refit,
            oof_value=float(metric(oof.truth, oof.predictions, current.task)),
            oof_predictions=name,
        )
        writer.commit(manifest)
    return bool(refit) or not current.refit
