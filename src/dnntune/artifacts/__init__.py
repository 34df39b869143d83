"""The run folder's files: the model folder (safetensors weights + a JSON manifest) and the
run's records, written atomically; nothing here pickles or unpickles.

Layers, each a module: ``_files`` (atomic writes, checksums, the folder lock), ``_manifest``
(the model folder's typed description and its checked reader), ``_folder`` (the folder's one
writer, and loading its networks), ``_predictions`` (prediction and out-of-fold tables),
``_run`` (what a model records of its run; ``summary.json`` and the trial table), ``_trial``
(a study's trial saved as the delivered model), ``_describe`` (a model in words).
"""

from dnntune.artifacts._describe import describe_model, network_line
from dnntune.artifacts._files import atomic_path, locked, now_iso, sha256, write_csv, write_json
from dnntune.artifacts._folder import (
    LoadedModel,
    ModelWriter,
    load_model,
    model_dir,
    read_json,
    read_manifest,
    saved_trial,
    write_model,
)
from dnntune.artifacts._manifest import (
    FORMAT_VERSION,
    MANIFEST,
    FoldNetwork,
    Member,
    ModelManifest,
    Network,
    RefitNetwork,
    refuse_pickle,
)
from dnntune.artifacts._predictions import OutOfFold, oof_frame, out_of_fold, prediction_frame
from dnntune.artifacts._run import (
    OUT_OF_FOLD,
    SUMMARY,
    RunRecord,
    RunScores,
    Score,
    read_summary,
    record_in_summary,
    run_record,
    state_counts,
    torch_versions,
    trial_state,
    write_run_outputs,
    write_summary,
)
from dnntune.artifacts._trial import member, save_trial

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "OUT_OF_FOLD",
    "SUMMARY",
    "FoldNetwork",
    "LoadedModel",
    "Member",
    "ModelManifest",
    "ModelWriter",
    "Network",
    "OutOfFold",
    "RefitNetwork",
    "RunRecord",
    "RunScores",
    "Score",
    "atomic_path",
    "describe_model",
    "load_model",
    "locked",
    "member",
    "model_dir",
    "network_line",
    "now_iso",
    "oof_frame",
    "out_of_fold",
    "prediction_frame",
    "read_json",
    "read_manifest",
    "read_summary",
    "record_in_summary",
    "refuse_pickle",
    "run_record",
    "save_trial",
    "saved_trial",
    "sha256",
    "state_counts",
    "torch_versions",
    "trial_state",
    "write_csv",
    "write_json",
    "write_model",
    "write_run_outputs",
    "write_summary",
]
