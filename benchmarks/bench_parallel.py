"""Trials per minute with 1 and 2 worker processes on this machine, in one run.

Both sides run the same study settings (credit_g, 5 folds, each trial a full cross-validation
of 20 epochs, no pruning, no early stopping, a fixed 3 x 128 architecture so that every trial
costs the same; optimizer, dropout and learning rate are tuned) for the same number of trials,
in fresh run folders:
(a) ``dnntune tune --jobs 1`` (one process, torch on all cores) and (b) ``dnntune tune --jobs 2``
(two worker processes sharing a journal file, torch threads split between them). The wall time
includes process start-up and data preparation. The last line is one JSON object.

    python benchmarks/bench_parallel.py               # 24 trials per side
    python benchmarks/bench_parallel.py --trials 8    # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "credit_g.tsv.gz"


def run(jobs: int, trials: int, data: Path, workdir: Path) -> float:
    cmd = [
        sys.executable,
        "-m",
        "dnntune",
        "tune",
        "--data",
        str(data),
        "--target",
        "target",
        "--trials",
        str(trials),
        "--jobs",
        str(jobs),
        "--pruner",
        "none",
        "--no-progress",
        "--no-report",
        "--no-warm-start",
        "--no-baseline",  # the workers' time only
        "--output-dir",
        str(workdir / f"jobs{jobs}"),
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} cores; {args.trials} trials per side on {args.data.name}")
    with tempfile.TemporaryDirectory() as tmp:
        one = run(1, args.trials, args.data, Path(tmp))
        two = run(2, args.trials, args.data, Path(tmp))
    per_min_1 = args.trials / one * 60
    per_min_2 = args.trials / two * 60
    print(f"(a) 1 worker : {one:6.1f} s  {per_min_1:6.1f} trials/min")
    print(f"(b) 2 workers: {two:6.1f} s  {per_min_2:6.1f} trials/min")
    print(f"speed-up (b)/(a): {per_min_2 / per_min_1:.2f}x")
    print(
        json.dumps(
            {
                "trials_per_min_1": round(per_min_1, 2),
                "trials_per_min_2": round(per_min_2, 2),
                "speedup": round(per_min_2 / per_min_1, 3),
                "trials": args.trials,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
