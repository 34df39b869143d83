"""The public entry point: ``dnntune.tune(data, target, ...)``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from dnntune.config import (
    SETTINGS,
    MetricName,
    NumericScaling,
    PrunerName,
    SamplerName,
    Task,
    TuneConfig,
)
from dnntune.parallel import tune_config
from dnntune.study import TuneResult

__all__ = ["tune"]


def tune(
    data: str = "builtin:breast_cancer",
    target: str | Sequence[str] = (),
    *,
    drop: str | Sequence[str] = (),
    categorical: str | Sequence[str] = (),
    task: Task | str | None = None,
    folds: int = 5,
    fold_column: str | None = None,
    fold_seed: int | None = None,
    group_duplicates: bool = False,
    numeric_bins: int = 32,
    numeric_scaling: NumericScaling | str = "standard",
    copy_encoding: bool = False,
    metric: MetricName | str | None = None,
    max_folds: int | None = None,
    patience: int = 5,
    device: str = "auto",
    sampler: SamplerName | str = "tpe",
    pruner: PrunerName | str = "median",
    space: str | None = None,
    trials: int | None = None,
    timeout: float | None = None,
    grid_points: int = 3,
    warm_start: bool = True,
    auto_stop: bool = False,
    baseline: bool = True,
    ensemble: bool = True,
    ensemble_pool: int = 50,
    ensemble_rounds: int = 20,
    study: str | None = None,
    storage: str | None = None,
    output_dir: str | None = None,
    mlflow: str | None = None,
    jobs: int = 1,
    seed: int = 42,
    show_progress: bool = False,
    on_note: Callable[[str], None] | None = None,
) -> TuneResult:
    # The docstring is completed below from the settings' own help texts.
    started = time.monotonic()  # the time limit counts from the call, reading the data included
    settings = {name: value for name, value in locals().items() if name in SETTINGS}
    config = TuneConfig.of(**settings)
    return tune_config(config, show_progress=show_progress, on_note=on_note, started=started)


def _docstring() -> str:
    lines = [
        "Run (or resume) a cross-validated Optuna study over a network search space.",
        "",
        "The study lives in ``storage`` (default: SQLite in the run folder), so running the",
        "same call again resumes it; the best trial's fold models are saved in",
        "``<run folder>/model`` as they are found, and replaced at the end by an ensemble of",
        "the best trials when it is no worse on the metric and the task's proper score.",
        "``timeout`` counts from the call. Returns a :class:`TuneResult`: ``study``,",
        "``best_params``, ``best_value``, ``delivered`` (the delivered model), ``model`` (its",
        "first network), ``scores`` (delivered model, best trial and baseline, out of fold),",
        "``ensemble`` (the selection) and ``run_dir``. Bad input raises a",
        ":class:`dnntune.DnntuneError` subclass naming the keyword, the rule and the value",
        "before anything is written.",
        "",
        "Settings (the same as ``dnntune tune``'s options):",
        "",
    ]
    for s in SETTINGS.values():
        default = s.default.value if hasattr(s.default, "value") else s.default
        lines.append(f"* ``{s.name}`` (default ``{default!r}``): {s.help}")
    lines += [
        "",
        "Other keywords:",
        "",
        "* ``show_progress``: show a progress bar on stderr.",
        "* ``on_note(message)``: called with each note (what was dropped, how the data was",
        "  read, resumed trials); the notes are also in ``TuneResult.notes``.",
    ]
    return "\n".join(lines)


tune.__doc__ = _docstring()
