"""Open (or create) a study in its storage, refused when it was run with other settings."""

from __future__ import annotations

import shutil
from typing import Any

import optuna

from dnntune._names import first_line, setting_name
from dnntune.config import CONFIG_FORMAT, TuneConfig
from dnntune.engine import Metric
from dnntune.exceptions import ConfigError, StorageError
from dnntune.space import SearchSpace
from dnntune.storage import default_storage_url, open_storage, redact

CONFIG_ATTR = "dnntune_config"


def _open_study(
    config: TuneConfig,
    metric: Metric,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    space: SearchSpace,
    *,
    worker: bool,
) -> optuna.Study:
    run_dir = config.run_dir
    created = not run_dir.exists()
    url = config.run.storage or default_storage_url(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create {setting_name('output_dir')} {str(run_dir)!r} "
            f"({exc.strerror or first_line(exc)}); pass a folder this user can write"
        ) from None
    try:
        study = _load_study(config, metric, sampler, pruner, url, space, worker=worker)
    except BaseException:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return study


def _load_study(
    config: TuneConfig,
    metric: Metric,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    url: str,
    space: SearchSpace,
    *,
    worker: bool,
) -> optuna.Study:
    name = config.study_name
    where = f"study {name!r} in {redact(url)!r}"
    try:
        study = optuna.create_study(
            storage=open_storage(url, heartbeat=worker),
            study_name=name,
            sampler=sampler,
            pruner=pruner,
            direction=metric.optuna_direction,
            load_if_exists=True,
        )
    except ValueError as exc:
        raise StorageError(f"cannot use {where}: {exc}") from None
    if study.direction.name.lower() != metric.direction:
        raise StorageError(
            f"{where} was created to {study.direction.name.lower()}, but metric "
            f"{metric.name.value!r} must be {metric.direction}d; use another "
            f"{setting_name('study')} name"
        )
    wanted = {**config.identity(), "metric": metric.name.value, "space": space.to_dict()}
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, wanted)
        study.set_user_attr("config", config.to_dict())
        return study
    if stored.get("format") != CONFIG_FORMAT:
        raise StorageError(
            f"{where} was made by a dnntune whose settings format is "
            f"{stored.get('format')}; this one reads format {CONFIG_FORMAT}; use a new "
            f"{setting_name('study')} name"
        )
    # A worker may read the data from another path (another machine's mount).
    differ = [
        k for k in sorted(wanted) if stored.get(k) != wanted[k] and not (worker and k == "data")
    ]
    if differ:
        diff = "; ".join(_difference(k, stored.get(k), wanted[k]) for k in differ)
        raise StorageError(
            f"{where} was run with different settings ({diff}); rerun with the same settings "
            f"to resume, or pass a new {setting_name('study')}"
        )
    return study


def _difference(key: str, stored: Any, wanted: Any) -> str:
    """One setting that differs, for the refusal to resume: values, or the space's parameters."""
    if key != "space" or not isinstance(stored, dict):
        return f"{key}: {stored!r}, now {wanted!r}"
    changed = []
    for name in sorted(set(stored) | set(wanted)):
        was, now = stored.get(name) or {}, wanted.get(name) or {}
        if was == now:
            continue
        if was.get("type") == now.get("type") == "fixed":  # two values: name both
            changed.append(f"{name} {was['value']!r}, now {now['value']!r}")
        else:
            changed.append(name)
    return f"space: {', '.join(changed)}"
