"""What a study produced (:class:`TuneResult`) and the notes of a run."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from torch import nn

from dnntune._names import Message, setting_name
from dnntune.artifacts import (
    LoadedModel,
    RunScores,
    load_model,
    state_counts,
)
from dnntune.baseline import Baseline
from dnntune.data import Dataset
from dnntune.engine import Metric
from dnntune.ensemble import Selection
from dnntune.exceptions import (
    NoModelError,
)
from dnntune.objective import TrialModels


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
            counts = state_counts(self.study.get_trials(deepcopy=False))
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


class Notes(list[str]):
    """The notes of a run, each also told to ``on_note`` as it comes."""

    def __init__(self, on_note: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.on_note = on_note

    def __call__(self, msg: str) -> None:
        self.append(Message(msg))
        if self.on_note is not None:
            self.on_note(self[-1])
