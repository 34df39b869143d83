"""The exported ONNX file beside ``dnntune predict``: same rows, same model, in one run.

Tunes a table through the CLI (``--timeout``; the hotel table by default, its leaking columns
dropped) or takes an existing run folder (``--run``), exports it (``dnntune export``), then
times on ``--rows`` rows of the table:

* ``predict``: ``dnntune.load(run).predict(frame)``, the whole Python path (checks,
  preprocessing per network, networks, the output frame);
* ``onnx``: ``onnx_feeds(frame)`` (the columns as the graph's inputs) and
  ``InferenceSession.run``, the same work in onnxruntime; ``onnx_run`` is the run alone;
* one row at a time (``--single`` calls) for both: the latency of a service answering a request.

Each is the best of ``--repeats``. Printed: a table, then one JSON line::

    {"rows": ..., "networks": ..., "predict_s": ..., "onnx_s": ..., "onnx_run_s": ...,
     "speedup": ..., "single_predict_ms": ..., "single_onnx_ms": ..., "max_difference": ...}

    python benchmarks/bench_onnx.py                          # hotel, 60 s of tuning
    python benchmarks/bench_onnx.py --run runs/hotel_bookings-is_canceled
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
HOTEL_LEAKS = "reservation_status,reservation_status_date"


def best_of(repeats: int, call: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def tune(args: argparse.Namespace, folder: Path) -> Path:
    run = folder / "run"
    cmd = [
        sys.executable, "-m", "dnntune", "tune", "--data", args.data, "--target", args.target,
        "--timeout", str(args.timeout), "--output-dir", str(run), "--no-report",
    ]  # fmt: skip
    if args.drop:
        cmd += ["--drop", args.drop]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"dnntune tune failed:\n{proc.stderr[-3000:]}")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA / "hotel_bookings.csv.gz"))
    parser.add_argument("--target", default="is_canceled")
    parser.add_argument("--drop", default=HOTEL_LEAKS, help="Columns to drop ('' for none).")
    parser.add_argument("--timeout", type=float, default=60.0, help="Seconds of tuning.")
    parser.add_argument("--run", type=Path, help="An existing run folder (no tuning).")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=200, help="One-row calls to time.")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import onnxruntime as ort

    import dnntune
    from dnntune._logs import quiet_exporter
    from dnntune.data import load_table
    from dnntune.export import export_onnx, onnx_feeds

    quiet_exporter()  # no line per torchvision operator the exporter skips

    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or tune(args, Path(tmp))
        frame = load_table(args.data).frame
        frame = frame.sample(min(args.rows, len(frame)), random_state=0).reset_index(drop=True)
        started = time.perf_counter()
        done = export_onnx(run, Path(tmp) / "model.onnx")
        export_s = time.perf_counter() - started
        predictor = dnntune.load(run)
        session = ort.InferenceSession(str(done.path), providers=["CPUExecutionProvider"])
        feeds = onnx_feeds(frame, done.path)
        predict_s = best_of(args.repeats, lambda: predictor.predict(frame))
        onnx_s = best_of(args.repeats, lambda: session.run(None, onnx_feeds(frame, done.path)))
        run_s = best_of(args.repeats, lambda: session.run(None, feeds))
        ones = [frame.iloc[[i]] for i in range(min(args.single, len(frame)))]
        one_feeds = [onnx_feeds(row, done.path) for row in ones]
        single_predict = best_of(1, lambda: [predictor.predict(row) for row in ones]) / len(ones)
        single_onnx = best_of(1, lambda: [session.run(None, f) for f in one_feeds]) / len(ones)
        expected = predictor.predict_array(frame)
        got = session.run(None, feeds)[0]
        got = got[:, 1] if got.ndim == 2 and expected.ndim == 1 else got
        diff = float(np.max(np.abs(got - expected)))
    result = {
        "rows": len(frame),
        "networks": done.networks,
        "export_s": round(export_s, 2),
        "predict_s": round(predict_s, 4),
        "onnx_s": round(onnx_s, 4),
        "onnx_run_s": round(run_s, 4),
        "speedup": round(predict_s / onnx_s, 2),
        "single_predict_ms": round(1000 * single_predict, 3),
        "single_onnx_ms": round(1000 * single_onnx, 3),
        "single_speedup": round(single_predict / single_onnx, 1),
        "max_difference": diff,
    }
    print(f"{'':28}{'predict':>12}{'onnxruntime':>14}")
    print(
        f"{f'{len(frame)} rows (s)':28}{predict_s:>12.3f}{onnx_s:>14.3f}  (run alone {run_s:.3f})"
    )
    print(f"{'one row (ms)':28}{1000 * single_predict:>12.2f}{1000 * single_onnx:>14.2f}")
    print(f"{done.networks} networks; largest difference {diff:.1e}; export {export_s:.1f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
