"""Report stage: compute what each plot shows, then render HTML and PNG."""

from dnntune.report._compute import (
    Curve,
    baseline_of,
    best_fold_scores,
    best_so_far,
    importances,
    learning_curves,
    state_counts,
    top_pair,
    trial_table,
)
from dnntune.report._render import render_html, render_pngs
from dnntune.report._report import load_run_study, write_report

__all__ = [
    "Curve",
    "baseline_of",
    "best_fold_scores",
    "best_so_far",
    "importances",
    "learning_curves",
    "load_run_study",
    "render_html",
    "render_pngs",
    "state_counts",
    "top_pair",
    "trial_table",
    "write_report",
]
