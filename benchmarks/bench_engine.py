"""Engine throughput: the original DNN-tuning scripts' training loop against dnntune's engine.

In one run, on the Hotel Booking Demand data (fold 0 of 5, leaking columns dropped, the same
preprocessed matrix for both sides):

(a) a faithful re-creation of the original pipeline: a per-row ``Dataset`` building a
    ``torch.tensor`` per row, a ``DataLoader``, ``n x [Linear, BatchNorm1d, Dropout, ReLU] +
    Linear + Sigmoid`` with ``BCELoss``, ``loss.item()`` per batch, evaluation through the same
    per-row loader;
(b) dnntune's engine (:func:`dnntune.engine.fit`) with the same architecture, optimizer,
    learning rate, batch size and epochs.

Each side is repeated and the median taken. Printed: train samples/s of each (evaluation of
each epoch included), the ratio (b)/(a), the achieved GFLOP/s of (b) against a matmul peak
measured in the same run, and the validation ROC-AUC of both. The last line is one JSON object.

    python benchmarks/bench_engine.py                 # full run (about 2 minutes here)
    python benchmarks/bench_engine.py --quick         # CI smoke test on a sample
    python benchmarks/bench_engine.py --batch-sizes 512,2048,8192
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dnntune._runtime import tune_allocator
from dnntune.config import Columns, MetricName, Preprocessing, Task
from dnntune.data import FoldTensors, build_dataset, load_table, prepare_fold
from dnntune.engine import METRICS, evaluate, fit, resolve_device
from dnntune.model import make_mlp

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hotel_bookings.csv.gz"
# The original study's best architecture.
NUM_LAYERS, HIDDEN, DROPOUT, LR = 5, 113, 0.40, 1e-3


# --- (a) the original scripts, re-created ------------------------------------------------
class RowDataset(Dataset):
    def __init__(self, features: np.ndarray, targets: np.ndarray) -> None:
        self.features = features
        self.targets = targets

    def __len__(self) -> int:
        return self.features.shape[0]

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        return {
            "x": torch.tensor(self.features[item, :], dtype=torch.float),
            "y": torch.tensor(self.targets[item], dtype=torch.float),
        }


class OriginalModel(nn.Module):
    def __init__(self, nfeatures: int, ntargets: int, nlayers: int, hidden: int, p: float):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(nlayers):
            layers += [
                nn.Linear(nfeatures if i == 0 else hidden, hidden),
                nn.BatchNorm1d(hidden),
                nn.Dropout(p),
                nn.ReLU(),
            ]
        layers += [nn.Linear(hidden, ntargets), nn.Sigmoid()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def run_original(
    data: FoldTensors, *, batch_size: int, epochs: int, seed: int
) -> tuple[float, float]:
    torch.manual_seed(seed)
    x_train = data.x_train.cpu().numpy()
    y_train = data.y_train.cpu().numpy()[:, 0]
    x_valid = data.x_valid.cpu().numpy()
    train_loader = DataLoader(RowDataset(x_train, y_train), batch_size=batch_size, shuffle=True)
    valid_loader = DataLoader(
        RowDataset(x_valid, data.y_valid_eval.astype(np.float32)), batch_size=batch_size
    )
    model = OriginalModel(x_train.shape[1], 1, NUM_LAYERS, HIDDEN, DROPOUT)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    loss_fn = nn.BCELoss()
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        final_loss = 0.0
        for batch in train_loader:
            optimizer.zero_grad()
            outputs = model(batch["x"])
            loss = loss_fn(outputs, batch["y"].view(-1, 1))
            loss.backward()
            optimizer.step()
            final_loss += loss.item()
        model.eval()
        preds = []
        with torch.no_grad():
            for batch in valid_loader:
                preds.append(model(batch["x"]).numpy()[:, 0])
        auc = roc_auc_score(data.y_valid_eval, np.concatenate(preds))
    elapsed = time.perf_counter() - start
    return x_train.shape[0] * epochs / elapsed, float(auc)


# --- (b) dnntune -----------------------------------------------------------------------------
def run_dnntune(
    data: FoldTensors,
    *,
    batch_size: int,
    epochs: int,
    seed: int,
    torch_dropout: bool = False,
    flat_parameters: bool = True,
) -> tuple[float, float]:
    """dnntune's engine; the keyword switches undo one optimization each (for the ablation)."""
    torch.manual_seed(seed)
    model = make_mlp(
        d_in=data.x_train.shape[1],
        d_out=1,
        num_layers=NUM_LAYERS,
        hidden_size=HIDDEN,
        dropout=DROPOUT,
    ).to(data.x_train.device)
    if torch_dropout:
        for i, layer in enumerate(model):
            if isinstance(layer, nn.Dropout):
                model[i] = nn.Dropout(layer.p)
    start = time.perf_counter()
    result = fit(
        model,
        data,
        metric=METRICS[MetricName.ROC_AUC],
        optimizer="AdamW",
        learning_rate=LR,
        weight_decay=0.01,
        batch_size=batch_size,
        epochs=epochs,
        patience=epochs,
        generator=torch.Generator(device=data.x_train.device).manual_seed(seed),
        flat_parameters=flat_parameters,
    )
    if data.x_train.is_cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return data.n_train * epochs / elapsed, result.history[-1]


def flops_per_sample(d_in: int) -> float:
    """Forward + backward of the Linear layers: 6 x multiply-adds per sample."""
    macs = d_in * HIDDEN + (NUM_LAYERS - 1) * HIDDEN * HIDDEN + HIDDEN
    return 6.0 * macs


def matmul_peak_gflops(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = 0.0
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def _median(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def eval_share(data: FoldTensors, samples_per_s: float) -> float:
    """Time of one evaluation pass (forward + ROC-AUC) as a share of a training epoch."""
    model = make_mlp(
        d_in=data.x_train.shape[1],
        d_out=1,
        num_layers=NUM_LAYERS,
        hidden_size=HIDDEN,
        dropout=DROPOUT,
    ).to(data.x_train.device)
    metric = METRICS[MetricName.ROC_AUC]
    evaluate(model, data, metric)
    start = time.perf_counter()
    for _ in range(5):
        evaluate(model, data, metric)
    per_eval = (time.perf_counter() - start) / 5
    return per_eval / (data.n_train / samples_per_s)


def load_fold(args: argparse.Namespace, device: torch.device):
    table = load_table(str(args.data))
    if args.quick:
        table = type(table)(
            table.frame.sample(8000, random_state=0).reset_index(drop=True), table.source
        )
    columns = Columns(
        target=("is_canceled",), drop=("reservation_status", "reservation_status_date")
    )
    dataset = build_dataset(table, columns, seed=42)
    # The original pipeline's inputs: standardized numbers and one-hot categories, no bins.
    plain = Preprocessing(numeric_bins=0, copy_encoding=False)
    return dataset, prepare_fold(dataset, 0, device, plain).tensors


def main(argv: list[str] | None = None) -> int:
    tune_allocator()  # as the dnntune command does (DNNTUNE_TUNE_MALLOC=0: the ablation's child)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--batch-size",
        type=int,
        default=512,
        help="batch size of the head-to-head comparison (default 512)",
    )
    parser.add_argument(
        "--batch-sizes",
        default="512,1024,2048,4096,8192",
        help="batch sizes tried for dnntune's best share of the matmul peak",
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 8,000 rows, 1 epoch, 1 repeat"
    )
    parser.add_argument("--no-ablation", action="store_true", help="skip the ablation rows")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--engine-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.repeats, args.batch_sizes = 1, 1, str(args.batch_size)

    device = resolve_device(args.device)
    dataset, data = load_fold(args, device)

    def ours(batch_size: int, **switches: bool) -> tuple[float, float]:
        # One unmeasured epoch first: a new batch size brings new tensor sizes to the allocator.
        run_dnntune(data, batch_size=batch_size, epochs=1, seed=98, **switches)
        return _median(
            [
                run_dnntune(data, batch_size=batch_size, epochs=args.epochs, seed=r, **switches)
                for r in range(args.repeats)
            ]
        )

    if args.engine_only:  # child process of the allocator ablation
        run_dnntune(data, batch_size=args.batch_size, epochs=2, seed=99)
        print(json.dumps({"samples_per_s": ours(args.batch_size)[0]}))
        return 0

    cpu = FoldTensors(
        data.x_train.cpu(), data.y_train.cpu(), data.x_valid.cpu(), data.y_valid_eval, Task.BINARY
    )
    d_in = data.x_train.shape[1]
    print(
        f"data: {dataset.n_rows} rows, fold 0: {data.n_train} train / {len(data.y_valid_eval)} "
        f"valid, {d_in} features; device {device}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"model: {NUM_LAYERS} x {HIDDEN}, dropout {DROPOUT}, AdamW lr {LR}; "
        f"{args.epochs} epochs x {args.repeats} repeats (medians)"
    )
    # Warm-up: the first epochs of a process pay one-off costs (allocator growth, kernel
    # selection); both sides get one unmeasured run.
    run_original(cpu, batch_size=args.batch_size, epochs=1, seed=99)
    run_dnntune(data, batch_size=args.batch_size, epochs=2, seed=99)
    # Interleave the two sides so that both see the same machine load.
    base_runs, ours_runs = [], []
    for r in range(args.repeats):
        base_runs.append(run_original(cpu, batch_size=args.batch_size, epochs=args.epochs, seed=r))
        ours_runs.append(run_dnntune(data, batch_size=args.batch_size, epochs=args.epochs, seed=r))
    base_sps, base_auc = _median(base_runs)
    ours_sps, ours_auc = _median(ours_runs)
    bs = args.batch_size
    print(
        f"(a) original pipeline  bs={bs:5d}: {base_sps:10,.0f} samples/s  "
        f"val ROC-AUC {base_auc:.4f}"
    )
    print(
        f"(b) dnntune engine     bs={bs:5d}: {ours_sps:10,.0f} samples/s  "
        f"val ROC-AUC {ours_auc:.4f}"
    )
    speedup = ours_sps / base_sps
    print(f"speed-up (b)/(a): {speedup:.2f}x")
    share = eval_share(data, ours_sps)
    print(f"evaluation (forward pass over the validation rows + ROC-AUC): {share:.1%} of an epoch")

    peak = matmul_peak_gflops(device)
    fps = flops_per_sample(d_in)
    best_bs, best_frac = bs, ours_sps * fps / 1e9 / peak
    print(f"matmul peak: {peak:.1f} GFLOP/s; model: {fps / 1e6:.3f} MFLOP per training sample")
    for size in [int(b) for b in args.batch_sizes.split(",")]:
        sps = ours_sps if size == bs else ours(size)[0]
        gflops = sps * fps / 1e9
        print(
            f"    dnntune bs={size:5d}: {sps:10,.0f} samples/s  {gflops:6.1f} GFLOP/s  "
            f"{gflops / peak:5.1%} of peak"
        )
        if gflops / peak > best_frac:
            best_bs, best_frac = size, gflops / peak
    ablation: dict[str, float] = {}
    if not args.no_ablation:
        print(f"ablation at bs={bs} (each row undoes one optimization of (b)):")
        rows = {
            "torch nn.Dropout mask": ours(bs, torch_dropout=True)[0],
            "per-tensor foreach optimizer": ours(bs, flat_parameters=False)[0],
        }
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--engine-only",
                "--batch-size",
                str(bs),
                "--epochs",
                str(args.epochs),
                "--repeats",
                str(args.repeats),
                "--data",
                str(args.data),
                "--device",
                args.device,
                *(["--quick"] if args.quick else []),
            ],
            env={**os.environ, "DNNTUNE_TUNE_MALLOC": "0"},
            capture_output=True,
            text=True,
            check=True,
        )
        rows["default glibc malloc"] = json.loads(child.stdout.strip().splitlines()[-1])[
            "samples_per_s"
        ]
        for name, sps in rows.items():
            ablation[name] = round(ours_sps / sps, 3)
            print(f"    without: {name:30s} {sps:10,.0f} samples/s  (b) is {ours_sps / sps:.2f}x")

    print(
        json.dumps(
            {
                "speedup": round(speedup, 3),
                "peak_fraction": round(best_frac, 3),
                "peak_batch_size": best_bs,
                "samples_per_s_baseline": round(base_sps),
                "samples_per_s_dnntune": round(ours_sps),
                "auc_baseline": round(base_auc, 4),
                "auc_dnntune": round(ours_auc, 4),
                "batch_size": bs,
                "eval_share": round(share, 4),
                "ablation_speedups": ablation,
                "matmul_peak_gflops": round(peak, 1),
                "device": str(device),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
