"""A model folder in words: what ``dnntune show`` prints and the report shows."""

from __future__ import annotations

from typing import Any

from dnntune.artifacts._folder import LoadedModel

__all__ = ["describe_model", "network_line"]


def network_line(arch: dict[str, Any]) -> str:
    """A network's shape in words: its architecture, members, size and input embeddings."""
    kind, k = arch["architecture"], arch["ensemble_size"]
    members = f" (k={k})" if kind != "mlp" else f" ({k} members)" if k > 1 else ""
    text = f"{kind}{members}, {arch['num_layers']} x {arch['hidden_size']}"
    if arch["num_embeddings"] != "none":
        text += f", {arch['num_embeddings']} embeddings of {arch['d_embedding']} per numeric column"
    return text


def _headline(loaded: LoadedModel) -> str:
    m = loaded.manifest
    made = f"saved {m.created_at}"
    if m.is_ensemble:
        blend = ", ".join(f"trial {e.trial} x{e.weight:.2f}" for e in m.members)
        return f"Ensemble of {len(m.members)} trials ({blend}); best trial {m.best_trial} ({made})"
    trial = m.members[0].trial
    if m.cut_by_deadline:
        n = len(m.folds)
        return (
            f"Model of trial {trial}: the {n} fold{'s' if n != 1 else ''} it finished before the "
            f"time limit cut it; no trial completed ({made})"
        )
    return f"Model of trial {trial} ({made})" if trial is not None else f"Model ({made})"


def _metric_line(loaded: LoadedModel) -> str:
    """The delivered model's out-of-fold score first, then the best trial's fold mean."""
    m = loaded.manifest
    parts = []
    if m.oof_value is not None:
        what = "the ensemble" if m.is_ensemble else "the model"
        parts.append(f"out-of-fold {m.oof_value:.6f} ({what})")
    if m.best_value is not None:
        n_best = sum(f.trial == m.best_trial for f in m.folds) or len(m.best_epochs(m.best_trial))
        folds = f"{n_best}-fold mean" if n_best else "fold mean"
        parts.append(f"best trial {m.best_trial}: {folds} {m.best_value:.6f}")
    return f"{m.metric.value} ({m.direction})" + (": " + ", ".join(parts) if parts else "")


def _member_lines(loaded: LoadedModel) -> list[str]:
    """Each delivered member: its weight, value, network and parameters."""
    m = loaded.manifest
    if not m.is_ensemble:
        first = m.members[0]
        return [
            f"  parameters:  {first.params}",
            f"  network:     {network_line(first.architecture)}",
        ]
    lines = ["  members:"]
    for e in m.members:
        value = f", value {e.value:.6f}" if e.value is not None else ""
        lines.append(f"    trial {e.trial} x{e.weight:.2f}{value}: {network_line(e.architecture)}")
        lines.append(f"      parameters: {e.params}")
    return lines


def describe_model(loaded: LoadedModel) -> str:
    """Task, metric, members with their parameters and networks, columns, data, refit models,
    versions and the first network as PyTorch prints it."""
    m = loaded.manifest
    classes = f", classes {m.classes}" if m.classes else ""
    pre = loaded.preprocessors[0]
    plan = pre.plan
    roles = [("numeric", plan.numeric), ("dates", plan.datetime), ("categorical", plan.categorical)]
    copy_line = "none"
    if pre.copies_ is not None:
        copy_line = (
            f"{pre.copies_.n_features} inputs from identical training rows "
            f"({pre.copies_.share:.0%} of fold {m.folds[0].fold}'s training rows have one)"
        )
    data = m.data or {}
    refit = "; ".join(f"trial {r.trial}: {r.epochs} epochs on {r.rows} rows" for r in m.refit)
    lines = [
        _headline(loaded),
        f"  task:        {m.task.value}{classes}",
        f"  target:      {', '.join(m.target)}",
        f"  metric:      {_metric_line(loaded)}",
        *_member_lines(loaded),
        f"  data:        {data.get('source', 'fit in Python')} ({data.get('rows', '?')} rows, "
        f"sha256 {data.get('sha256')})",
        f"  columns:     {len(m.columns)} used",
        *(f"    {role + ':':<13}{', '.join(names)}" for role, names in roles if names),
        f"  ignored:     {m.ignored_columns or 'none'}",
        f"  copies:      {copy_line}",
        f"  refit:       {refit or 'none'}",
        f"  versions:    {m.versions}",
        "Architecture:",
        str(loaded.models[0]),
    ]
    return "\n".join(lines)
