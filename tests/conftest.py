from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
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


class _CliServer:
    """The fork server of ``_cli_server.py``: each command a child of a process that has
    already imported what the CLI needs (``DNNTUNE_TEST_SPAWN=1`` starts a fresh interpreter
    for each command instead)."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="dnntune-cli-")
        self.path = os.path.join(self.dir, "socket")
        script = Path(__file__).with_name("_cli_server.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), self.path], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "ready\n"

    def run(self, args: tuple[str, ...], cwd: Path, env: dict[str, str], timeout: float):
        request = {"args": list(args), "cwd": str(cwd), "env": env, "timeout": timeout}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(self.path)
            with conn.makefile("rwb") as stream:
                stream.write(json.dumps(request).encode() + b"\n")
                stream.flush()
                reply = json.loads(stream.readline())
        if reply.get("timeout"):
            raise subprocess.TimeoutExpired(["dnntune", *args], timeout)
        return subprocess.CompletedProcess(
            args, reply["returncode"], reply["stdout"], reply["stderr"]
        )

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


_SERVER: _CliServer | None = None


def run_cli(*args: str, cwd: Path, timeout: float = 300) -> CliResult:
    """Run the real ``dnntune`` CLI (its entry point, ``dnntune.cli.main``) in a child
    process, with its own working folder, environment, stdout, stderr and exit code."""
    global _SERVER  # noqa: PLW0603  (one server for the session, started on first use)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if os.environ.get("DNNTUNE_TEST_SPAWN") == "1":
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
    if _SERVER is None:
        _SERVER = _CliServer()
    return CliResult(_SERVER.run(args, cwd, env, timeout))


@pytest.fixture(scope="session", autouse=True)
def _cli_server():
    yield
    if _SERVER is not None:
        _SERVER.close()


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
