# Two commands on a fresh machine: `make run` (the main job) and `make test` (the test suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The suite runs on two processes (pytest-xdist), each test file on one of them, with one
# PyTorch thread each: two processes of two threads on two cores would make each other wait.
# `make test PYTEST_WORKERS=` runs it in one process.
PYTEST_WORKERS ?= -n 2 --dist loadfile

.PHONY: install run test lint bench clean wheel-check

install: $(STAMP)

# The constraints file pins torch to 2.13.0 (the CPU wheel pip finds here); an unpinned torch
# would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/dnntune tune

test: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src/dnntune
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q $(PYTEST_WORKERS)

# The wheel, installed with all its dependencies from the package index into a fresh virtual
# environment, runs a small study (about a minute; the suite's own install test shares this
# environment's dependencies instead).
wheel-check: install
	rm -rf build/wheel-check && mkdir -p build/wheel-check
	$(BIN)/python -m build --wheel --no-isolation --outdir build/wheel-check .
	$(PYTHON) -m venv build/wheel-check/venv
	build/wheel-check/venv/bin/pip install --quiet -c constraints.txt build/wheel-check/dnntune-*.whl
	cd build/wheel-check && venv/bin/dnntune tune --trials 2 --folds 2 --no-report --output-dir run

bench: install
	$(BIN)/python benchmarks/bench_engine.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .mypy_cache
