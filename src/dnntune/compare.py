"""Which sampler suits this data? Run several on the same data, space, folds and budget.

Each sampler runs ``repeats`` studies (seeds ``seed``, ``seed + 1``, ... for the sampler and
the models' initial weights; every run splits the folds with ``seed``) in one journal storage
in the comparison folder, optionally in parallel processes. The leaderboard gives, per sampler,
the best value (mean and standard deviation over repeats), the trials and seconds each repeat
needed to come within 1% of the best value any run reached (median over the repeats that did;
``reached_99pct`` counts them), and the mean wall time of a run. The best-so-far curves
(median and min-max band across repeats, against trials and against seconds) are drawn as PNG
and as self-contained HTML, with the gradient-boosting baseline of the folds (computed once, by
the first run) as a dashed line. Runs start without the warm-start trial, so that each
sampler starts on its own.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from dnntune.artifacts import atomic_path, write_json
from dnntune.baseline import Baseline
from dnntune.config import MAX_SEED, SamplerName, TuneConfig
from dnntune.report import baseline_of, best_so_far
from dnntune.storage import open_storage

__all__ = ["CompareResult", "compare", "leaderboard", "rebuild"]


@dataclass
class CompareResult:
    directory: Path
    leaderboard: pd.DataFrame
    curves: dict[str, list[pd.DataFrame]]


def _run(config: TuneConfig, threads: int | None = None) -> float:
    from dnntune.study import run_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # fresh in a spawned process
    if threads:
        import torch

        # Parallel runs share the cores: more threads than cores makes every step crawl.
        torch.set_num_threads(threads)
    return run_study(config).wall_time_s


def _reach(curve: pd.DataFrame, target: float, maximize: bool) -> tuple[float, float]:
    ok = curve["best"] >= target if maximize else curve["best"] <= target
    if not ok.any():
        return math.nan, math.nan
    row = curve[ok].iloc[0]
    return float(row["number"]) + 1, float(row["seconds"])


def _median(values: list[float]) -> float:
    """Median over the repeats that got there; NaN when none did."""
    reached = [v for v in values if not math.isnan(v)]
    return statistics.median(reached) if reached else math.nan


def leaderboard(
    curves: dict[str, list[pd.DataFrame]], walls: dict[str, list[float]], maximize: bool
) -> pd.DataFrame:
    """One row per sampler, best first (the computation behind the printed table)."""
    finals = [c["best"].iloc[-1] for cs in curves.values() for c in cs if not c.empty]
    overall = max(finals) if maximize else min(finals)
    target = overall - 0.01 * abs(overall) if maximize else overall + 0.01 * abs(overall)
    rows = []
    for name, cs in curves.items():
        bests = [c["best"].iloc[-1] for c in cs if not c.empty]
        reach = [_reach(c, target, maximize) for c in cs if not c.empty]
        rows.append(
            {
                "sampler": name,
                "best_mean": float(np.mean(bests)) if bests else math.nan,
                "best_std": float(np.std(bests)) if bests else math.nan,
                "trials_to_99pct": _median([r[0] for r in reach]),
                "seconds_to_99pct": _median([r[1] for r in reach]),
                "reached_99pct": f"{sum(not math.isnan(r[0]) for r in reach)}/{len(cs)}",
                "wall_s": float(np.mean(walls[name])) if walls[name] else math.nan,
            }
        )
    frame = pd.DataFrame(rows)
    return frame.sort_values("best_mean", ascending=not maximize).reset_index(drop=True)


def compare(
    config: TuneConfig,
    samplers: list[SamplerName],
    *,
    repeats: int = 3,
    jobs: int = 1,
    directory: Path | None = None,
    on_note: Callable[[str], None] | None = None,
) -> CompareResult:
    """Run every sampler ``repeats`` times with the same budget; write leaderboard and plots.
    ``on_note`` hears of each run as it ends (its sampler, repeat and wall time)."""
    say = on_note or (lambda msg: None)
    directory = Path(directory or Path("runs") / f"compare-{config.study_name}")
    directory.mkdir(parents=True, exist_ok=True)
    storage = f"journal:{(directory / 'compare.journal').resolve()}"
    runs: dict[tuple[str, int], TuneConfig] = {}
    for sampler in samplers:
        for r in range(repeats):
            runs[(sampler.value, r)] = config.replace(
                sampler=sampler,
                seed=(config.seed + r) % (MAX_SEED + 1),
                fold_seed=config.split_seed,  # the same folds in every run
                warm_start=False,  # each sampler starts on its own
                storage=storage,
                study=f"{config.study_name}-{sampler.value}-r{r}",
                output_dir=str(directory / f"{sampler.value}-r{r}"),
                jobs=1,
                baseline=not runs and config.search.baseline,  # once: the folds are the same
            )
    walls: dict[str, list[float]] = {s.value: [] for s in samplers}
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            threads = max(1, (os.cpu_count() or 1) // jobs)
            futures = {key: pool.submit(_run, cfg, threads) for key, cfg in runs.items()}
            for i, (key, fut) in enumerate(futures.items(), 1):
                walls[key[0]].append(fut.result())
                say(_progress(i, len(runs), key, walls[key[0]][-1]))
    else:
        for i, (key, cfg) in enumerate(runs.items(), 1):
            walls[key[0]].append(_run(cfg))
            say(_progress(i, len(runs), key, walls[key[0]][-1]))
    studies = {key: cfg.study_name for key, cfg in runs.items()}
    meta = {
        "samplers": [s.value for s in samplers],
        "repeats": repeats,
        "trials": config.search.n_trials,
        "timeout": config.search.timeout,
        "studies": [[name, r, study] for (name, r), study in studies.items()],
        "walls": walls,
    }
    return _render(directory, meta)


def _progress(done: int, total: int, key: tuple[str, int], wall: float) -> str:
    return f"run {done} of {total} done: sampler {key[0]}, repeat {key[1] + 1} ({wall:.1f} s)"


def _render(directory: Path, meta: dict) -> CompareResult:
    """Leaderboard and plots from the studies in the folder's journal."""
    backend = open_storage(f"journal:{(directory / 'compare.journal').resolve()}")
    curves: dict[str, list[pd.DataFrame]] = {name: [] for name in meta["samplers"]}
    maximize = True
    found: Baseline | None = None
    for name, _, study_name in meta["studies"]:
        study = optuna.load_study(study_name=study_name, storage=backend)
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        curves[name].append(best_so_far(study))
        found = found or baseline_of(study)
    board = leaderboard(curves, meta["walls"], maximize)
    with atomic_path(directory / "leaderboard.csv") as tmp:
        board.to_csv(tmp, index=False)
    record = {**meta, "leaderboard": json.loads(board.to_json(orient="records"))}
    record["baseline"] = found.to_dict() if found else None
    write_json(directory / "compare.json", record)
    line = found.value if found is not None and math.isfinite(found.value) else None
    _plot_png(curves, directory / "compare.png", line)
    _plot_html(curves, board, directory / "compare.html", line)
    return CompareResult(directory, board, curves)


def rebuild(directory: Path) -> CompareResult:
    """Redraw a comparison folder's leaderboard and plots (``dnntune report`` on it)."""
    meta = json.loads((Path(directory) / "compare.json").read_text(encoding="utf-8"))
    return _render(Path(directory), meta)


def _band(curves: list[pd.DataFrame], x: str, grid: np.ndarray) -> np.ndarray:
    """Best-so-far of each repeat on a common x grid (step-wise), one row per repeat."""
    out = []
    for c in curves:
        if c.empty:
            continue
        # x: trials started so far (pruned trials count too), or seconds since the first trial
        xs = c["number"].to_numpy() + 1 if x == "trials" else c["seconds"].to_numpy()
        idx = np.searchsorted(xs, grid, side="right") - 1
        vals = np.where(idx >= 0, c["best"].to_numpy()[np.clip(idx, 0, None)], np.nan)
        out.append(vals)
    return np.array(out)


def _stats(band: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, min and max across repeats (NaN where no repeat has a value yet)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(band, axis=0), np.nanmin(band, axis=0), np.nanmax(band, axis=0)


def _grids(curves: dict[str, list[pd.DataFrame]]) -> dict[str, np.ndarray]:
    n = max(
        (int(c["number"].max()) + 1 for cs in curves.values() for c in cs if not c.empty), default=1
    )
    t = max((c["seconds"].max() for cs in curves.values() for c in cs if not c.empty), default=1.0)
    return {"trials": np.arange(1, n + 1), "seconds": np.linspace(0, t, 200)}


def _plot_png(curves: dict[str, list[pd.DataFrame]], path: Path, baseline: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grids = _grids(curves)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, (name, cs) in enumerate(curves.items()):
        for ax, x in zip(axes, ("trials", "seconds"), strict=True):
            band = _band(cs, x, grids[x])
            if band.size == 0:
                continue
            med, lo, hi = _stats(band)
            ax.plot(grids[x], med, color=f"C{i}", label=name)
            ax.fill_between(grids[x], lo, hi, color=f"C{i}", alpha=0.15)
    if baseline is not None:
        for ax in axes:
            ax.axhline(baseline, color="gray", linestyle="--", label="HistGradientBoosting")
    axes[0].set(xlabel="trials", ylabel="best value so far", title="Best so far by trials")
    axes[1].set(xlabel="seconds", title="Best so far by time")
    axes[0].legend(title="sampler (median, min-max band)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _plot_html(
    curves: dict[str, list[pd.DataFrame]], board: pd.DataFrame, path: Path, baseline: float | None
) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    grids = _grids(curves)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("by trials", "by seconds"))
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    for i, (name, cs) in enumerate(curves.items()):
        color = palette[i % len(palette)]
        for col, x in ((1, "trials"), (2, "seconds")):
            band = _band(cs, x, grids[x])
            if band.size == 0:
                continue
            med, lo, hi = _stats(band)
            xs = list(grids[x])
            fig.add_trace(
                go.Scatter(
                    x=xs + xs[::-1],
                    y=list(hi) + list(lo[::-1]),
                    fill="toself",
                    line={"width": 0},
                    fillcolor=color,
                    opacity=0.15,
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(x=xs, y=med, name=name, line={"color": color}, showlegend=col == 1),
                row=1,
                col=col,
            )
    if baseline is not None:
        for col in (1, 2):
            fig.add_hline(y=baseline, line_dash="dash", line_color="gray", row=1, col=col)
        fig.add_annotation(
            text=f"dashed: HistGradientBoosting baseline {baseline:.4g}",
            xref="paper", yref="paper", x=0, y=1.12, showarrow=False,
        )  # fmt: skip
    fig.update_yaxes(title_text="best value so far", row=1, col=1)
    html = (
        "<!doctype html><html><head><meta charset='utf-8'><title>dnntune compare</title>"
        "</head><body><h1>Sampler comparison</h1>"
        + board.to_html(index=False, border=0)
        + fig.to_html(full_html=False, include_plotlyjs=True)
        + "</body></html>"
    )
    with atomic_path(path) as tmp:
        tmp.write_text(html, encoding="utf-8")
