"""dnntune: find the best PyTorch network for a table with Optuna, cross-validated and resumable.

Heavy libraries (torch, optuna, pandas) load on first use of the public API.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "DnntuneError",
    "NoModelError",
    "SpaceError",
    "StorageError",
    "TuneConfig",
    "TuneResult",
    "__version__",
    "evaluate",
    "load",
    "load_model",
    "tune",
]

_LAZY = {
    "ConfigError": "dnntune.exceptions",
    "DataError": "dnntune.exceptions",
    "DnntuneError": "dnntune.exceptions",
    "NoModelError": "dnntune.exceptions",
    "SpaceError": "dnntune.exceptions",
    "StorageError": "dnntune.exceptions",
    "TuneConfig": "dnntune.config",
    "TuneResult": "dnntune.study",
    "evaluate": "dnntune.evaluate",
    "load": "dnntune.inference",
    "load_model": "dnntune.artifacts",
    "tune": "dnntune.api",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dnntune' has no attribute {name!r}")
