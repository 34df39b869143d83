"""dnntune installs like a library: a wheel built from this tree, installed into a fresh virtual
environment, runs ``dnntune tune`` away from the source tree; it ships ``py.typed``, and its
version has one source.

The fresh environment reuses this environment's dependencies (a ``.pth`` file) rather than
downloading them again, which would take a minute of the suite's budget: what is tested is the
wheel itself (its modules, entry point, metadata and requirements, checked by ``pip check``).
``make wheel-check`` installs the wheel with all its dependencies from the package index.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import dnntune
from dnntune.testing import synthetic_table

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run(
        sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", out, REPO,
        cwd=REPO,
    )  # fmt: skip
    (path,) = out.glob("dnntune-*.whl")
    return path


def test_the_wheel_ships_the_package_typed_and_versioned(wheel: Path) -> None:
    assert wheel.name.startswith(f"dnntune-{dnntune.__version__}-py3-none-any")
    names = zipfile.ZipFile(wheel).namelist()
    assert "dnntune/py.typed" in names and "dnntune/export/_onnx.py" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]
    metadata = zipfile.ZipFile(wheel).read(f"dnntune-{dnntune.__version__}.dist-info/METADATA")
    text = metadata.decode()
    assert f"Version: {dnntune.__version__}\n" in text
    assert "Requires-Dist: torch" in text and "Provides-Extra: onnx" in text
    entry = zipfile.ZipFile(wheel).read(f"dnntune-{dnntune.__version__}.dist-info/entry_points.txt")
    assert "dnntune = dnntune.cli:main" in entry.decode()


@pytest.mark.slow
def test_a_fresh_environment_with_the_wheel_runs_tune(wheel: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", fresh, cwd=tmp_path)
    python = fresh / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python)  # this environment's pip, run there
    _run(*pip, "install", "--quiet", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    site = _run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path
    )
    (Path(site.strip()) / "_dnntune_test_deps.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run(*pip, "check", cwd=tmp_path, env=env)  # its requirements are met
    where = _run(python, "-c", "import dnntune; print(dnntune.__file__)", cwd=tmp_path, env=env)
    assert where.startswith(str(fresh)), where  # the wheel's copy, not this tree's
    cli = fresh / "bin" / "dnntune"
    assert _run(cli, "--version", cwd=tmp_path, env=env).strip() == f"dnntune {dnntune.__version__}"
    synthetic_table(200).to_csv(tmp_path / "table.csv", index=False)
    (tmp_path / "space.yaml").write_text("num_layers: 1\nhidden_size: 16\nepochs: 3\n")
    out = _run(
        cli, "tune", "--data", "table.csv", "--target", "y", "--trials", "2", "--folds", "2",
        "--space", "space.yaml", "--no-baseline", "--no-report", "--output-dir", "run",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert "Study 'table-y': 2 trials (2 complete)" in out, out
    assert (tmp_path / "run" / "model" / "manifest.json").is_file()
