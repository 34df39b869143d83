"""Quality on rows the study never saw: dnntune beside gradient boosting (and AutoGluon).

For each table of ``../shared/data`` (25; targets and leaking columns as its README names
them), in one run:

* the table split 80/20 (seed 0; stratified for classes), as ``bench_budget.py`` splits it;
* ``dnntune tune --timeout B`` through its real CLI on the 80% (its defaults otherwise), and
  ``dnntune evaluate`` of the delivered model on the 20%, beside scikit-learn's
  ``HistGradientBoosting`` with its defaults fitted on the same 80% (evaluate's baseline);
* LightGBM with its defaults on the same 80% (pandas categories for text columns), and, when
  ``autogluon.tabular`` is installed, AutoGluon's ``TabularPredictor`` with its default preset
  and ``time_limit=B``; both scored on the 20% with dnntune's metric for the task.

``HELD_BACK`` tables are kept out of every decision about dnntune's defaults: they are the
final check, reported apart. Printed: one row per table, the wins and the mean relative
difference (in dnntune's favour) against each competitor for the development and the held-back
tables, then one JSON line.

    python benchmarks/bench_test_rows.py                         # 180 s per table, all 25
    python benchmarks/bench_test_rows.py --budget 60 --tables credit_g,spam7
    python benchmarks/bench_test_rows.py --tables held-back      # the final check alone
    python benchmarks/bench_test_rows.py --tune-option=--pruner=hyperband  # another default
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_budget import ALL_TABLES, _name, run_table
from bench_quality import Table, choose_tables

# Kept out of every decision about defaults (a third of the 25, every task): the final check.
HELD_BACK = (
    "crash_deaths", "credit_default", "spam7", "poverty_views", "cracker_choice",
    "medical_expenses", "texas_housing", "cps_earnings",
)  # fmt: skip


def _frame_xy(path: Path, table: Table) -> tuple[pd.DataFrame, pd.Series]:
    frame = pd.read_csv(path, low_memory=False)
    y = frame[table.target]
    x = frame.drop(columns=[table.target, *table.drop], errors="ignore")
    return x, y


def _categories(train: pd.DataFrame, test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Text columns as pandas categories (the training rows' levels) for LightGBM."""
    train, test = train.copy(), test.copy()
    for name in train.columns:
        if not pd.api.types.is_numeric_dtype(train[name]):
            levels = train[name].astype("string").dropna().unique()
            train[name] = pd.Categorical(train[name].astype("string"), categories=levels)
            # A level the training rows never had is missing, as LightGBM reads it.
            values = test[name].astype("string")
            values = values.where(values.isin(levels))
            test[name] = pd.Categorical(values, categories=levels)
    return train, test


def _truth(y: pd.Series, manifest: dict) -> np.ndarray:
    """The test target as evaluate encodes it: class codes in the model's class order."""
    from dnntune.data import class_label

    if manifest["task"] == "regression":
        return y.to_numpy(np.float64)
    codes = {str(class_label(c)): i for i, c in enumerate(manifest["classes"])}
    return y.map(lambda v: codes[str(class_label(v))]).to_numpy(np.int64)


def _proba_in_model_order(proba: np.ndarray, classes: list, manifest: dict) -> np.ndarray:
    from dnntune.data import class_label

    where = {str(class_label(c)): j for j, c in enumerate(classes)}
    out = np.column_stack([proba[:, where[str(class_label(c))]] for c in manifest["classes"]])
    return out[:, 1] if manifest["task"] == "binary" else out


def lightgbm_score(table: Table, folder: Path, manifest: dict, metric: str) -> float | None:
    try:
        import lightgbm
    except ImportError:
        return None
    from dnntune.config import Task
    from dnntune.evaluate import score

    name = _name(table)
    x_train, y_train = _frame_xy(folder / f"{name}-train.csv", table)
    x_test, y_test = _frame_xy(folder / f"{name}-test.csv", table)
    x_train, x_test = _categories(x_train, x_test)
    task = Task(manifest["task"])
    if task is Task.REGRESSION:
        model = lightgbm.LGBMRegressor(verbose=-1, random_state=0).fit(x_train, y_train)
        predictions = model.predict(x_test)
    else:
        from dnntune.data import class_label

        labels = y_train.map(lambda v: str(class_label(v)))
        model = lightgbm.LGBMClassifier(verbose=-1, random_state=0).fit(x_train, labels)
        proba = model.predict_proba(x_test)
        predictions = _proba_in_model_order(proba, list(model.classes_), manifest)
    return score(metric, _truth(y_test, manifest), predictions, task)


_AUTOGLUON_METRICS = {
    "roc_auc": "roc_auc", "logloss": "log_loss", "rmse": "root_mean_squared_error",
    "mae": "mean_absolute_error", "accuracy": "accuracy", "r2": "r2",
}  # fmt: skip


def autogluon_score(
    table: Table, folder: Path, manifest: dict, metric: str, budget: float
) -> float | None:
    try:
        from autogluon.tabular import TabularPredictor
    except ImportError:
        return None
    from dnntune.config import Task
    from dnntune.evaluate import score

    name = _name(table)
    train = pd.read_csv(folder / f"{name}-train.csv", low_memory=False)
    test = pd.read_csv(folder / f"{name}-test.csv", low_memory=False)
    train = train.drop(columns=list(table.drop), errors="ignore")
    task = Task(manifest["task"])
    problem = {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}
    predictor = TabularPredictor(
        label=table.target,
        problem_type=problem[task.value],
        eval_metric=_AUTOGLUON_METRICS.get(metric),
        path=str(folder / f"{name}-autogluon"),
        verbosity=0,
    ).fit(train, time_limit=budget)
    features = test.drop(columns=[table.target])
    if task is Task.REGRESSION:
        predictions = predictor.predict(features).to_numpy(np.float64)
    else:
        proba = predictor.predict_proba(features)
        predictions = _proba_in_model_order(proba.to_numpy(), list(proba.columns), manifest)
    return score(metric, _truth(test[table.target], manifest), predictions, task)


def relative(ours: float, theirs: float, direction: str) -> float:
    """In dnntune's favour: positive when it is better, whatever the direction."""
    if theirs is None or ours is None or math.isnan(theirs) or math.isnan(ours) or theirs == 0:
        return math.nan
    gain = ours - theirs if direction == "maximize" else theirs - ours
    return gain / abs(theirs)


def one_table(table: Table, budget: float, folder: Path, options: tuple[str, ...] = ()) -> dict:
    out = run_table(table, budget, folder, None, options)  # tune on 80%, evaluate on 20%
    out["held_back"] = out["table"] in HELD_BACK
    if "test" not in out:
        return out
    manifest = json.loads((folder / out["table"] / "model" / "manifest.json").read_text())
    summary = json.loads((folder / out["table"] / "summary.json").read_text())
    metric, direction = out["metric"], summary["direction"]
    out["direction"] = direction
    started = time.monotonic()
    out["lightgbm_test"] = lightgbm_score(table, folder, manifest, metric)
    out["lightgbm_s"] = round(time.monotonic() - started, 1)
    out["autogluon_test"] = autogluon_score(table, folder, manifest, metric, budget)
    for key in ("baseline", "lightgbm", "autogluon"):
        out[f"vs_{key}"] = relative(out["test"], out.get(f"{key}_test"), direction)
    return out


def _fmt(value: float | None, spec: str | None = None) -> str:
    """A score in 8 characters (4 decimals, fewer for large values), or '-'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if spec is None:
        spec = ".4f" if abs(value) < 1e3 else ".1f" if abs(value) < 1e6 else ".3g"
    return format(value, spec)


def _row(r: dict) -> str:
    if "test" not in r:
        return f"{r['table']:<22}{r['rows']:>8}  {r.get('error') or r.get('evaluate_error')}"
    return (
        f"{r['table']:<22}{r['rows']:>8}  {r['metric']:<8}{_fmt(r['test']):>10}"
        f"{_fmt(r.get('baseline_test')):>10}{_fmt(r.get('lightgbm_test')):>10}"
        f"{_fmt(r.get('autogluon_test')):>10}  {_fmt(r['vs_baseline'], '+.1%'):>7}"
        f"{_fmt(r['vs_lightgbm'], '+.1%'):>8}{_fmt(r['vs_autogluon'], '+.1%'):>8}"
        f"{'  held back' if r['held_back'] else ''}"
    )


def standing(rows: list[dict]) -> dict:
    """Wins (at or above) and the mean relative difference against each competitor."""
    out: dict = {"tables": len(rows)}
    for key in ("baseline", "lightgbm", "autogluon"):
        diffs = [r[f"vs_{key}"] for r in rows if not math.isnan(r.get(f"vs_{key}", math.nan))]
        out[key] = {
            "compared": len(diffs),
            "at_or_above": sum(d >= 0 for d in diffs),
            "mean_relative_difference": float(np.mean(diffs)) if diffs else None,
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=180.0, help="--timeout of each run")
    parser.add_argument(
        "--tables", help="comma-separated names, 'held-back' or 'development' (default: all 25)"
    )
    parser.add_argument("--keep", type=Path, help="keep the run folders here")
    parser.add_argument(
        "--tune-option",
        action="append",
        default=[],
        metavar="OPTION",
        help="another option of dnntune tune, to try a default: --tune-option=--pruner=hyperband",
    )
    args = parser.parse_args(argv)
    wanted = args.tables
    if wanted in ("held-back", "development"):
        pick = set(HELD_BACK)
        keep = (lambda n: n in pick) if wanted == "held-back" else (lambda n: n not in pick)
        wanted = ",".join(_name(t) for t in ALL_TABLES if keep(_name(t)))
    tables = choose_tables(parser, ALL_TABLES, wanted)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-test-rows-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(
        f"{'table':<22}{'rows':>8}  {'metric':<8}{'dnntune':>10}{'HGB':>10}{'LightGBM':>10}"
        f"{'AutoGl.':>10}  {'vs HGB':>7}{'vs LGBM':>8}{'vs AG':>8}",
        flush=True,
    )
    results = []
    try:
        for table in tables:
            results.append(one_table(table, args.budget, folder, tuple(args.tune_option)))
            print(_row(results[-1]), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    scored = [r for r in results if "test" in r]
    summary = {
        "budget_s": args.budget,
        "tune_options": args.tune_option,
        "tables": results,
        "development": standing([r for r in scored if not r["held_back"]]),
        "held_back": standing([r for r in scored if r["held_back"]]),
    }
    for group in ("development", "held_back"):
        s = summary[group]
        if not s["tables"]:
            continue
        parts = [
            f"{name} {s[key]['at_or_above']}/{s[key]['compared']} "
            f"(mean {_fmt(s[key]['mean_relative_difference'], '+.1%')})"
            for key, name in (("baseline", "HGB"), ("lightgbm", "LightGBM"), ("autogluon", "AG"))
            if s[key]["compared"]
        ]
        print(f"{group}: {s['tables']} tables; at or above " + ", ".join(parts))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
