"""Search quality per wall-clock second: the original study against ``dnntune tune``.

In one run on the hotel data, with the same wall-clock budget per side:

(a) a faithful re-creation of the original study: TPE over the classic space (optimizer
    {Adam, SGD, AdamW}, 1-7 layers x 16-128 units, dropout 0.1-0.5, learning rate 1e-5-1e-3 log),
    each trial 8 epochs on fold 0 through the original per-row pipeline of
    ``bench_engine.py`` (per-row Dataset, DataLoader, Sigmoid + BCELoss), no pruning, on plainly
    encoded inputs (standardized numbers, one-hot categories: no quantile bins); its value is the
    best validation ROC-AUC of its 8 epochs, on probabilities (the original computed it on
    thresholded outputs);
(b) ``dnntune tune`` with its defaults (5-fold CV, median pruning, warm start), ``--timeout``.

Both sides use the same fold 0 (dnntune's stratified split, seed 42; with
``--group-duplicates``, its split that keeps identical rows in one fold), so a score on it means
the same thing on both sides. (b) has reached a value when one of its models scored it on the
fold-0 validation rows (an epoch's score, as (a)'s value is), or when a trial's 5-fold mean
did; the time of each fold-0 score comes from the trial's ``report_seconds`` timeline. (b)'s
clock includes starting Python and reading the table; (a)'s starts after its data is ready.

Printed: the best validation ROC-AUC each side reached (fold 0 for (a), the 5-fold mean for
(b)), the seconds each needed to reach (a)'s final best, and the ratio. The last line is one
JSON object: ``auc_original``, ``auc_dnntune``, ``time_to_original_best_s``, ``speedup``,
``budget_s`` (and ``time_to_original_best_cv_s``: the first 5-fold mean at or above it).

    python benchmarks/bench_search.py                 # 600 s per side
    python benchmarks/bench_search.py --budget 120 --keep /tmp/bench-run
    python benchmarks/bench_search.py --group-duplicates   # both sides on grouped folds
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
from pathlib import Path

import numpy as np
import optuna
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import DATA, OriginalModel, RowDataset
from dnntune.config import Columns, Preprocessing
from dnntune.data import build_dataset, load_table, prepare_fold
from dnntune.objective import epoch_slot
from dnntune.space import default_space

DROP = ("reservation_status", "reservation_status_date")


def original_study(
    budget: float, data: Path, group_duplicates: bool = False
) -> list[tuple[float, float]]:
    """(seconds since start, value) of each finished trial of the re-created original study."""
    columns = Columns(target=("is_canceled",), drop=DROP, group_duplicates=group_duplicates)
    dataset = build_dataset(load_table(str(data)), columns, seed=42)
    plain = Preprocessing(numeric_bins=0, copy_encoding=False)  # the original's inputs
    fold = prepare_fold(dataset, 0, torch.device("cpu"), plain).tensors
    x_train, y_train = fold.x_train.numpy(), fold.y_train.numpy()[:, 0]
    x_valid, y_valid = fold.x_valid.numpy(), fold.y_valid_eval.astype(np.float32)
    start = time.perf_counter()
    done: list[tuple[float, float]] = []
    optimizers = {"Adam": torch.optim.Adam, "SGD": torch.optim.SGD, "AdamW": torch.optim.AdamW}

    def objective(trial: optuna.Trial) -> float:
        params = {
            "optimizer": trial.suggest_categorical("optimizer", ["Adam", "SGD", "AdamW"]),
            "num_layers": trial.suggest_int("num_layers", 1, 7),
            "hidden_size": trial.suggest_int("hidden_size", 16, 128),
            "dropout": trial.suggest_float("dropout", 0.1, 0.5),
            "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True),
        }
        model = OriginalModel(
            x_train.shape[1], 1, params["num_layers"], params["hidden_size"], params["dropout"]
        )
        opt = optimizers[params["optimizer"]](model.parameters(), lr=params["learning_rate"])
        loss_fn = nn.BCELoss()
        train = DataLoader(RowDataset(x_train, y_train), batch_size=512, shuffle=True)
        valid = DataLoader(RowDataset(x_valid, y_valid), batch_size=512)
        best = 0.0
        for _ in range(8):
            model.train()
            for batch in train:
                opt.zero_grad()
                loss = loss_fn(model(batch["x"]), batch["y"].view(-1, 1))
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                preds = np.concatenate([model(b["x"]).numpy()[:, 0] for b in valid])
            best = max(best, float(roc_auc_score(y_valid, preds)))
        return best

    def record(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.value is not None:
            done.append((time.perf_counter() - start, trial.value))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, timeout=budget, callbacks=[record])
    return done


def dnntune_study(
    budget: float, data: Path, workdir: Path, group_duplicates: bool = False
) -> tuple[list[tuple[float, float]], list[tuple[float, float]], str]:
    """The dnntune run: (seconds since the command started, value) of its fold-0 scores and of
    its completed trials' CV means, and what the command printed."""
    start = time.time()
    grouped = ["--group-duplicates"] if group_duplicates else []
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dnntune",
            "tune",
            "--data",
            str(data),
            "--target",
            "is_canceled",
            "--drop",
            ",".join(DROP),
            "--timeout",
            str(budget),
            "--no-progress",
            "--no-report",
            "--no-baseline",  # the budget is the trials' alone, as the original study's
            "--output-dir",
            str(workdir / "run"),
            *grouped,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    study = optuna.load_study(
        study_name="hotel_bookings-is_canceled", storage=f"sqlite:///{workdir / 'run' / 'study.db'}"
    )
    slot = epoch_slot(default_space())  # steps 1..slot are fold 0's epochs
    fold0 = []
    for t in study.get_trials(deepcopy=False):
        begun = t.datetime_start.timestamp() - start if t.datetime_start else math.nan
        for step, seconds in t.user_attrs.get("report_seconds", []):
            if step <= slot and step in t.intermediate_values:
                fold0.append((begun + seconds, t.intermediate_values[step]))
    cv = [
        (t.datetime_complete.timestamp() - start, t.value)
        for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        if t.datetime_complete is not None and t.value is not None
    ]
    return sorted(fold0), sorted(cv), done.stdout + done.stderr


def time_to(curve: list[tuple[float, float]], target: float) -> float:
    for seconds, value in curve:
        if value >= target:
            return seconds
    return math.nan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=600.0, help="seconds per side")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--keep", type=Path, help="copy dnntune's run folder and output here")
    parser.add_argument(
        "--group-duplicates",
        action="store_true",
        help="both sides on folds that keep rows with identical features together (no "
        "validation row copies a training row)",
    )
    args = parser.parse_args(argv)
    original = original_study(args.budget, args.data, args.group_duplicates)
    with tempfile.TemporaryDirectory() as tmp:
        fold0, cv, output = dnntune_study(args.budget, args.data, Path(tmp), args.group_duplicates)
        if args.keep:
            shutil.copytree(Path(tmp) / "run", args.keep, dirs_exist_ok=True)
            (args.keep / "output.txt").write_text(output)
    auc_a = max((v for _, v in original), default=math.nan)
    auc_b = max((v for _, v in cv), default=math.nan)
    auc_b0 = max((v for _, v in fold0), default=math.nan)
    t_a = time_to(original, auc_a)
    t_cv = time_to(cv, auc_a)
    t_b = min(time_to(fold0, auc_a), t_cv, key=lambda t: math.inf if math.isnan(t) else t)
    speedup = t_a / t_b if t_b and not math.isnan(t_b) else math.nan
    print(
        f"(a) original study : {len(original)} trials, best val ROC-AUC {auc_a:.4f} "
        f"(fold 0), reached after {t_a:.0f} s"
    )
    print(
        f"(b) dnntune tune   : {len(cv)} completed trials, best CV ROC-AUC {auc_b:.4f} "
        f"(5-fold mean; {auc_b0:.4f} on fold 0); reached (a)'s best after {t_b:.1f} s on "
        f"fold 0, {t_cv:.0f} s as a 5-fold mean"
    )
    print(f"time to (a)'s final best: {speedup:.1f}x sooner; final best +{auc_b - auc_a:.4f}")
    print(
        json.dumps(
            {
                "auc_original": round(auc_a, 4),
                "auc_dnntune": round(auc_b, 4),
                "time_to_original_best_s": round(t_b, 1) if not math.isnan(t_b) else None,
                "time_to_original_best_cv_s": round(t_cv, 1) if not math.isnan(t_cv) else None,
                "time_original_s": round(t_a, 1),
                "speedup": round(speedup, 2) if not math.isnan(speedup) else None,
                "budget_s": args.budget,
                "group_duplicates": args.group_duplicates,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
