"""Render the report: one self-contained HTML file (plotly inlined once) and PNG plots."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from dnntune.artifacts import atomic_path
from dnntune.report._compute import (
    baseline_of,
    best_fold_scores,
    best_so_far,
    importances,
    learning_curves,
    state_counts,
    top_pair,
    trial_table,
)

__all__ = ["render_html", "render_pngs"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1150px;color:#222}
h1{font-size:1.6em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em} td,th{padding:2px 8px;border:1px solid #ddd}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto} .note{color:#666;font-size:.9em}
"""


def _figures(study: optuna.Study, imp: dict[str, float], metric: str) -> list[tuple[str, Any]]:
    """(title, plotly figure) for each plot that the study has the data for."""
    import plotly.graph_objects as go
    from optuna import visualization as vis

    complete = len(best_so_far(study))
    figs: list[tuple[str, Any]] = []

    def add(title: str, make: Any) -> None:
        try:
            fig = make()
        except (ValueError, RuntimeError, ZeroDivisionError):
            return
        fig.update_layout(title=None)  # the section heading names the plot
        figs.append((title, fig))

    if complete:
        add(
            "Optimization history",
            lambda: _with_baseline(vis.plot_optimization_history(study, target_name=metric), study),
        )
    if imp:
        add("Parameter importances", lambda: vis.plot_param_importances(study))
    pair = top_pair(imp)
    if pair and complete >= 2:
        add(
            f"Contour: {pair[0]} vs {pair[1]}",
            lambda: vis.plot_contour(study, params=list(pair), target_name=metric),
        )
    if complete >= 2:
        add("Parallel coordinates", lambda: vis.plot_parallel_coordinate(study, target_name=metric))
        add("Slices", lambda: vis.plot_slice(study, target_name=metric))
    if learning_curves(study):
        add(
            "Intermediate values (running CV estimate by fold x epoch step)",
            lambda: vis.plot_intermediate_values(study).update_layout(
                xaxis_title="step (fold x epochs + epoch)", yaxis_title=f"running CV {metric}"
            ),
        )
    add("Timeline", lambda: vis.plot_timeline(study))
    folds = best_fold_scores(study)
    if folds and all(math.isfinite(f) for f in folds):
        lo, hi = min(folds), max(folds)
        pad = (hi - lo) * 0.5 or abs(hi) * 0.01 or 0.01
        add(
            "Best trial: score per fold",
            lambda: go.Figure(
                go.Bar(
                    x=[f"fold {i}" for i in range(len(folds))],
                    y=folds,
                    text=[f"{f:.4f}" for f in folds],
                    textposition="outside",
                ),
                layout={"yaxis_title": metric, "yaxis_range": [lo - pad, hi + pad]},
            ),
        )
    return figs


def _with_baseline(fig: Any, study: optuna.Study) -> Any:
    """The history figure with the study's gradient-boosting baseline as a dashed line."""
    found = baseline_of(study)
    if found is not None and math.isfinite(found.value):
        fig.add_hline(
            y=found.value,
            line_dash="dash",
            line_color="gray",
            annotation_text=f"{found.model} baseline {found.value:.4g}",
        )
    return fig


def render_html(
    study: optuna.Study,
    summary: dict[str, Any],
    model: str | None,
    path: Path,
    extra_sections: list[tuple[str, Any]] | None = None,
) -> Path:
    """Write the whole report to ``path``; plotly's JavaScript is inlined once (works offline)."""
    metric = summary.get("metric", "value")
    imp = importances(study)
    figs = _figures(study, imp, metric)
    figs += list(extra_sections or [])
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>dnntune report: {html.escape(study.study_name)}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>dnntune report: {html.escape(study.study_name)}</h1>",
    ]
    parts.append(_summary_table(study, summary, metric))
    if model:
        parts.append(f"<h2>Delivered model</h2><pre>{html.escape(model)}</pre>")
    for i, (title, fig) in enumerate(figs):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(
            fig.to_html(
                full_html=False,
                include_plotlyjs=(i == 0),
                div_id=f"plot-{i}",
                config={"responsive": True},
            )
        )
    table = trial_table(study)
    parts.append(
        "<h2>Trials</h2>"
        + table.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.6g}", border=0)
    )
    parts.append("</body></html>")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return path


def _summary_table(study: optuna.Study, summary: dict[str, Any], metric: str) -> str:
    data = summary.get("data", {})
    facts = {
        "task": summary.get("task"),
        "data": f"{data.get('source')} ({data.get('rows')} rows, {data.get('folds')} folds)",
        "metric": f"{metric} ({summary.get('direction')})",
        **_scores(summary),
        "best value": summary.get("best_value"),
        "best trial": summary.get("best_trial"),
        "best parameters": json.dumps(summary.get("best_params")),
        "baseline (same folds)": _baseline_fact(study),
        "sampler / pruner": f"{summary.get('sampler')} / {summary.get('pruner')}",
        "trials by state": ", ".join(f"{k}: {v}" for k, v in state_counts(study).items()),
        "wall time": f"{summary.get('wall_time_s')} s",
    }
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in facts.items()
    )
    return f"<h2>Summary</h2><table>{rows}</table>"


def _scores(summary: dict[str, Any]) -> dict[str, str]:
    """The delivered model, the best trial alone and the baseline, each scored out of fold."""
    scores = summary.get("scores") or {}
    out = {}
    for key in ("delivered", "best_trial", "baseline"):
        entry = scores.get(key)
        if not entry:
            continue
        value = entry.get("out-of-fold")
        means = [f"{k} {v:.6g}" for k, v in entry.items() if k.endswith("mean") and v is not None]
        text = "n/a" if value is None else f"{value:.6g} out of fold"
        out[entry["candidate"]] = text + (f" ({means[0]})" if means else "")
    return out


def _baseline_fact(study: optuna.Study) -> str:
    found = baseline_of(study)
    if found is None:
        return "none"
    return f"{found.model} with its defaults: {found.value:.6g} ({found.seconds} s)"


def render_pngs(study: optuna.Study, summary: dict[str, Any], directory: Path) -> list[Path]:
    """Main plots as PNG with matplotlib (no browser needed); a plot with nothing to show is
    not written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = summary.get("metric", "value")
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, draw in _PNGS.items():
        fig = draw(plt, study, metric)
        if fig is None:
            continue
        fig.tight_layout()
        with atomic_path(directory / name) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        written.append(directory / name)
    return written


def _history_png(plt: Any, study: optuna.Study, metric: str) -> Any:
    hist = best_so_far(study)
    if hist.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(hist["number"], hist["value"], s=14, label="trial value")
    ax.step(hist["number"], hist["best"], where="post", color="C3", label="best so far")
    found = baseline_of(study)
    if found is not None and math.isfinite(found.value):
        label = f"{found.model} baseline (same folds)"
        ax.axhline(found.value, color="gray", linestyle="--", label=label)
    ax.set(xlabel="trial number", ylabel=metric, title="Optimization history")
    ax.legend()
    return fig


def _importances_png(plt: Any, study: optuna.Study, metric: str) -> Any:
    imp = importances(study)
    if not imp:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(imp)))
    names = list(reversed(list(imp)))
    ax.barh(names, [imp[n] for n in names])
    ax.set(xlabel="importance (share, sums to 1)", title="Parameter importances")
    return fig


def _intermediate_png(plt: Any, study: optuna.Study, metric: str) -> Any:
    curves = learning_curves(study)
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for c in curves:
        pruned = c.state == "pruned"
        color, width = ("0.6", 0.8) if pruned else ("C0", 1.2)
        ax.plot(c.steps, c.values, color=color, lw=width, alpha=0.8)
    ax.plot([], [], color="C0", label="completed")
    ax.plot([], [], color="0.6", label="pruned")
    ax.set(
        xlabel="step (fold x epochs + epoch)",
        ylabel=f"running CV {metric}",
        title="Intermediate values",
    )
    ax.legend()
    return fig


def _folds_png(plt: Any, study: optuna.Study, metric: str) -> Any:
    folds = best_fold_scores(study)
    if not folds or not all(math.isfinite(f) for f in folds):
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([f"fold {i}" for i in range(len(folds))], folds)
    lo, hi = min(folds), max(folds)
    pad = (hi - lo) * 0.5 or abs(hi) * 0.01 or 0.01
    ax.set(ylim=(lo - pad, hi + pad), ylabel=metric, title="Best trial: score per fold")
    return fig


def _learning_rate_png(plt: Any, study: optuna.Study, metric: str) -> Any:
    table = trial_table(study)
    if table.empty or "learning_rate" not in table.columns or not table["value"].notna().any():
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    ok = table["value"].notna()
    ax.scatter(table.loc[ok, "learning_rate"], table.loc[ok, "value"], s=16)
    ax.set(
        xscale="log",
        xlabel="learning_rate (log scale)",
        ylabel=metric,
        title="Value by learning rate",
    )
    return fig


# Each PNG the report writes, and the function that draws it (None: nothing to draw).
_PNGS: dict[str, Callable[[Any, optuna.Study, str], Any]] = {
    "history.png": _history_png,
    "importances.png": _importances_png,
    "intermediate_values.png": _intermediate_png,
    "best_trial_folds.png": _folds_png,
    "learning_rate.png": _learning_rate_png,
}


def frame_to_html(frame: pd.DataFrame) -> str:  # pragma: no cover - helper for extra sections
    return frame.to_html(index=False, border=0)
