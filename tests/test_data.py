from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dnntune.config import Columns, Preprocessing, Task, TuneConfig
from dnntune.data import (
    LoadedTable,
    Preprocessor,
    assign_folds,
    build_dataset,
    duplicate_groups,
    encode_target,
    fold_table,
    infer_task,
    load_table,
    plan_columns,
    unparsed_dates_note,
    unparsed_values,
)
from dnntune.exceptions import DataError
from dnntune.testing import synthetic_table


def _dataset(table: LoadedTable, *, seed: int = 42, **columns: object):
    """build_dataset with the column and fold settings as keywords."""
    return build_dataset(table, Columns(**columns), seed)


def _fold_table(table: LoadedTable, *, seed: int = 42, **columns: object) -> pd.DataFrame:
    return fold_table(table, TuneConfig.of(seed=seed, **columns))


@pytest.mark.parametrize(
    ("name", "writer"),
    [
        ("t.csv", lambda f, p: f.to_csv(p, index=False)),
        ("t.csv.gz", lambda f, p: f.to_csv(p, index=False, compression="gzip")),
        ("t.tsv", lambda f, p: f.to_csv(p, sep="\t", index=False)),
        ("t.tsv.gz", lambda f, p: f.to_csv(p, sep="\t", index=False, compression="gzip")),
        ("t.parquet", lambda f, p: f.to_parquet(p, index=False)),
        # The separator read from the header: .txt files, and a .csv written with semicolons
        # and decimal commas (a spreadsheet in many locales) or with pipes.
        ("t.txt", lambda f, p: f.to_csv(p, sep="\t", index=False)),
        ("t.txt.gz", lambda f, p: f.to_csv(p, sep=";", index=False, compression="gzip")),
        ("semi.csv", lambda f, p: f.to_csv(p, sep=";", decimal=",", index=False)),
        ("pipe.csv", lambda f, p: f.to_csv(p, sep="|", index=False)),
    ],
)
def test_load_table_formats(tmp_path: Path, name: str, writer) -> None:
    frame = synthetic_table(50)
    writer(frame, tmp_path / name)
    loaded = load_table(str(tmp_path / name)).frame
    assert list(loaded.columns) == list(frame.columns)
    assert len(loaded) == 50
    np.testing.assert_allclose(loaded["x1"], frame["x1"])
    assert int(loaded["x2"].isna().sum()) == int(frame["x2"].isna().sum())


def test_semicolons_and_decimal_commas_read_as_the_original(tmp_path: Path, credit_g) -> None:
    frame = load_table(str(credit_g)).frame
    assert frame["duration"].dtype == float  # so the file below holds "6,0"
    frame.to_csv(tmp_path / "credit.csv", sep=";", decimal=",", index=False)
    assert "6,0" in (tmp_path / "credit.csv").read_text()
    pd.testing.assert_frame_equal(load_table(str(tmp_path / "credit.csv")).frame, frame)


def test_hotel_file_reads_null_and_na_as_missing(hotel: Path) -> None:
    frame = load_table(str(hotel)).frame
    assert len(frame) == 119_390
    assert frame["agent"].isna().sum() > 0  # the string NULL
    assert frame["children"].isna().sum() == 4  # the string NA
    ds = _dataset(
        load_table(str(hotel)),
        target=("is_canceled",),
        drop=("reservation_status", "reservation_status_date"),
    )
    assert ds.task is Task.BINARY
    assert "country" in ds.plan.categorical and "lead_time" in ds.plan.numeric


@pytest.mark.parametrize(
    ("task", "values"),
    [
        (Task.BINARY, ["yes", "no", "yes"]),
        (Task.BINARY, [0, 1, 1]),
        (Task.MULTICLASS, ["a", "b", "c"]),
        (Task.MULTICLASS, [3, 4, 5, 6, 7]),
        (Task.REGRESSION, [0.5, 1.25, 3.0]),
        (Task.REGRESSION, list(range(100))),
    ],
)
def test_infer_task(task: Task, values: list) -> None:
    assert infer_task(pd.DataFrame({"y": values})) is task


def test_infer_multilabel_from_several_columns() -> None:
    frame = synthetic_table(30, task="multilabel")
    assert infer_task(frame[["a", "b"]]) is Task.MULTILABEL
    target = encode_target(frame[["a", "b"]], Task.MULTILABEL)
    assert target.values.shape == (30, 2) and target.n_outputs == 2


def test_several_numeric_target_columns_are_a_regression_per_column() -> None:
    frame = synthetic_table(40, task="regression").assign(z=lambda f: f.x1 * 10)
    assert infer_task(frame[["y", "z"]]) is Task.REGRESSION
    target = encode_target(frame[["y", "z"]], Task.REGRESSION)
    assert target.values.shape == (40, 2) and target.n_outputs == 2
    assert target.stratify is None
    assert encode_target(frame[["y"]], Task.REGRESSION).values.shape == (40,)
    with pytest.raises(DataError, match="regression target 'color' is not numeric"):
        encode_target(frame[["y", "color"]], Task.REGRESSION)
    with pytest.raises(DataError, match="regression target 'const' has one value"):
        encode_target(frame[["y", "const"]], Task.REGRESSION)


def test_multilabel_folds_spread_every_label_combination() -> None:
    # 500 rows; label b is positive in 25 rows only. Plain KFold can leave a fold without any
    # positive of b (and drop b from that fold's ROC-AUC); the stratified folds cannot.
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, 500)
    b = np.zeros(500, dtype=np.int64)
    b[rng.choice(500, 25, replace=False)] = 1
    target = encode_target(pd.DataFrame({"a": a, "b": b}), Task.MULTILABEL)
    for seed in range(5):
        folds = assign_folds(target, 5, seed)
        per_fold = np.bincount(folds[b == 1], minlength=5)
        assert per_fold.min() >= 4, per_fold  # 25 positives over 5 folds: 5 each, give or take
        assert np.bincount(folds).min() >= 99


def test_plan_reports_id_like_and_constant_columns() -> None:
    plan = plan_columns(synthetic_table(100).drop(columns="y"))
    assert "ID-like" in plan.dropped["row_id"]
    assert "constant" in plan.dropped["const"]
    assert plan.categorical == ["color"] and plan.numeric == ["x1", "x2"]


def test_named_columns_are_categorical_whatever_their_values() -> None:
    frame = synthetic_table(100).drop(columns="y")
    frame["zip"] = np.arange(100) % 40 * 1000 + 10001  # 40 codes: numbers, not quantities
    assert "zip" in plan_columns(frame).numeric
    plan = plan_columns(frame, categorical=("zip", "row_id", "const", "x1"))
    assert plan.categorical == ["x1", "color", "row_id", "zip"] and plan.numeric == ["x2"]
    assert "constant" in plan.dropped["const"]  # a constant column still says nothing
    pre = Preprocessor(plan, min_frequency=1, max_levels=100).fit(frame)
    assert "zip=10001" in pre.feature_names_
    x = pre.transform(frame)
    codes = frame.assign(zip=frame["zip"].astype(float))
    codes.loc[0, "zip"] = np.nan  # a missing value turns a code column into floats
    y = pre.transform(codes)
    np.testing.assert_array_equal(x[1:], y[1:])  # 10002.0 is the level 10002
    assert y[0, pre.feature_names_.index("zip=__other__")] == 1.0


def test_categorical_must_name_feature_columns() -> None:
    table = LoadedTable(synthetic_table(30), "mem")
    with pytest.raises(DataError, match=r"categorical column 'colr' not in the table \(did"):
        _dataset(table, target=("y",), categorical=("colr",))
    with pytest.raises(DataError, match=r"categorical column 'y' is not a feature"):
        _dataset(table, target=("y",), categorical=("y",))
    ds = _dataset(table, target=("y",), categorical=("x1",))
    assert "x1" in ds.plan.categorical


def test_a_few_words_in_a_column_of_numbers_are_noted_and_found() -> None:
    numbers = [f"{v / 10:.1f}" for v in range(60)]
    frame = pd.DataFrame({"x": [*numbers[:40], "abc", *numbers[41:]], "c": ["a", "b", "c"] * 20})
    plan = plan_columns(frame)
    # Read as text, so 60 distinct strings: dropped as an ID, as before, but now explained.
    assert "ID-like" in plan.dropped["x"]
    assert plan.hints == [
        "column 'x' is read as text because 1 of its 60 values is not a number, e.g. 'abc' in "
        "data row 41; fix or empty those cells to read it as numbers"
    ]
    assert plan.hints[0] in plan.notes()
    many_words = frame.copy()
    many_words.loc[:9, "x"] = "word"
    assert plan_columns(many_words).hints == []  # a sixth of the values: a text column

    bad = unparsed_values(pd.Series(["1.5", None, "x", "2", "1e3", "y"]))
    assert bad.to_dict() == {2: "x", 5: "y"}  # by position; missing cells are not bad
    assert unparsed_values(pd.Series([1.0, np.nan])).empty
    dates = pd.Series(["2020-01-02", "not a date", None], index=[7, 8, 9])
    assert unparsed_values(dates, dates=True).to_dict() == {1: "not a date"}


def test_values_that_are_not_dates_are_noted() -> None:
    days = pd.date_range("2020-01-01", periods=300).astype(str).tolist()
    days[250] = "soon"
    plan = plan_columns(pd.DataFrame({"d": days, "v": np.arange(300) % 7}))
    assert plan.datetime == ["d"]
    note = "column 'd': 1 value not read as dates, e.g. 'soon' in data row 251, count as missing"
    assert plan.hints == [note]
    assert unparsed_dates_note("d", pd.Series(days[:200])) == []


def test_dates_across_a_daylight_saving_change_are_read() -> None:
    # Local times written with their UTC offset: +01:00, then +02:00 from 28 March 2021 on.
    # pandas refuses to mix offsets; dnntune reads them in UTC.
    hours = pd.date_range("2021-03-27", periods=60, freq="h", tz="Europe/Paris")
    frame = pd.DataFrame({"d": hours.astype(str), "v": np.arange(60) % 7})
    assert {s[-6:] for s in frame["d"]} == {"+01:00", "+02:00"}
    plan = plan_columns(frame)
    assert plan.datetime == ["d"] and plan.hints == []
    out = Preprocessor(plan, Preprocessing(numeric_bins=0)).fit(frame).transform(frame)
    steps = np.diff(out[:, 0])
    np.testing.assert_allclose(steps, steps[0], rtol=1e-4)  # one hour apart, in UTC


def test_date_strings_become_numeric() -> None:
    frame = pd.DataFrame(
        {"d": pd.date_range("2020-01-01", periods=60).astype(str).tolist(), "v": np.arange(60) % 7}
    )
    plan = plan_columns(frame)
    assert plan.datetime == ["d"]
    out = Preprocessor(plan).fit(frame).transform(frame)
    assert np.isfinite(out).all()


def test_preprocessing_is_fitted_on_training_rows_only() -> None:
    train = pd.DataFrame({"x": [1.5, 2.5, 3.5, np.nan] * 5, "c": ["a"] * 10 + ["b"] * 10})
    valid = pd.DataFrame({"x": [1000.0, np.nan], "c": ["zzz", "a"]})
    pre = Preprocessor(plan_columns(train), Preprocessing(numeric_bins=0), min_frequency=1).fit(
        train
    )
    assert pre.numeric_["x"]["median"] == 2.5  # from training rows; 1000 is never seen
    assert pre.feature_names_ == ["x", "x__missing", "c=a", "c=b", "c=__other__"]
    out = pre.transform(valid)
    assert out[1, 1] == 1.0  # missing indicator
    assert out[0, 4] == 1.0 and out[0, 2:4].sum() == 0  # unseen level -> __other__
    assert out[1, 2] == 1.0
    train_out = pre.transform(train)
    assert abs(train_out[:, 0].mean()) < 1e-6  # standardized with training statistics


def test_numeric_bins_come_from_training_quantiles() -> None:
    train = pd.DataFrame({"x": np.arange(100.0) + 0.5, "k": [1.5, 2.5, 3.5] * 33 + [1.5]})
    valid = pd.DataFrame(
        {"x": [-5.0, 50.0, 1e6, np.nan, 37.625], "k": [2.5, 2.5, 9.0, np.nan, 2.0]}
    )
    pre = Preprocessor(plan_columns(train), Preprocessing(numeric_bins=4), rows_per_bin=10).fit(
        train
    )
    assert pre.bin_edges_["x"] == [25.25, 50.0, 74.75]  # quartiles of the training rows
    assert pre.bin_range_["x"] == [0.5, 99.5]
    assert pre.bin_edges_["k"] == [2.5]  # three distinct values: two bins of some width
    names = pre.feature_names_
    out = pre.transform(valid)
    x_bins = out[:, [names.index(f"x__bin{i}") for i in range(4)]]
    k_bins = out[:, [names.index(f"k__bin{i}") for i in range(2)]]
    # Piecewise-linear: 1 for the bins below, the position inside its own bin, 0 above.
    assert x_bins.tolist() == [
        [0, 0, 0, 0],  # below the training range
        [1, 1, 0, 0],  # an edge value: the bins below it are full
        [1, 1, 1, 1],  # above the training range
        [1, 1, 0, 0],  # missing: the median's encoding (and the missing indicator)
        [1, 0.5, 0, 0],  # halfway through the second bin
    ]
    assert k_bins.tolist() == [[1, 0], [1, 0], [1, 1], [1, 0], [0.5, 0]]
    off = Preprocessor(plan_columns(train), Preprocessing(numeric_bins=0)).fit(train)
    assert off.feature_names_ == ["x", "k"] and not off.bin_edges_
    few = Preprocessor(plan_columns(train), Preprocessing(numeric_bins=16), rows_per_bin=40).fit(
        train
    )
    assert [len(e) + 1 for e in few.bin_edges_.values()] == [2, 2]  # 100 rows: two bins each
    assert not Preprocessor(plan_columns(train)).fit(train).bin_edges_  # 100 rows: none
    again = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    np.testing.assert_array_equal(again.transform(valid), out)


def test_robust_scaling_centres_on_the_median_and_clips_smoothly() -> None:
    """Robust scaling: minus the median, over the interquartile range / 1.349, then
    x / sqrt(1 + (x/3)^2): an outlier moves neither the centre nor the scale, and no input
    leaves (-3, 3); the embeddings' bins see the same values; the state round-trips."""
    values = np.r_[np.linspace(0.5, 9.5, 99) ** 2, 1e6]  # skewed, and one huge outlier
    train = pd.DataFrame({"x": values})
    settings = Preprocessing(numeric_bins=0, numeric_scaling="robust")
    pre = Preprocessor(plan_columns(train), settings).fit(train)
    st = pre.numeric_["x"]
    q25, median, q75 = np.quantile(values, [0.25, 0.5, 0.75])
    assert st["mean"] == median and st["scale"] == pytest.approx((q75 - q25) / 1.349)
    out = pre.transform(pd.DataFrame({"x": [median, 1e6, -1e9, q75]}))[:, 0]
    z = (q75 - median) / st["scale"]
    assert out[0] == 0.0 and out[3] == pytest.approx(z / np.sqrt(1 + (z / 3) ** 2), rel=1e-6)
    assert 2.99 < out[1] <= 3.0 and -3.0 <= out[2] < -2.99  # (float32 rounds to 3)
    assert max(pre.embedding_bins_["x"]) <= 3.0  # bins of the clipped values
    standard = Preprocessor(plan_columns(train), Preprocessing(numeric_bins=0)).fit(train)
    assert standard.transform(pd.DataFrame({"x": [1e6]}))[0, 0] > 9  # unclipped
    again = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    np.testing.assert_array_equal(again.transform(train), pre.transform(train))


def test_rare_levels_are_folded() -> None:
    frame = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 50 + ["rare"] * 2})
    pre = Preprocessor(plan_columns(frame), min_frequency=5).fit(frame)
    assert pre.categories_["c"] == ["a", "b"]


def test_preprocessor_state_round_trips_through_json() -> None:
    frame = synthetic_table(80).drop(columns="y")
    pre = Preprocessor(plan_columns(frame)).fit(frame)
    again = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    np.testing.assert_array_equal(pre.transform(frame), again.transform(frame))


def test_stratified_folds_are_seeded_and_balanced() -> None:
    target = encode_target(pd.DataFrame({"y": [0] * 70 + [1] * 30}), Task.BINARY)
    a = assign_folds(target, 5, seed=1)
    assert (a == assign_folds(target, 5, seed=1)).all()
    assert not (a == assign_folds(target, 5, seed=2)).all()
    for k in range(5):
        assert target.values[a == k].sum() == 6  # 30 positives spread evenly


def test_fold_column_is_honoured() -> None:
    frame = synthetic_table(60)
    frame["kfold"] = np.arange(60) % 3
    ds = _dataset(LoadedTable(frame, "mem"), target=("y",), fold_column="kfold")
    assert ds.n_folds == 3 and "kfold" not in ds.features.columns
    assert (ds.folds == frame["kfold"].to_numpy()).all()


def test_fold_table_adds_column() -> None:
    frame = synthetic_table(60)
    out = _fold_table(LoadedTable(frame, "mem"), target=("y",), folds=4, seed=0)
    assert sorted(out["kfold"].unique()) == [0, 1, 2, 3]


def test_fold_table_splits_the_folds_tune_splits() -> None:
    frame = synthetic_table(60)
    frame["y"] = frame["y"].astype(float)  # 0/1: binary, or a regression with --task
    table = LoadedTable(frame, "mem")
    for task in (None, Task.REGRESSION):  # stratified, then plain shuffled K-fold
        written = _fold_table(table, target=("y",), folds=4, task=task)["kfold"].to_numpy()
        tuned = _dataset(table, target=("y",), folds=4, task=task).folds
        np.testing.assert_array_equal(written, tuned)
    assert not (written == _fold_table(table, target=("y",), folds=4)["kfold"]).all()


def test_missing_target_rows_are_dropped_with_a_note() -> None:
    frame = synthetic_table(60)
    frame.loc[:4, "y"] = np.nan
    ds = _dataset(LoadedTable(frame, "mem"), target=("y",))
    assert ds.n_rows == 55 and "dropped 5 rows with a missing target" in ds.notes


def test_missing_target_column_lists_close_names() -> None:
    with pytest.raises(DataError, match=r"target column 'yy' not in the table \(did you mean 'y'"):
        _dataset(LoadedTable(synthetic_table(30), "mem"), target=("yy",))


@pytest.mark.parametrize("task", [Task.MULTICLASS, Task.REGRESSION])
def test_group_duplicates_keeps_copies_of_a_row_in_one_fold(wine: Path, task: Task) -> None:
    from dnntune.config import TuneConfig
    from dnntune.exceptions import ConfigError

    table = load_table(str(wine))  # the white wines repeat many rows
    plain = _dataset(table, target=("target",), task=task)
    groups = duplicate_groups(plain.features[plain.plan.features])
    assert len(np.unique(groups)) < 0.9 * len(groups)
    note = next(n for n in plain.notes if "repeat another row's features" in n)
    assert note.endswith("; group_duplicates keeps copies in one fold")
    folds_per_group = pd.Series(plain.folds).groupby(groups).nunique()
    assert (folds_per_group > 1).any()  # random folds split copies between train and valid
    grouped = _dataset(table, target=("target",), task=task, group_duplicates=True)
    assert not any("repeat another row" in n for n in grouped.notes)
    assert (pd.Series(grouped.folds).groupby(groups).nunique() == 1).all()
    sizes = np.bincount(grouped.folds)
    assert len(sizes) == 5 and sizes.max() - sizes.min() < 0.02 * len(groups)
    if task is Task.MULTICLASS:  # still stratified
        shares = [np.mean(grouped.target.values[grouped.folds == k] == 3) for k in range(5)]
        assert max(shares) - min(shares) < 0.03
    with pytest.raises(ConfigError, match="group_duplicates and fold_column both decide the folds"):
        TuneConfig.of(group_duplicates=True, fold_column="kfold")
    two_rows = pd.DataFrame({"x": [1.0, 2.0] * 10, "y": [0, 1] * 10})
    with pytest.raises(DataError, match="needs at least 5 distinct rows, but the table has 2"):
        _dataset(LoadedTable(two_rows, "mem"), target=("y",), group_duplicates=True)


@pytest.mark.parametrize("singles", [3, 200])
def test_grouped_folds_keep_groups_whole_whatever_their_mix_of_single_and_repeated_rows(
    singles: int,
) -> None:
    # Rows seen once and groups of copies are split apart, each stratified; with too few of
    # either to split in 5, the table is split whole.
    rng = np.random.default_rng(0)
    groups = np.concatenate([np.arange(singles), np.repeat(np.arange(singles, singles + 40), 3)])
    labels = rng.integers(0, 2, size=singles + 40)[groups]
    target = encode_target(pd.DataFrame({"y": labels}), Task.BINARY)
    folds = assign_folds(target, 5, seed=1, groups=groups)
    assert (pd.Series(folds).groupby(groups).nunique() == 1).all()
    assert set(folds) == set(range(5))
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 6
    assert not np.array_equal(folds, assign_folds(target, 5, seed=2, groups=groups))


def _copy_inputs(pre: Preprocessor, x: np.ndarray) -> np.ndarray:
    """The copy columns of a transformed matrix, back in their own units: the copies' mean
    target (shrunk) and log(1 + copies)."""
    copies = pre.copies_
    assert copies is not None
    return x[:, -copies.n_features :] * copies.scale + copies.mean


def test_copy_encoding_never_shows_a_row_its_own_target(wine: Path) -> None:
    ds = _dataset(load_table(str(wine)), target=("target",), task=Task.REGRESSION)
    y = ds.target.values.astype(float)
    groups = duplicate_groups(ds.features[ds.plan.features])
    sizes = np.bincount(groups)[groups]
    row = int(np.flatnonzero(sizes >= 4)[0])  # a wine measured at least 4 times
    twins = np.flatnonzero((groups == groups[row]) & (np.arange(len(y)) != row))

    def encode(target: np.ndarray) -> tuple[Preprocessor, np.ndarray]:
        pre = Preprocessor(ds.plan, Preprocessing(numeric_bins=0, copy_encoding=True))
        x = pre.fit_transform(ds.features, target, Task.REGRESSION)
        return pre, _copy_inputs(pre, x)

    pre, before = encode(y)
    assert pre.copies_ is not None and 0.2 < pre.copies_.share < 0.6
    assert pre.feature_names_[-2:] == ["copies__target", "copies__count"]
    changed = y.copy()
    changed[row] += 3.0
    _, after = encode(changed)
    # Its own value is cross-fitted: computed without its own target ...
    np.testing.assert_allclose(after[row], before[row], atol=1e-6)
    # ... while copies in other parts see it move.
    assert np.any(after[twins, 0] > before[twins, 0] + 0.1)
    # A training row counts only the copies outside its own part, never itself.
    counted = np.round(np.expm1(before[:, 1]), 4)  # float32 inputs
    assert np.all(counted <= sizes - 1) and np.all(counted[sizes == 1] == 0)
    assert np.any((counted > 0) & (counted < sizes - 1))


def test_new_rows_get_the_copies_of_every_training_row(wine: Path) -> None:
    ds = _dataset(load_table(str(wine)), target=("target",), task=Task.REGRESSION)
    y = ds.target.values.astype(float)
    train = ds.folds != 0
    pre = Preprocessor(ds.plan, Preprocessing(numeric_bins=0, copy_encoding=True))
    pre.fit_transform(ds.features[train], y[train], Task.REGRESSION)
    valid = ds.features[~train]
    got = _copy_inputs(pre, pre.transform(valid))
    # Count the identical training rows by the raw values, independently of the row keys.
    cols = list(ds.plan.features)
    train_rows = ds.features.loc[train, cols].assign(y=y[train])
    stats = train_rows.groupby(cols).y.agg(["count", "mean"])
    looked = valid[cols].merge(stats, left_on=cols, right_index=True, how="left")
    n_copies = looked["count"].fillna(0).to_numpy()
    assert (n_copies > 0).mean() > 0.1  # validation rows with copies in training
    np.testing.assert_allclose(np.expm1(got[:, 1]), n_copies, atol=1e-4)
    prior = y[train].mean()
    np.testing.assert_allclose(got[n_copies == 0, 0], prior, atol=1e-5)
    # With copies: their mean, shrunk towards the training mean (never past either).
    mean = looked["mean"].to_numpy()
    has = n_copies > 0
    lo, hi = np.minimum(mean[has], prior), np.maximum(mean[has], prior)
    assert np.all((got[has, 0] >= lo - 1e-5) & (got[has, 0] <= hi + 1e-5))
    assert np.corrcoef(got[has, 0], mean[has])[0, 1] > 0.9
    # The state is JSON and gives the same inputs back.
    back = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    np.testing.assert_array_equal(back.transform(valid), pre.transform(valid))


def test_copy_encoding_needs_copies_and_keys_equal_rows_only(credit_g: Path) -> None:
    from dnntune.data._copies import row_keys

    ds = _dataset(load_table(str(credit_g)), target=("target",))
    y = ds.target.values
    pre = Preprocessor(ds.plan, Preprocessing(copy_encoding=True))
    x = pre.fit_transform(ds.features, y, Task.BINARY)
    plain = Preprocessor(ds.plan).fit(ds.features)
    # No two credit applications are alike: nothing to encode, the inputs are the usual ones.
    assert pre.copies_ is None and pre.to_dict()["copies"] is None
    np.testing.assert_array_equal(x, plain.transform(ds.features))
    assert len(np.unique(row_keys(x))) == len(x)
    rows = np.array([[0.0, 1.5], [-0.0, 1.5], [0.0, -1.5], [1.5, 0.0]], dtype=np.float32)
    keys = row_keys(rows)
    assert keys[0] == keys[1] and len(set(keys.tolist())) == 3
    assert row_keys(rows[:0]).shape == (0,)  # an empty table has no keys, and no error


@pytest.mark.parametrize(
    ("task", "n_targets"),
    [(Task.BINARY, 1), (Task.MULTICLASS, 3), (Task.MULTILABEL, 2), (Task.REGRESSION, 1)],
)
def test_copy_inputs_per_task(task: Task, n_targets: int) -> None:
    from dnntune.data._copies import CopyEncoder

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)[rng.integers(0, 40, 400)]  # many copies
    signal = x[:, 0] > 0
    y: np.ndarray = {
        Task.BINARY: signal.astype(np.int64),
        Task.MULTICLASS: signal.astype(np.int64) + (x[:, 1] > 1),
        Task.MULTILABEL: np.stack([signal, x[:, 1] > 0], axis=1).astype(np.int64),
        Task.REGRESSION: x[:, 0] + rng.normal(scale=0.1, size=400),
    }[task]
    fitted = CopyEncoder.fit_transform(x, y, task, n_classes=3)
    assert fitted is not None
    encoder, train_cols = fitted
    assert train_cols.shape == (400, n_targets + 1) and np.isfinite(train_cols).all()
    assert len(encoder.feature_names()) == n_targets + 1
    # Each target column follows what it encodes (its copies' target, cross-fitted).
    targets = y.reshape(400, -1) if task is not Task.MULTICLASS else np.eye(3)[y]
    for j in range(n_targets):
        assert np.corrcoef(train_cols[:, j], targets[:, j])[0, 1] > 0.8
    assert np.isfinite(encoder.transform(x[:5])).all()


def test_a_table_with_thousands_of_columns_prepares() -> None:
    import torch

    from dnntune.data import prepare_fold

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60, 3000)), columns=[f"c{i}" for i in range(3000)])
    frame["y"] = rng.integers(0, 2, 60)
    ds = _dataset(LoadedTable(frame, "wide"), target=("y",), folds=2)
    fold = prepare_fold(ds, 0, torch.device("cpu"), Preprocessing())
    assert fold.tensors.x_train.shape[1] == 3000  # 60 rows: no bins
    assert torch.isfinite(fold.tensors.x_train).all()
