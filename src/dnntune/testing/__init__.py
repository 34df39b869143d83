"""Test kit: synthetic tables, tiny spaces and paths to the shared real data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["TINY_SPACE", "postgres_url", "shared_data", "synthetic_table", "write_space"]

#: A space that trains a few epochs only: for fast end-to-end tests.
TINY_SPACE = """\
optimizer: {choices: [Adam, SGD, AdamW], default: AdamW}
num_layers: {low: 1, high: 3, default: 2}
hidden_size: {low: 16, high: 64, default: 32}
dropout: {low: 0.1, high: 0.5, default: 0.1}
learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true, default: 3.0e-3}
epochs: 4
"""


def shared_data(name: str) -> Path:
    """Path of a file in the shared data folder beside the repository (``../shared/data``)."""
    root = Path(
        os.environ.get(
            "DNNTUNE_SHARED_DATA", Path(__file__).resolve().parents[3].parent / "shared" / "data"
        )
    )
    return root / name


def postgres_url() -> str | None:
    return os.environ.get("DNNTUNE_TEST_POSTGRES_URL")


def write_space(path: Path, text: str = TINY_SPACE) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def synthetic_table(n: int = 400, *, task: str = "binary", seed: int = 0) -> pd.DataFrame:
    """Numeric, categorical and missing values, and a target that depends on them."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n, p=[0.5, 0.3, 0.2])
    signal = 1.5 * x1 - x2 + (color == "red") * 1.0
    x2_obs = np.where(rng.random(n) < 0.1, np.nan, x2)
    frame = pd.DataFrame(
        {"x1": x1, "x2": x2_obs, "color": color, "row_id": np.arange(n), "const": 7}
    )
    if task == "binary":
        frame["y"] = (signal + rng.normal(scale=0.5, size=n) > 0).astype(int)
    elif task == "multiclass":
        frame["y"] = np.digitize(signal, [-1.0, 1.0])
        frame["y"] = frame["y"].map({0: "low", 1: "mid", 2: "high"})
    elif task == "regression":
        frame["y"] = 3.0 * signal + rng.normal(scale=0.3, size=n) + 0.5
    elif task == "multilabel":
        frame["a"] = (signal > 0).astype(int)
        frame["b"] = (x1 > 0.3).astype(int)
    else:
        raise ValueError(f"unknown task {task!r}")
    return frame
