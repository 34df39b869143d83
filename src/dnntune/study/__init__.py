"""Run a tuning study: prepare the run, run its trials, write its outputs, deliver its model.

Modules: ``_run`` (:func:`prepare_run`, :func:`run_trials`, :func:`run_baseline`,
:func:`start_or_resume`, :func:`run_study`), ``_prepared`` (:class:`PreparedRun`: a checked
input and its open study; outputs, delivery, scores), ``_result`` (:class:`TuneResult`),
``_open`` (opening a study, refused when it was run with other settings), ``_autostop``
(:class:`AutoStop`), ``_epochs`` (epochs per fold chosen from the time limit), ``_probe`` (how
long a trial takes).
"""

from dnntune.study._autostop import AutoStop, cv_noise
from dnntune.study._open import CONFIG_ATTR
from dnntune.study._prepared import FINISHED, PreparedRun
from dnntune.study._result import Notes, TuneResult
from dnntune.study._run import (
    BASELINE_SHARE,
    prepare_run,
    run_baseline,
    run_study,
    run_trials,
    start_or_resume,
)

__all__ = [
    "BASELINE_SHARE",
    "CONFIG_ATTR",
    "FINISHED",
    "AutoStop",
    "Notes",
    "PreparedRun",
    "TuneResult",
    "cv_noise",
    "prepare_run",
    "run_baseline",
    "run_study",
    "run_trials",
    "start_or_resume",
]
