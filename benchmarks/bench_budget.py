"""The time limit kept on every table: ``dnntune tune --timeout B`` returns a model in time.

For each of the 25 tables of ``../shared/data`` (their targets and leaking columns as its
README names them), in one run:

* the table split 80/20 (seed 0; stratified on the target for classes), the 80% written as
  the study's data, the 20% as held-out rows;
* ``dnntune tune --timeout B`` through its real CLI on the 80% (its defaults otherwise, the
  report included), timed as a whole process: start to exit, imports and data reading
  included;
* ``dnntune evaluate`` of the run on the 20% (the baseline fitted on the 80%), timed too.

Printed: one row per table (rows, task, the command's wall time, the seconds over the budget,
the trials that completed or were cut, what was delivered, the delivered model's score on the
held-out rows beside the baseline's), then one JSON line::

    {"budget_s": ..., "tables": [{"table": ..., "wall_s": ..., "over_s": ..., "model": ...,
     "test": ..., "baseline_test": ...}, ...], "max_over_s": ..., "with_model": N}

    python benchmarks/bench_budget.py                       # 30 s per table, all 25 tables
    python benchmarks/bench_budget.py --tables credit_g,diamonds --budget 20
    python benchmarks/bench_budget.py --tables none --extra /data/fair.csv:had_affair \
        --extra /data/abalone.csv:rings:regression          # tables from elsewhere
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import DATA, TABLES, Table, choose_tables

# The twelve tables added to ../shared/data for held-out checks (targets from its README).
MORE_TABLES = (
    Table("cps_earnings.csv.gz", "earnings"),
    Table("nyc_flights.csv.gz", "arr_delay"),
    Table("crash_deaths.csv.gz", "dead", ("weight",)),
    Table("doctor_visits.csv.gz", "docvis"),
    Table("credit_default.csv.gz", "default"),
    Table("health_insurance.csv.gz", "insurance"),
    Table("poverty_views.csv.gz", "poverty"),
    Table("medical_expenses.csv.gz", "med"),
    Table("resume_callbacks.csv.gz", "received_callback"),
    Table("cracker_choice.csv.gz", "choice"),
    Table("texas_housing.csv.gz", "median"),
    Table("spam7.csv.gz", "yesno"),
)
ALL_TABLES = (*TABLES, *MORE_TABLES)


def _name(table: Table) -> str:
    return Path(table.file).name.split(".")[0]


def _split(table: Table, folder: Path) -> tuple[Path, Path, int]:
    """The table's 80% and 20% as CSV files (stratified for a target of few values)."""
    from sklearn.model_selection import train_test_split

    sep = "\t" if ".tsv" in table.file else ","
    frame = pd.read_csv(DATA / table.file, sep=sep, low_memory=False)
    frame = frame.loc[frame[table.target].notna()]
    y = frame[table.target]
    few = y.nunique() <= 30 and y.value_counts().min() >= 2
    train, test = train_test_split(
        frame, test_size=0.2, random_state=0, stratify=y if few else None
    )
    paths = folder / f"{_name(table)}-train.csv", folder / f"{_name(table)}-test.csv"
    train.to_csv(paths[0], index=False)
    test.to_csv(paths[1], index=False)
    return paths[0], paths[1], len(frame)


def _timed(args: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    return proc, time.monotonic() - started


def run_table(
    table: Table,
    budget: float,
    folder: Path,
    task: str | None = None,
    options: tuple[str, ...] = (),
) -> dict:
    """Tune on the table's 80% (``options``: more ``dnntune tune`` options), evaluate on 20%."""
    train, test, rows = _split(table, folder)
    run = folder / _name(table)
    tune = [
        sys.executable, "-m", "dnntune", "tune", "--data", str(train),
        "--target", table.target, "--timeout", str(budget), "--output-dir", str(run),
        "--no-progress",
    ]  # fmt: skip
    if table.drop:
        tune += ["--drop", ",".join(table.drop)]
    if task:
        tune += ["--task", task]
    tune += list(options)
    proc, wall = _timed(tune)
    out = {"table": _name(table), "rows": rows, "wall_s": round(wall, 1)}
    out["over_s"] = round(wall - budget, 1)
    out["exit_code"] = proc.returncode
    if proc.returncode != 0:
        out["error"] = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "?"
        return out
    summary = json.loads((run / "summary.json").read_text())
    manifest = json.loads((run / "model" / "manifest.json").read_text())
    members = manifest["members"]
    out["task"] = summary["task"]
    out["trials"] = summary["trials"]
    out["model"] = (
        "cut trial" if manifest.get("cut_by_deadline")
        else f"ensemble of {len(members)}" if len(members) > 1 else "trial"
    )  # fmt: skip
    evaluate = [sys.executable, "-m", "dnntune", "evaluate", str(run), "--data", str(test)]
    proc, seconds = _timed(evaluate)
    out["evaluate_s"] = round(seconds, 1)
    if proc.returncode != 0:
        out["evaluate_error"] = proc.stderr.strip().splitlines()[-1]
        return out
    board = json.loads((run / "evaluation.json").read_text())
    metric = board["metric"]
    for row in board["leaderboard"]:
        if row["candidate"].startswith("delivered model"):
            out["test"] = row[metric]
        elif row["candidate"].startswith("baseline"):
            out["baseline_test"] = row[metric]
    out["metric"] = metric
    return out


def _row(r: dict) -> str:
    if "error" in r:
        return f"{r['table']:<22}{r['rows']:>8}  exit {r['exit_code']}: {r['error']}"
    trials = r["trials"]
    done = f"{trials.get('complete', 0)}+{trials.get('cut', 0)}cut"
    test = "" if r.get("test") is None else f"{r['metric']} {r['test']:.4f}"
    base = "" if r.get("baseline_test") is None else f"{r['baseline_test']:.4f}"
    return (
        f"{r['table']:<22}{r['rows']:>8}  {r['task']:<11}{r['wall_s']:>7.1f}{r['over_s']:>+7.1f}"
        f"  {done:<9}{r['model']:<15}{test:<18}{base:<8}{r.get('evaluate_s', 0):>6.1f}"
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=30.0, help="--timeout of each run")
    parser.add_argument("--tables", help="comma-separated table names (default: all 25)")
    parser.add_argument("--keep", type=Path, help="keep the run folders here")
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        help="another table, PATH:TARGET[:TASK] (repeatable)",
    )
    args = parser.parse_args(argv)
    tables = choose_tables(parser, ALL_TABLES, args.tables)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-budget-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(
        f"{'table':<22}{'rows':>8}  {'task':<11}{'wall s':>7}{'over':>7}  {'trials':<9}"
        f"{'model':<15}{'held-out':<18}{'HGB':<8}{'eval s':>6}",
        flush=True,
    )
    runs: list[tuple[Table, str | None]] = [(t, None) for t in tables]
    for extra in args.extra:
        path, target, *task = extra.split(":")
        runs.append((Table(str(Path(path).resolve()), target), task[0] if task else None))
    results = []
    try:
        for table, task in runs:
            results.append(run_table(table, args.budget, folder, task))
            print(_row(results[-1]), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    summary = {
        "budget_s": args.budget,
        "tables": results,
        "max_over_s": max((r["over_s"] for r in results), default=0.0),
        "with_model": sum("model" in r for r in results),
    }
    print(
        f"{summary['with_model']} of {len(results)} tables delivered a model; the longest run "
        f"ended {summary['max_over_s']:+.1f} s from the {args.budget:g} s budget"
    )
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
