from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dnntune.testing import shared_data

REPO = Path(__file__).resolve().parents[1]


class CliResult:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def __repr__(self) -> str:
        return f"rc={self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def run_cli(*args: str, cwd: Path, timeout: float = 300) -> CliResult:
    """Run the real ``dnntune`` CLI in a subprocess."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "dnntune", *args],
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    return CliResult(proc)


@pytest.fixture
def cli(tmp_path: Path):
    def _run(*args: str, timeout: float = 300) -> CliResult:
        return run_cli(*args, cwd=tmp_path, timeout=timeout)

    return _run


@pytest.fixture(scope="session")
def credit_g() -> Path:
    path = shared_data("credit_g.tsv.gz")
    if not path.exists():
        pytest.skip(f"shared data file {path} not found")
    return path


@pytest.fixture(scope="session")
def hotel() -> Path:
    path = shared_data("hotel_bookings.csv.gz")
    if not path.exists():
        pytest.skip(f"shared data file {path} not found")
    return path


@pytest.fixture(scope="session")
def wine() -> Path:
    path = shared_data("wine_quality_white.tsv.gz")
    if not path.exists():
        pytest.skip(f"shared data file {path} not found")
    return path
