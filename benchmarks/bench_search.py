"""Search quality per wall-clock second: the original study against ``dnntune tune``.

In one run on the hotel data, with the same wall-clock budget per side:

(a) a faithful re-creation of the original study: TPE over the classic space (optimizer
    {Adam, SGD, AdamW}, 1-7 layers x 16-128 units, dropout 0.1-0.5, learning rate 1e-5-1e-3 log),
    each trial 8 epochs on fold 0 through the original per-row pipeline of
    ``bench_engine.py`` (per-row Dataset, DataLoader, Sigmoid + BCELoss), no pruning; its value
    is the validation ROC-AUC on probabilities (the original computed it on thresholded outputs);
(b) ``dnntune tune`` with its defaults (5-fold CV, median pruning, warm start), ``--timeout``.

Printed: the best validation ROC-AUC each side reached (fold 0 for (a), the 5-fold mean for
(b)), the seconds each needed to reach (a)'s final best, and the ratio. The last line is one
JSON object: ``auc_original``, ``auc_dnntune``, ``time_to_original_best_s``, ``speedup``,
``budget_s``.

    python benchmarks/bench_search.py                 # 600 s per side
    python benchmarks/bench_search.py --budget 120
"""

from __future__ import annotations

import argparse
import json
import math
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
from dnntune.data import build_dataset, load_table
from dnntune.objective import prepare_fold

DROP = ("reservation_status", "reservation_status_date")


def original_study(budget: float, data: Path) -> list[tuple[float, float]]:
    """(seconds since start, value) of each finished trial of the re-created original study."""
    dataset = build_dataset(load_table(str(data)), target=("is_canceled",), drop=DROP, folds=5)
    fold = prepare_fold(dataset, 0, torch.device("cpu")).tensors
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


def dnntune_study(budget: float, data: Path, workdir: Path) -> list[tuple[float, float]]:
    """(seconds since the command started, value) of each completed dnntune trial."""
    start = time.time()
    subprocess.run(
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
            "--output-dir",
            str(workdir / "run"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    study = optuna.load_study(
        study_name="hotel_bookings-is_canceled", storage=f"sqlite:///{workdir / 'run' / 'study.db'}"
    )
    return sorted(
        (t.datetime_complete.timestamp() - start, t.value)
        for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        if t.datetime_complete is not None and t.value is not None
    )


def time_to(curve: list[tuple[float, float]], target: float) -> float:
    for seconds, value in curve:
        if value >= target:
            return seconds
    return math.nan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=600.0, help="seconds per side")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)
    original = original_study(args.budget, args.data)
    with tempfile.TemporaryDirectory() as tmp:
        ours = dnntune_study(args.budget, args.data, Path(tmp))
    auc_a = max((v for _, v in original), default=math.nan)
    auc_b = max((v for _, v in ours), default=math.nan)
    t_a = time_to(original, auc_a)
    t_b = time_to(ours, auc_a)
    speedup = t_a / t_b if t_b and not math.isnan(t_b) else math.nan
    print(
        f"(a) original study : {len(original)} trials, best val ROC-AUC {auc_a:.4f} "
        f"(fold 0), reached after {t_a:.0f} s"
    )
    print(
        f"(b) dnntune tune   : {len(ours)} completed trials, best CV ROC-AUC {auc_b:.4f} "
        f"(5-fold mean); reached (a)'s best after {t_b:.0f} s"
    )
    print(f"time to (a)'s final best: {speedup:.1f}x sooner; final best +{auc_b - auc_a:.4f}")
    print(
        json.dumps(
            {
                "auc_original": round(auc_a, 4),
                "auc_dnntune": round(auc_b, 4),
                "time_to_original_best_s": round(t_b, 1) if not math.isnan(t_b) else None,
                "time_original_s": round(t_a, 1),
                "speedup": round(speedup, 2) if not math.isnan(speedup) else None,
                "budget_s": args.budget,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
