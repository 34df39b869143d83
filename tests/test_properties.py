"""Property-based tests: random small tables either give a clean error or finite numbers.

Each table mixes the column kinds users bring (numbers with missing values, integer codes,
strings, booleans, dates, constant and ID-like columns) with a random target for each task.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dnntune
from dnntune.config import Columns, Preprocessing, Task
from dnntune.data import LoadedTable, build_dataset, prepare_fold
from dnntune.exceptions import DataError
from dnntune.testing import write_space

KINDS = ("float", "int_code", "string", "bool", "date", "constant", "id")
TASKS = ("binary", "multiclass", "regression", "multilabel")


def _column(kind: str, n: int, rng: np.random.Generator, missing: float) -> pd.Series:
    if kind == "float":
        values = pd.Series(rng.normal(size=n) * 10.0 ** rng.integers(-3, 4))
    elif kind == "int_code":
        values = pd.Series(rng.integers(0, 12, size=n))
    elif kind == "string":
        values = pd.Series(rng.choice(["a", "b", "c", "d"], size=n))
    elif kind == "bool":
        values = pd.Series(rng.random(n) < 0.5)
    elif kind == "date":
        days = pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), "D")
        values = pd.Series(days.astype(str))
    elif kind == "constant":
        values = pd.Series(["same"] * n)
    else:
        values = pd.Series([f"id-{i}" for i in range(n)])
    if missing and kind not in ("constant", "id"):
        values = values.astype(object).mask(rng.random(n) < missing)
    return values


def _target(task: str, n: int, rng: np.random.Generator) -> pd.DataFrame:
    if task == "binary":
        return pd.DataFrame({"y": rng.choice(["yes", "no"], size=n)})
    if task == "multiclass":
        return pd.DataFrame({"y": rng.integers(0, 4, size=n)})
    if task == "regression":
        return pd.DataFrame({"y": rng.normal(size=n) * 100})
    return pd.DataFrame({"a": rng.integers(0, 2, n), "b": rng.integers(0, 2, n)})


tables = st.fixed_dictionaries(
    {
        "kinds": st.lists(st.sampled_from(KINDS), min_size=1, max_size=6),
        "task": st.sampled_from(TASKS),
        "rows": st.integers(min_value=4, max_value=120),
        "missing": st.sampled_from([0.0, 0.1, 0.6]),
        "seed": st.integers(min_value=0, max_value=2**16),
    }
)


def _table(spec: dict) -> tuple[LoadedTable, tuple[str, ...]]:
    rng = np.random.default_rng(spec["seed"])
    n = spec["rows"]
    frame = pd.DataFrame(
        {f"{k}{i}": _column(k, n, rng, spec["missing"]) for i, k in enumerate(spec["kinds"])}
    )
    target = _target(spec["task"], n, rng)
    return LoadedTable(pd.concat([frame, target], axis=1), "random"), tuple(target.columns)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables)
def test_random_tables_preprocess_to_finite_inputs_or_a_clean_error(spec: dict) -> None:
    table, target = _table(spec)
    task = Task.MULTILABEL if spec["task"] == "multilabel" else None
    try:
        dataset = build_dataset(table, Columns(target=target, task=task, folds=2), seed=0)
        fold = prepare_fold(dataset, 0, torch.device("cpu"), Preprocessing())
    except DataError as exc:
        assert "\n" not in str(exc) and str(exc)  # one line that says something
        return
    tensors = fold.tensors
    assert tensors.x_train.shape[1] == tensors.x_valid.shape[1] == fold.preprocessor.n_features
    assert torch.isfinite(tensors.x_train).all() and torch.isfinite(tensors.x_valid).all()
    assert len(tensors.y_valid_eval) + tensors.n_train == dataset.n_rows


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables.filter(lambda spec: spec["rows"] >= 20))
def test_random_tables_tune_to_a_finite_score_or_a_clean_error(
    tmp_path_factory: pytest.TempPathFactory, spec: dict
) -> None:
    table, target = _table(spec)
    root: Path = tmp_path_factory.mktemp("prop")
    path = root / "t.parquet"
    table.frame.to_parquet(path)
    space = write_space(root / "s.yaml", "num_layers: 1\nhidden_size: 8\nepochs: 2\n")
    try:
        result = dnntune.tune(
            str(path),
            target,
            task="multilabel" if spec["task"] == "multilabel" else None,
            trials=1,
            folds=2,
            space=str(space),
            output_dir=str(root / "run"),
        )
    except dnntune.DnntuneError as exc:
        assert "\n" not in str(exc) and str(exc)
        assert not (root / "run").exists()  # nothing half-written
        return
    (trial,) = result.study.trials
    assert trial.value is not None and np.isfinite(trial.value), trial
    # predict on the training table has the out-of-fold predictions' shape and columns.
    model = root / "run" / "model"
    oof = pd.read_csv(model / json.loads((model / "manifest.json").read_text())["oof_predictions"])
    predicted = dnntune.load(root / "run").predict(table.frame)
    assert list(oof.columns) == ["row", "fold", *predicted.columns]
    assert len(predicted) == len(oof) == len(table.frame)
    assert np.isfinite(predicted.select_dtypes("number").to_numpy()).all()


NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=4),
    st.none(),
)
NUMERIC_SETTINGS = (
    "folds", "fold_seed", "numeric_bins", "max_folds", "patience", "trials", "timeout",
    "grid_points", "ensemble_pool", "ensemble_rounds", "jobs", "seed",
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(NUMERIC_SETTINGS), NUMBERS, min_size=1, max_size=4))
def test_bad_numbers_in_settings_are_a_config_error_and_good_ones_are_usable(values) -> None:
    """Negative, NaN, infinite, huge, boolean or text values: a one-line ConfigError, never
    another exception; what is accepted works where it is used (NumPy's seeds, finite
    timeouts)."""
    from dnntune.config import TuneConfig
    from dnntune.exceptions import ConfigError

    try:
        config = TuneConfig.of(**values)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    np.random.RandomState(config.seed)
    np.random.RandomState(config.split_seed)
    timeout = config.search.timeout
    assert timeout is None or (0 < timeout < float("inf"))
    assert config.columns.folds >= 2 and config.training.patience >= 1


SPEC_VALUES = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=3),
)
SPECS = st.one_of(
    SPEC_VALUES,
    st.dictionaries(
        st.sampled_from(["low", "high", "step", "log", "default", "value", "choices", "grid"]),
        SPEC_VALUES,
        max_size=4,
    ),
)
SPACE_PARAMS = ("num_layers", "hidden_size", "dropout", "learning_rate", "epochs", "batch_size")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(SPACE_PARAMS), SPECS, min_size=1, max_size=3))
def test_bad_numbers_in_space_files_are_a_space_error_and_good_ones_are_in_range(raw) -> None:
    """Negative, NaN, infinite or huge bounds, low above high, text for numbers: a SpaceError
    listing the problems, never another exception; what is accepted suggests values that the
    parameters' own rules accept (the rules a loaded manifest is checked against)."""
    import optuna

    from dnntune.exceptions import SpaceError
    from dnntune.space import PARAMETERS, parse_space, suggest

    try:
        space = parse_space(raw, source="the test")
    except SpaceError as exc:
        assert exc.problems and all("\n" not in p for p in exc.problems)
        return
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        params = suggest(study.ask(), space)
        for name in SPACE_PARAMS:
            value = params[name]
            assert (
                name not in PARAMETERS
                or PARAMETERS[name].check(value) is None
                or (name == "batch_size" and value is None)
            ), (name, value)


def _model_folder() -> Path:
    """One small saved model (an estimator's folder), made once for the damage tests."""
    if not _FOLDER:
        import tempfile

        from dnntune.sklearn import DNNClassifier

        rng = np.random.default_rng(0)
        X = pd.DataFrame({"x": rng.normal(size=120), "c": rng.choice(["a", "b"], 120)})
        y = (X["x"] > 0).astype(int)
        folder = Path(tempfile.mkdtemp(prefix="dnntune-damage-")) / "model"
        DNNClassifier(num_layers=1, hidden_size=8, epochs=2).fit(X, y).save(folder)
        _FOLDER.append(folder)
    return _FOLDER[0]


_FOLDER: list[Path] = []
JSON_VALUES = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)  # fmt: skip


def _places(node: object, path: tuple = ()) -> list[tuple]:
    """Every path to a value inside a JSON document."""
    out = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _places(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _places(value, (*path, i))
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_damaged_manifest_loads_correctly_or_is_one_data_error(data: st.DataObject) -> None:
    """Any value of manifest.json replaced by another (of any JSON type) or removed: the folder
    loads and predicts finite probabilities, or loading is one DataError line; never another
    exception."""
    import shutil
    import tempfile

    from dnntune.artifacts import load_model

    folder = Path(tempfile.mkdtemp(prefix="dnntune-damaged-")) / "model"
    shutil.copytree(_model_folder(), folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    place = data.draw(st.sampled_from(_places(manifest)))
    parent = manifest
    for key in place[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[place[-1]]
    else:
        parent[place[-1]] = data.draw(JSON_VALUES)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    try:
        load_model(folder)
        proba = dnntune.load(folder).predict_array(
            pd.DataFrame({"x": [0.5, -1.0], "c": ["a", "z"]})
        )
    except DataError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    finally:
        shutil.rmtree(folder.parent)
    assert np.isfinite(proba).all() and ((proba >= 0) & (proba <= 1)).all()


URL_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=30
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        URL_TEXT.filter(lambda s: "://" not in s and s != "memory:" and "journal:" not in s[:8]),
        st.builds(
            lambda scheme, rest: f"{scheme}://{rest}",
            st.from_regex(r"[a-z][a-z0-9+]{0,12}", fullmatch=True).filter(
                lambda s: s.split("+")[0] not in ("sqlite", "postgresql", "postgres", "mysql",
                                                  "mariadb", "redis", "rediss", "oracle", "mssql")
            ),
            URL_TEXT,
        ),
    )
)  # fmt: skip
def test_random_storage_urls_are_one_storage_error(url: str) -> None:
    """Text that is not a storage URL, or a URL of a database SQLAlchemy does not know: one
    StorageError line naming the URL, never another exception (no connection is attempted)."""
    from dnntune.exceptions import StorageError
    from dnntune.storage import open_storage

    with pytest.raises(StorageError) as caught:
        open_storage(url)
    assert "\n" not in str(caught.value) and "storage" in str(caught.value)
