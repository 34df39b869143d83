"""Refit: train the best configuration on all rows and save it beside the fold ensemble."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import torch

from dnntune.artifacts import MANIFEST, atomic_path, model_dir, read_manifest, sha256, write_json
from dnntune.config import TuneConfig
from dnntune.data import dataset_from_config, prepare_fold
from dnntune.engine import METRICS, fit, resolve_device
from dnntune.exceptions import DataError
from dnntune.model import make_mlp
from dnntune.objective import model_kwargs

__all__ = ["refit"]


def refit(run_dir: str | Path, *, device: str = "auto") -> Path:
    """Train the best trial's configuration on every row for the median of its folds' best
    epoch counts; save ``refit_trial<N>.safetensors`` and a ``refit`` entry in the manifest."""
    directory = model_dir(run_dir)
    manifest = read_manifest(directory)
    config = TuneConfig.from_dict(manifest["config"])
    data = config.columns.data
    digest = manifest["data"]["sha256"]
    if digest and Path(data).is_file() and sha256(Path(data)) != digest:
        raise DataError(
            f"data file {data!r} changed since the study ran (its SHA-256 differs); "
            "refit on the data the study saw, or tune again"
        )
    dataset = dataset_from_config(config)
    target = resolve_device(device)
    prepared = prepare_fold(dataset, -1, target, config.fold_preprocessing)
    params = manifest["params"]
    epochs = max(1, round(statistics.median(f["best_epoch"] for f in manifest["folds"])))
    torch.manual_seed(config.seed)
    model = make_mlp(
        d_in=prepared.preprocessor.n_features,
        d_out=manifest["architecture"]["d_out"],
        **model_kwargs(params),
    ).to(target)
    result = fit(
        model,
        prepared.tensors,
        metric=METRICS[manifest["metric"]],
        optimizer=params["optimizer"],
        learning_rate=params["learning_rate"],
        weight_decay=params["weight_decay"],
        batch_size=params["batch_size"],
        epochs=epochs,
        # The folds' learning rate followed a schedule over their full epoch budget.
        lr_schedule=params["lr_schedule"],
        schedule_epochs=params["epochs"],
        patience=epochs,
        generator=torch.Generator(device=target).manual_seed(config.seed),
    )
    entry = {
        "epochs": epochs,
        "lr_schedule": params["lr_schedule"],
        "schedule_epochs": params["epochs"],
        "final_learning_rate": result.final_learning_rate,
        "rows": dataset.n_rows,
        "y_shift": prepared.tensors.y_shift,
        "y_scale": prepared.tensors.y_scale,
        "preprocessing": prepared.preprocessor.to_dict(),
    }
    return _save_refit(directory, manifest, model, entry)


def _save_refit(
    directory: Path, manifest: dict[str, Any], model: torch.nn.Module, entry: dict[str, Any]
) -> Path:
    """The refit weights beside the ensemble, then the manifest that names them."""
    from safetensors.torch import save_file

    name = f"refit_trial{manifest['trial_number']}.safetensors"
    with atomic_path(directory / name) as tmp:
        state = model.state_dict().items()
        save_file({k: v.detach().cpu().clone().contiguous() for k, v in state}, str(tmp))
    manifest["refit"] = {"weights": name, "sha256": sha256(directory / name), **entry}
    write_json(directory / MANIFEST, manifest)
    for path in directory.glob("refit_*.safetensors"):
        if path.name != name:
            path.unlink(missing_ok=True)
    return directory / name
