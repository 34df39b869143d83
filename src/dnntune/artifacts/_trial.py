"""A trial's fold models as the delivered model: what the study saves as better trials come."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from dnntune.artifacts._folder import write_model
from dnntune.artifacts._manifest import Member, ModelManifest
from dnntune.artifacts._predictions import oof_frame, out_of_fold
from dnntune.artifacts._run import RunRecord
from dnntune.engine import METRICS
from dnntune.objective import TrialModels, model_kwargs

__all__ = ["member", "save_trial"]


def member(
    trial: int | None, weight: float, value: float | None, params: dict[str, Any], d_out: int
) -> Member:
    """A configuration as a member of the delivered model: its network's shape from its
    parameters."""
    architecture = {"d_out": d_out, **model_kwargs(params)}
    return Member(trial, weight, value, dict(params), architecture)


def _beats_partial(
    best: TrialModels, current: ModelManifest, better: Callable[[float, float], bool] | None
) -> bool:
    """Whether a trial's partial folds replace the model in place: only another partial one,
    and only when better (``better(new, saved)``)."""
    was = current.members[0].value
    return (
        current.cut_by_deadline
        and better is not None
        and was is not None
        and better(best.value, was)
    )


def save_trial(
    best: TrialModels,
    directory: Path,
    record: RunRecord,
    *,
    only_if_better: Callable[[float, float], bool] | None = None,
    partial: bool = False,
) -> Path:
    """Deliver a trial's fold models, out-of-fold predictions and manifest in ``directory``.

    With ``only_if_better(new, saved)``, a model already saved (by another worker, or an earlier
    session) is replaced only when the trial is better than the study's best it records; the
    check and the swap happen under the folder's lock.
    """
    with write_model(directory) as writer:
        current = writer.current
        saved = current.best_value if current is not None else None
        if only_if_better and saved is not None and not only_if_better(best.value, saved):
            return directory
        if partial and current is not None and not _beats_partial(best, current, only_if_better):
            return directory
        folds = tuple(
            writer.fold_network(
                best.trial_number,
                fold.index,
                state,
                preprocessing=fold.preprocessor.to_dict(),
                y_shift=fold.tensors.y_shift,
                y_scale=fold.tensors.y_scale,
                score=score,
                best_epoch=epoch,
            )
            for fold, state, score, epoch in zip(
                best.folds, best.states, best.fold_scores, best.best_epochs, strict=True
            )
        )
        oof = out_of_fold(best, record.task)
        name = f"trial{best.trial_number}_oof.csv"
        oof_value = None
        if oof is None:
            writer.csv(name, pd.DataFrame())
        else:
            oof_value = float(METRICS[record.metric](oof.truth, oof.predictions, record.task))
            ids, fold_ids = record.file_rows(oof.rows)
            frame = oof_frame(oof, ids, fold_ids, record.task, record.classes, record.target)
            writer.csv(name, frame)
        manifest = record.manifest(
            (member(best.trial_number, 1.0, best.value, best.params, best.d_out),),
            folds,
            best_trial=None if partial else best.trial_number,
            best_value=None if partial else best.value,
            cut_by_deadline=partial,
            oof_value=oof_value,
            oof_predictions=name,
        )
        writer.commit(manifest)
    return directory
