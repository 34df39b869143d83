"""Quality on many kinds of tables: ``dnntune tune`` against gradient boosting on the same folds.

For each table of ``../shared/data`` (binary, multiclass and regression; 1k to 120k rows;
numbers, categories, missing values, dates), in one run:

* ``dnntune tune`` through its real CLI, with ``--timeout BUDGET`` (its defaults otherwise:
  5 folds, TPE, median pruning, the default space), the table's leaking columns dropped;
* scikit-learn's ``HistGradientBoosting`` with its defaults, cross-validated by that same study
  on exactly its folds with its metric (``dnntune.baseline``: the study's ``baseline``; when a
  short budget left the study no time for it, computed here on the same folds).

Both scores are the mean of the 5 fold scores (ROC-AUC, log loss or RMSE: dnntune's default
metric for the task). ``dnntune`` is the best trial's cross-validated value; the ensemble
column is the delivered model's out-of-fold score beside the best trial's (pooled over all
rows), when the ensemble was selected. Printed: one row per table (table, metric, dnntune,
baseline, relative difference in dnntune's favour, trials), then one JSON line::

    {"budget_s": ..., "space": ..., "tables": [{"table": ..., "metric": ..., "dnntune": ...,
     "baseline": ..., "at_or_above": true|false, ...}, ...], "at_or_above": N,
     "mean_relative_difference": ...}

    python benchmarks/bench_quality.py                          # 180 s per table, all tables
    python benchmarks/bench_quality.py --tables credit_g,ames_housing --budget 60
    python benchmarks/bench_quality.py --space classic          # another space (or a file)
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class Table:
    file: str
    target: str
    drop: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.file.split(".")[0]


# Targets and leaking columns as ../shared/data/README.md names them.
HOTEL_LEAKS = ("reservation_status", "reservation_status_date")
LOANS_LEAKS = (
    "grade", "sub_grade", "installment", "issue_month", "loan_status", "initial_listing_status",
    "disbursement_method", "balance", "paid_total", "paid_principal", "paid_interest",
    "paid_late_fees",
)  # fmt: skip
TABLES = (
    Table("hotel_bookings.csv.gz", "is_canceled", HOTEL_LEAKS),
    Table("credit_g.tsv.gz", "target"),
    Table("wine_quality_white.tsv.gz", "target"),
    Table("diamonds.csv.gz", "price"),
    Table("ames_housing.csv.gz", "Sale_Price"),
    Table("chicago_ridership.csv.gz", "ridership"),
    Table("credit_data.csv.gz", "Status"),
    Table("telco_churn.csv.gz", "churn"),
    Table("caravan.csv.gz", "Purchase"),
    Table("stackoverflow_remote.csv.gz", "Remote"),
    Table("taxi_tips.csv.gz", "tip"),
    Table("hpc_jobs.csv.gz", "class"),
    Table("loans.csv.gz", "interest_rate", LOANS_LEAKS),
)


def run_table(table: Table, budget: float, space: str | None, folder: Path) -> dict:
    """Tune one table through the CLI; its scores and the baseline's, from summary.json."""
    run = folder / table.name
    args = [
        sys.executable, "-m", "dnntune", "tune",
        "--data", str(DATA / table.file), "--target", table.target,
        "--timeout", str(budget), "--output-dir", str(run), "--no-report",
    ]  # fmt: skip
    if table.drop:
        args += ["--drop", ",".join(table.drop)]
    if space:
        args += ["--space", space]
    started = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"dnntune tune failed on {table.file}:\n{proc.stderr[-3000:]}")
    summary = json.loads((run / "summary.json").read_text())
    baseline = summary["baseline"] or _baseline(summary)
    direction = summary["direction"]
    best = summary["best_value"]
    value = math.nan if best is None else float(best)  # no trial completed in the budget
    base = float(baseline["value"])
    # In dnntune's favour: positive when it is better, whatever the direction.
    diff = (value - base) / abs(base) if direction == "maximize" else (base - value) / abs(base)
    ensemble = summary.get("ensemble") or {}
    return {
        "table": table.name,
        "metric": summary["metric"],
        "direction": direction,
        "dnntune": value,
        "baseline": base,
        "relative_difference": diff,
        "at_or_above": diff >= 0,
        "trials": summary["trials"].get("complete", 0),
        "trials_all": sum(summary["trials"].values()),
        "ensemble_oof": ensemble.get("value"),
        "best_trial_oof": (ensemble.get("best_trial") or {}).get("value"),
        "ensemble_delivered": ensemble.get("delivered"),
        "baseline_s": baseline["seconds"],
        "wall_s": round(seconds, 1),
    }


def _baseline(summary: dict) -> dict:
    """The baseline on the study's own folds, when the study skipped it (a budget too short
    for it to fit in a quarter of the time): computed here, as the study would have."""
    from dnntune.baseline import gbdt_baseline
    from dnntune.config import TuneConfig
    from dnntune.data import dataset_from_config
    from dnntune.engine import METRICS
    from dnntune.objective import fold_count

    config = TuneConfig.from_dict(summary["config"])
    dataset = dataset_from_config(config)
    metric = METRICS[summary["metric"]]
    n_folds = fold_count(config.training, dataset)
    return gbdt_baseline(dataset, metric, n_folds, seed=config.seed).to_dict()


def choose_tables(
    parser: argparse.ArgumentParser, known: tuple[Table, ...], wanted: str | None
) -> list[Table]:
    """The tables a ``--tables`` list names (all when None, none for ``none``), in order."""
    if wanted is None:
        return list(known)
    if wanted == "none":
        return []
    names = wanted.split(",")
    unknown = sorted(set(names) - {t.name for t in known})
    if unknown:
        parser.error(f"unknown tables {unknown}; known: {', '.join(t.name for t in known)}")
    return [t for t in known if t.name in names]


def _row(r: dict) -> str:
    return (
        f"{r['table']:<22}{r['metric']:<10}{r['dnntune']:>12.4f}{r['baseline']:>12.4f}"
        f"{100 * r['relative_difference']:>+9.2f}%{r['trials']:>5}/{r['trials_all']:<4}"
        f"{'' if r['ensemble_oof'] is None else format(r['ensemble_oof'], '.4f'):>12}"
        f"{'' if r['best_trial_oof'] is None else format(r['best_trial_oof'], '.4f'):>12}"
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=180.0, help="seconds per table")
    parser.add_argument("--tables", help="comma-separated table names (default: all)")
    parser.add_argument("--space", help="a named space or a space file (default: default)")
    parser.add_argument("--keep", type=Path, help="keep the run folders here")
    args = parser.parse_args(argv)
    tables = choose_tables(parser, TABLES, args.tables)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-quality-"))
    results = []
    head = f"{'table':<22}{'metric':<10}{'dnntune':>12}{'baseline':>12}{'diff':>10}"
    print(f"{head}{'trials':>10}{'ens oof':>12}{'best oof':>12}", flush=True)
    try:
        for table in tables:
            results.append(run_table(table, args.budget, args.space, folder))
            print(_row(results[-1]), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    diffs = [r["relative_difference"] for r in results]
    summary = {
        "budget_s": args.budget,
        "space": args.space or "default",
        "tables": results,
        "at_or_above": sum(r["at_or_above"] for r in results),
        "mean_relative_difference": sum(diffs) / len(diffs) if diffs else math.nan,
    }
    print(
        f"at or above the baseline on {summary['at_or_above']} of {len(results)} tables; "
        f"mean relative difference {100 * summary['mean_relative_difference']:+.2f}%"
    )
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
