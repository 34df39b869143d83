"""Render the report: one self-contained HTML file (plotly inlined once) and PNG plots."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from dnntune.artifacts import atomic_path
from dnntune.report._compute import (
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

    add("Optimization history", lambda: vis.plot_optimization_history(study, target_name=metric))
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


def render_html(
    study: optuna.Study,
    summary: dict[str, Any],
    architecture: str | None,
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
    facts = {
        "task": summary.get("task"),
        "data": f"{summary.get('data', {}).get('source')} "
        f"({summary.get('data', {}).get('rows')} rows, "
        f"{summary.get('data', {}).get('folds')} folds)",
        "metric": f"{metric} ({summary.get('direction')})",
        "best value": summary.get("best_value"),
        "best trial": summary.get("best_trial"),
        "best parameters": json.dumps(summary.get("best_params")),
        "sampler / pruner": f"{summary.get('sampler')} / {summary.get('pruner')}",
        "trials by state": ", ".join(f"{k}: {v}" for k, v in state_counts(study).items()),
        "wall time": f"{summary.get('wall_time_s')} s",
    }
    parts.append(
        "<h2>Summary</h2><table>"
        + "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in facts.items()
        )
        + "</table>"
    )
    if architecture:
        parts.append(f"<h2>Model architecture</h2><pre>{html.escape(architecture)}</pre>")
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


def render_pngs(study: optuna.Study, summary: dict[str, Any], directory: Path) -> list[Path]:
    """Main plots as PNG with matplotlib (no browser needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = summary.get("metric", "value")
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        with atomic_path(directory / name) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        written.append(directory / name)

    hist = best_so_far(study)
    if not hist.empty:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.scatter(hist["number"], hist["value"], s=14, label="trial value")
        ax.step(hist["number"], hist["best"], where="post", color="C3", label="best so far")
        ax.set(xlabel="trial number", ylabel=metric, title="Optimization history")
        ax.legend()
        save(fig, "history.png")
    imp = importances(study)
    if imp:
        fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(imp)))
        names = list(reversed(list(imp)))
        ax.barh(names, [imp[n] for n in names])
        ax.set(xlabel="importance (share, sums to 1)", title="Parameter importances")
        save(fig, "importances.png")
    curves = learning_curves(study)
    if curves:
        fig, ax = plt.subplots(figsize=(7, 4))
        for c in curves:
            pruned = c.state == "pruned"
            ax.plot(
                c.steps,
                c.values,
                color="0.6" if pruned else "C0",
                lw=0.8 if pruned else 1.2,
                alpha=0.8,
            )
        ax.plot([], [], color="C0", label="completed")
        ax.plot([], [], color="0.6", label="pruned")
        ax.set(
            xlabel="step (fold x epochs + epoch)",
            ylabel=f"running CV {metric}",
            title="Intermediate values",
        )
        ax.legend()
        save(fig, "intermediate_values.png")
    folds = best_fold_scores(study)
    if folds and all(math.isfinite(f) for f in folds):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar([f"fold {i}" for i in range(len(folds))], folds)
        lo, hi = min(folds), max(folds)
        pad = (hi - lo) * 0.5 or abs(hi) * 0.01 or 0.01
        ax.set(ylim=(lo - pad, hi + pad), ylabel=metric, title="Best trial: score per fold")
        save(fig, "best_trial_folds.png")
    table = trial_table(study)
    if not table.empty and "learning_rate" in table.columns and table["value"].notna().any():
        fig, ax = plt.subplots(figsize=(7, 4))
        ok = table["value"].notna()
        ax.scatter(table.loc[ok, "learning_rate"], table.loc[ok, "value"], s=16)
        ax.set(
            xscale="log",
            xlabel="learning_rate (log scale)",
            ylabel=metric,
            title="Value by learning rate",
        )
        save(fig, "learning_rate.png")
    return written


def frame_to_html(frame: pd.DataFrame) -> str:  # pragma: no cover - helper for extra sections
    return frame.to_html(index=False, border=0)
