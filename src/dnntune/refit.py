"""Refit: train the delivered configurations on all rows and save them beside the fold models."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import torch

from dnntune.artifacts import (
    locked,
    model_dir,
    read_manifest,
    replace_manifest,
    sha256,
    write_weights,
)
from dnntune.config import TuneConfig
from dnntune.data import PreparedFold, dataset_from_config, prepare_fold
from dnntune.engine import METRICS, Metric, fit, resolve_device
from dnntune.exceptions import DataError
from dnntune.model import make_model
from dnntune.objective import model_kwargs

__all__ = ["refit"]


def refit(run_dir: str | Path, *, device: str = "auto") -> Path:
    """Train each delivered trial's configuration (the best trial's, or each ensemble
    member's) on every row for the median of its folds' best epoch counts; save
    ``refit_trial<N>.safetensors`` for each and the ``refit`` entries in the manifest, which
    ``dnntune.load(..., refit=True)`` weighs as the ensemble weighs its members."""
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
    entries = []
    for member in _delivered(manifest):
        epochs = max(1, round(statistics.median(member["best_epochs"])))
        metric = METRICS[manifest["metric"]]
        model, entry = _refit_one(member, epochs, prepared, metric, config.seed)
        name = f"refit_trial{member['trial']}.safetensors"
        entries.append(
            {
                "trial": member["trial"],
                **write_weights(directory, name, model.state_dict()),
                **entry,
            }
        )
    manifest["refit"] = entries
    with locked(directory):
        replace_manifest(directory, manifest)
    return directory


def _delivered(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The trials a model folder delivers: number, parameters, outputs, folds' best epochs."""
    ensemble = manifest.get("ensemble")
    members = (
        ensemble["members"]
        if ensemble
        else [{"trial": manifest["trial_number"], "params": manifest["params"]}]
    )
    return [
        {
            "trial": m["trial"],
            "params": m["params"],
            "d_out": manifest["architecture"]["d_out"],
            "best_epochs": [
                f["best_epoch"]
                for f in manifest["folds"]
                if int(f.get("trial", manifest["trial_number"])) == int(m["trial"])
            ],
        }
        for m in members
    ]


def _refit_one(
    member: dict[str, Any], epochs: int, prepared: PreparedFold, metric: Metric, seed: int
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """One configuration trained on the prepared rows for ``epochs``; its manifest entry."""
    params = member["params"]
    target = prepared.tensors.x_train.device
    torch.manual_seed(seed)
    model = make_model(
        layout=prepared.preprocessor.layout(), d_out=member["d_out"], **model_kwargs(params)
    ).to(target)
    result = fit(
        model,
        prepared.tensors,
        metric=metric,
        optimizer=params["optimizer"],
        learning_rate=params["learning_rate"],
        weight_decay=params["weight_decay"],
        batch_size=params["batch_size"],
        epochs=epochs,
        # The folds' learning rate followed a schedule over their full epoch budget.
        lr_schedule=params["lr_schedule"],
        schedule_epochs=params["epochs"],
        patience=epochs,
        generator=torch.Generator(device=target).manual_seed(seed),
    )
    entry = {
        "epochs": epochs,
        "lr_schedule": params["lr_schedule"],
        "schedule_epochs": params["epochs"],
        "final_learning_rate": result.final_learning_rate,
        "rows": len(prepared.tensors.y_train),
        "y_shift": prepared.tensors.y_shift,
        "y_scale": prepared.tensors.y_scale,
        "preprocessing": prepared.preprocessor.to_dict(),
    }
    return model, entry
