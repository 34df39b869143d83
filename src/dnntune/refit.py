"""Refit: train the delivered configurations on all rows and save them beside the fold models."""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import torch

from dnntune.artifacts import (
    Member,
    ModelManifest,
    RefitNetwork,
    model_dir,
    read_manifest,
    sha256,
    write_model,
)
from dnntune.config import TuneConfig
from dnntune.data import PreparedFold, dataset_from_config, prepare_fold
from dnntune.engine import METRICS, Metric, resolve_device
from dnntune.exceptions import DataError
from dnntune.objective import train_network

__all__ = ["refit"]


def refit(run_dir: str | Path, *, device: str = "auto") -> Path:
    """Train each delivered member's configuration (the best trial's, or each ensemble
    member's) on every row for the median of its folds' best epoch counts; save
    ``refit_trial<N>.safetensors`` for each and the manifest's ``refit`` networks, which
    ``dnntune.load(..., refit=True)`` weighs as the ensemble weighs its members."""
    directory = model_dir(run_dir)
    manifest = read_manifest(directory)
    if manifest.config is None:
        raise DataError(
            f"the model in {str(directory)!r} was not made by dnntune tune (it records no "
            "settings to refit with); refit needs a tuned run folder"
        )
    config = TuneConfig.from_dict(manifest.config)
    data = config.columns.data
    digest = (manifest.data or {}).get("sha256")
    if digest and Path(data).is_file() and sha256(Path(data)) != digest:
        raise DataError(
            f"data file {data!r} changed since the study ran (its SHA-256 differs); "
            "refit on the data the study saw, or tune again"
        )
    dataset = dataset_from_config(config)
    prepared = prepare_fold(dataset, -1, resolve_device(device), config.fold_preprocessing)
    metric = METRICS[manifest.metric]
    trained = []
    for member in manifest.members:
        epochs = max(1, round(statistics.median(manifest.best_epochs(member.trial))))
        trained.append(_refit_one(member, epochs, prepared, metric, config.seed))
    with write_model(directory) as writer:
        networks = []
        for model, network in trained:
            name = f"refit_trial{network.trial}.safetensors"
            name, digest = writer.weights(name, model.state_dict())
            networks.append(dataclasses.replace(network, weights=name, sha256=digest))
        current: ModelManifest = writer.current or manifest
        if current.members != manifest.members:
            raise DataError(
                f"the model in {str(directory)!r} changed while it was refit (a study saved a "
                "better trial); run dnntune refit again"
            )
        writer.commit(current.replace(refit=tuple(networks)))
    return directory


def _refit_one(
    member: Member, epochs: int, prepared: PreparedFold, metric: Metric, seed: int
) -> tuple[torch.nn.Module, RefitNetwork]:
    """One configuration trained on the prepared rows for ``epochs``; its network's entry
    (weights not yet written)."""
    params = member.params
    model, result = train_network(
        prepared,
        params,
        d_out=member.d_out,
        metric=metric,
        patience=epochs,
        seed=seed,
        epochs=epochs,
    )
    network = RefitNetwork(
        trial=member.trial,
        weights="",
        sha256="",
        preprocessing=prepared.preprocessor.to_dict(),
        y_shift=prepared.tensors.y_shift,
        y_scale=prepared.tensors.y_scale,
        epochs=epochs,
        lr_schedule=params["lr_schedule"],
        schedule_epochs=params["epochs"],
        final_learning_rate=result.final_learning_rate,
        rows=len(prepared.tensors.y_train),
    )
    return model, network
