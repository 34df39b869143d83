"""Named search spaces: ``--space NAME`` and a space file's ``extends: NAME``.

Each is written as a space file's entries. The published spaces follow the tuning files of
the authors' experiments, yandex-research/tabm, ``exp/<model>/<dataset>/0-tuning.toml``
(Gorishniy et al., 2025, "TabM: Advancing Tabular Deep Learning with Parameter-Efficient
Ensembling"), with two differences Optuna's ranges impose: weight decay is tuned on its log
range only (the files also allow 0), and dropout on [0, 0.5] (the files allow 0 separately).
Their defaults, where the first trial of a study starts, are the ``tabm`` package's defaults
(``TabM.make``: k=32, 3 blocks of 512, or 2 with embeddings, dropout 0.1) with AdamW at
2e-3 and weight decay 3e-4, as its README trains it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NAMED_SPACES", "named_space"]

_CLASSIC: dict[str, Any] = {
    "optimizer": {"choices": ["Adam", "SGD", "AdamW"], "default": "AdamW"},
    "num_layers": {"low": 1, "high": 7, "default": 3},
    "hidden_size": {"low": 16, "high": 128, "default": 128},
    "dropout": {"low": 0.1, "high": 0.5, "default": 0.1},
    "learning_rate": {"low": 1e-5, "high": 1e-3, "log": True, "default": 1e-3},
}

# exp/mlp-piecewiselinear/*/0-tuning.toml: the backbone and optimizer of the MLPs.
_MLP: dict[str, Any] = {
    "architecture": "mlp",
    "optimizer": "AdamW",
    "num_layers": {"low": 1, "high": 5, "default": 3},
    "hidden_size": {"low": 64, "high": 1024, "step": 16, "default": 512},
    "dropout": {"low": 0.0, "high": 0.5, "default": 0.1},
    "learning_rate": {"low": 3e-5, "high": 1e-3, "log": True, "default": 1e-3},
    "weight_decay": {"low": 1e-4, "high": 0.1, "log": True, "default": 3e-4},
    "batch_norm": False,
    "batch_size": 256,
}

# exp/tabm/*/0-tuning.toml: TabM with k=32.
_TABM: dict[str, Any] = {
    **_MLP,
    "architecture": "tabm",
    "ensemble_size": 32,
    "learning_rate": {"low": 1e-4, "high": 5e-3, "log": True, "default": 2e-3},
}

# Each is a space file's entries: parameters, and ``starts``, the further first trials.
NAMED_SPACES: dict[str, dict[str, Any]] = {
    # The default: the classic parameters, whose first trial trains in seconds on a CPU,
    # with numeric embeddings and BatchNorm to choose from, and two more first trials that
    # use them (docs/search.md#which-space).
    "default": {
        **_CLASSIC,
        "num_embeddings": {
            "choices": ["none", "piecewise_linear", "periodic"],
            "default": "none",
        },
        "batch_norm": {"choices": [True, False], "default": True},
        "starts": [
            {"num_embeddings": "piecewise_linear", "batch_norm": False},
            {"num_embeddings": "piecewise_linear"},
        ],
    },
    # The original five parameters and ranges of the DNN-tuning scripts.
    "classic": _CLASSIC,
    "mlp": _MLP,
    # exp/mlp-periodic-style embeddings: PeriodicEmbeddings(lite=False) ranges of the TabM
    # repository's periodic experiments.
    "mlp-plr": {
        **_MLP,
        "num_embeddings": "periodic",
        "n_frequencies": {"low": 16, "high": 96, "step": 4, "default": 48},
        "d_embedding": {"low": 16, "high": 32, "step": 4, "default": 24},
        "frequency_scale": {"low": 0.01, "high": 10.0, "log": True, "default": 0.01},
    },
    # exp/mlp-piecewiselinear/*/0-tuning.toml.
    "mlp-ple": {
        **_MLP,
        "num_embeddings": "piecewise_linear",
        "d_embedding": {"low": 8, "high": 32, "step": 4, "default": 16},
    },
    "tabm": _TABM,
    # TabM-mini with piecewise-linear embeddings (exp/tabm-mini-piecewiselinear): the best
    # model of the paper's comparison, 2 blocks by default.
    "tabm-mini-ple": {
        **_TABM,
        "architecture": "tabm-mini",
        "num_embeddings": "piecewise_linear",
        "num_layers": {"low": 1, "high": 5, "default": 2},
        "d_embedding": {"low": 8, "high": 32, "step": 4, "default": 16},
    },
}


def named_space(name: str) -> dict[str, Any] | None:
    """The entries of the named space (a copy), or None when there is no such name."""
    entries = NAMED_SPACES.get(name)
    return None if entries is None else {k: _copy(v) for k, v in entries.items()}


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value
