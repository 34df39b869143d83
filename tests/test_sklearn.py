"""dnntune's estimators keep scikit-learn's contract: its own estimator checks, Pipeline,
cross_val_score, GridSearchCV, and a model folder that round-trips without pickle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import dnntune
from dnntune.config import SETTINGS, Preprocessing, Training
from dnntune.data import plan_columns
from dnntune.sklearn import (
    DNNClassifier,
    DNNRegressor,
    TunedDNNClassifier,
    TunedDNNRegressor,
    load,
)
from dnntune.space import default_space, fixed_defaults
from dnntune.testing import write_space

FAST = {"num_layers": 1, "hidden_size": 32, "epochs": 30, "device": "cpu"}
# A study of two small trials on two folds, its space a dict.
FAST_SPACE = {
    "num_layers": 1,
    "hidden_size": 32,
    "epochs": 30,
    "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True, "default": 3e-3},
}
TUNED_FAST = {"space": FAST_SPACE, "trials": 2, "folds": 2, "baseline": False, "device": "cpu"}

# Each entry: a check that cannot hold for these estimators, and why.
EXPECTED_FAILED: dict[str, str] = {}


@parametrize_with_checks(
    [
        DNNClassifier(**FAST),
        DNNRegressor(**FAST),
        TunedDNNClassifier(**TUNED_FAST),
        TunedDNNRegressor(**TUNED_FAST),
    ],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED,
)
def test_scikit_learn_estimator_checks(estimator, check) -> None:
    check(estimator)


def _credit(credit_g: Path, rows: int = 400) -> tuple[pd.DataFrame, pd.Series]:
    frame = pd.read_csv(credit_g, sep="\t").head(rows)
    return frame.drop(columns="target"), frame["target"]


def test_the_keywords_are_the_default_configuration() -> None:
    first = default_space().warm_start()
    assert first is not None
    defaults = {**fixed_defaults(), **first}
    for kind in (DNNClassifier, DNNRegressor):
        params = kind().get_params()
        assert {k: params[k] for k in defaults} == defaults
        assert params["numeric_bins"] == Preprocessing().numeric_bins
        assert params["numeric_scaling"] == Preprocessing().numeric_scaling
        assert params["patience"] == Training().patience


@pytest.mark.slow
def test_a_pipeline_with_a_column_transformer_under_cross_val_score(credit_g: Path) -> None:
    X, y = _credit(credit_g)
    numbers = X.select_dtypes("number").columns
    text = X.columns.difference(numbers)
    pipe = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        ("numbers", StandardScaler(), numbers),
                        ("text", OneHotEncoder(handle_unknown="ignore"), text),
                    ],
                    sparse_threshold=0.0,
                ),
            ),
            ("net", DNNClassifier(**FAST, random_state=0)),
        ]
    )
    scores = cross_val_score(pipe, X, y, cv=3, scoring="roc_auc")
    assert scores.shape == (3,) and np.all((scores > 0.6) & (scores <= 1.0))


@pytest.mark.slow
def test_grid_search_over_two_hidden_sizes_on_a_dataframe_with_text(credit_g: Path) -> None:
    X, y = _credit(credit_g)
    search = GridSearchCV(
        DNNClassifier(**{**FAST, "epochs": 10}, random_state=0),
        {"hidden_size": [16, 64]},
        cv=2,
        scoring="roc_auc",
    )
    search.fit(X, y)
    assert search.best_params_["hidden_size"] in (16, 64)
    assert list(search.cv_results_["param_hidden_size"]) == [16, 64]
    best = search.best_estimator_
    assert list(best.feature_names_in_) == list(X.columns)
    assert list(best.classes_) == [0, 1]
    assert best.predict_proba(X).shape == (len(X), 2)


def test_multilabel_and_save_load_round_trip_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    X[::7, 1] = np.nan  # missing values are imputed
    Y = np.stack([X[:, 0] > 0, X[:, 2] + X[:, 3] > 0], axis=1).astype(int)
    clf = DNNClassifier(**FAST, random_state=0).fit(X, Y)
    assert clf.predict(X).shape == (120, 2) and set(np.unique(clf.predict(X))) <= {0, 1}
    again = load(clf.save(tmp_path / "model"))
    assert type(again) is DNNClassifier and again.get_params() == clf.get_params()
    assert np.array_equal(again.predict_proba(X), clf.predict_proba(X))
    assert dnntune.load(tmp_path / "model").predict_array(_frame(X)).shape == (120, 2)

    reg = DNNRegressor(**FAST, random_state=0).fit(X, X[:, 0] * 3 + 1)
    back = load(reg.save(tmp_path / "regressor"))
    assert np.array_equal(back.predict(X), reg.predict(X))
    # Two targets of very different scales: each output in its own units.
    two = np.stack([X[:, 0] * 3 + 1, X[:, 2] * 1000 - 500], axis=1)
    multi = DNNRegressor(**FAST, random_state=0).fit(X, two)
    assert multi.predict(X).shape == (120, 2) and multi.score(X, two) > 0.5
    assert np.array_equal(load(multi.save(tmp_path / "two")).predict(X), multi.predict(X))
    with pytest.raises(ValueError, match="X has 3 features, but DNNRegressor is expecting 4"):
        back.predict(X[:, :3])
    frame = _frame(X).assign(x1=lambda f: f.x1.fillna(np.inf))
    with pytest.raises(ValueError, match="column 'x1' has the value inf in data row 1"):
        DNNRegressor(**FAST).fit(frame, X[:, 0])


def _frame(X: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(X).rename(columns=lambda i: f"x{i}")


@pytest.mark.slow
def test_a_cli_run_loaded_as_an_estimator_predicts_what_dnntune_predict_writes(
    credit_g: Path, tmp_path: Path, cli
) -> None:
    space = write_space(tmp_path / "space.yaml")
    run = cli(
        *("tune", "--data", str(credit_g), "--target", "target", "--space", str(space)),
        *("--trials", "2", "--folds", "3", "--output-dir", "run", "--no-progress", "--no-report"),
    )
    assert run.returncode == 0, run
    out = cli("predict", "run", "--data", str(credit_g), "--output", "pred.csv")
    assert out.returncode == 0, out
    written = pd.read_csv(tmp_path / "pred.csv")
    estimator = load(tmp_path / "run")  # the run's fold models, averaged
    assert isinstance(estimator, DNNClassifier)
    table = pd.read_csv(credit_g, sep="\t")
    proba = estimator.predict_proba(table.drop(columns="target"))
    assert np.allclose(proba, written[["proba_0", "proba_1"]].to_numpy(), rtol=0, atol=1e-12)
    assert np.array_equal(estimator.predict(table), written["prediction"].to_numpy())
    # In a Pipeline, with no retraining.
    assert np.array_equal(Pipeline([("net", estimator)]).predict(table), estimator.predict(table))


def test_the_tuned_keywords_are_the_settings_of_dnntune_tune() -> None:
    for kind in (TunedDNNClassifier, TunedDNNRegressor):
        params = kind().get_params()
        assert params.pop("random_state") is None and params.pop("space") is None
        assert params.pop("categorical") is None  # no column named
        assert params == {name: SETTINGS[name].default for name in params}


@pytest.mark.slow
def test_optuna_search_cv_over_a_network(credit_g: Path) -> None:
    from optuna.distributions import IntDistribution
    from optuna_integration import OptunaSearchCV

    X, y = _credit(credit_g, rows=300)
    search = OptunaSearchCV(
        DNNClassifier(**{**FAST, "epochs": 10}, random_state=0),
        {"hidden_size": IntDistribution(8, 64, log=True)},
        cv=2,
        n_trials=2,
        scoring="roc_auc",
        random_state=0,
    )
    search.fit(X, y)
    assert len(search.trials_) == 2 and 8 <= search.best_params_["hidden_size"] <= 64
    assert 0.5 < search.best_score_ <= 1.0
    assert search.predict_proba(X).shape == (len(X), 2)


@pytest.mark.slow
def test_a_tuned_classifier_runs_the_study_of_dnntune_tune(credit_g: Path, tmp_path: Path) -> None:
    """Same rows, folds, seed and space: the estimator's study has the CLI study's values,
    trial for trial; its cv_results_ describe that study; it saves and loads exactly."""
    X, y = _credit(credit_g, rows=300)
    frame = X.assign(target=y)
    frame.to_csv(tmp_path / "credit.csv", index=False)
    space = write_space(tmp_path / "space.yaml")
    codes = plan_columns(X).categorical  # integer codes, which dnntune tune one-hot encodes
    settings = {"space": str(space), "trials": 3, "folds": 3, "categorical": codes, "device": "cpu"}
    result = dnntune.tune(
        str(tmp_path / "credit.csv"), "target", **settings, output_dir=str(tmp_path / "run")
    )
    clf = TunedDNNClassifier(**settings, random_state=42).fit(X, y)
    cli_values = [t.value for t in result.study.trials]
    assert [t.value for t in clf.study_.trials] == cli_values
    assert clf.best_score_ == result.best_value and clf.best_params_ == result.best_params
    assert result.baseline is not None and clf.baseline_ == {
        **result.baseline.to_dict(),
        "seconds": clf.baseline_["seconds"],
    }

    cv = clf.cv_results_
    assert list(cv["trial"]) == [0, 1, 2] and len(cv["params"]) == 3
    complete = cv["state"] == "COMPLETE"
    assert np.allclose(cv["mean_test_score"][complete], np.array(cli_values)[complete])
    splits = np.stack([cv[f"split{k}_test_score"] for k in range(3)], axis=1)
    assert np.allclose(splits[complete].mean(axis=1), cv["mean_test_score"][complete])
    assert cv["rank_test_score"][clf.best_index_] == 1
    assert cv["mean_test_score"][clf.best_index_] == clf.best_score_
    assert list(cv["param_optimizer"]) == [p["optimizer"] for p in cv["params"]]

    # The delivered model is the run's: the same ensemble (or trial), the same predictions.
    manifest = json.loads((tmp_path / "run" / "model" / "manifest.json").read_text())
    members = [{"trial": m["trial"], "weight": m["weight"]} for m in manifest["members"]]
    assert clf.ensemble_ == (members if len(members) > 1 else None)
    assert len(clf.models_) == 3 * len(members)
    proba = clf.predict_proba(X)
    cli_proba = dnntune.load(tmp_path / "run").predict_array(X)
    assert np.allclose(proba[:, 1], cli_proba, rtol=0, atol=1e-6)
    again = load(clf.save(tmp_path / "tuned"))
    assert type(again) is TunedDNNClassifier and again.get_params() == clf.get_params()
    assert again.best_params_ == clf.best_params_ and again.best_score_ == clf.best_score_
    assert again.ensemble_ == clf.ensemble_
    assert np.array_equal(again.predict_proba(X), proba)
    assert np.array_equal(again.predict(X), clf.predict(X))


@pytest.mark.slow
def test_a_tuned_regressor_with_a_run_folder_resumes_its_study(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X[:, 0] * 2 - X[:, 1] + rng.normal(scale=0.1, size=200)
    keywords = {**TUNED_FAST, "output_dir": str(tmp_path / "run"), "random_state": 0}
    first = TunedDNNRegressor(**keywords).fit(X, y)
    assert len(first.study_.trials) == 2
    assert (tmp_path / "run" / "study.db").is_file()
    assert (tmp_path / "run" / "summary.json").is_file()
    again = TunedDNNRegressor(**{**keywords, "trials": 3}).fit(X, y)
    assert [t.number for t in again.study_.trials] == [0, 1, 2]
    assert any("resuming study" in n for n in again.notes_)
    assert again.score(X, y) > 0.5
    # Other rows are another study, refused in the same stored study by name.
    with pytest.raises(ValueError, match="different settings"):
        TunedDNNRegressor(**{**keywords, "study": again.study_.study_name}).fit(X[:150], y[:150])


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_a_target_far_from_unit_scale_is_learned_in_its_own_units(scale: float) -> None:
    """Standardizing the target in float32 once gave a zero (1e-30) or infinite (1e30) spread;
    the predictions must be the unit-scale model's, in the target's units."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X[:, 0] + 0.1 * rng.normal(size=200)
    base = DNNRegressor(**FAST, random_state=0).fit(X, y).predict(X)
    scaled = DNNRegressor(**FAST, random_state=0).fit(X, y * scale).predict(X)
    np.testing.assert_allclose(scaled / scale, base, rtol=1e-3, atol=1e-3)


def test_robust_scaling_is_a_keyword_and_a_wrong_one_is_a_value_error() -> None:
    """``numeric_scaling="robust"`` keeps an outlier's input bounded, so its prediction stays
    near the training targets; a name that is not a scaling is scikit-learn's ValueError."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X[:, 0] + 0.1 * rng.normal(size=200)
    robust = DNNRegressor(**FAST, numeric_scaling="robust", random_state=0).fit(X, y)
    far = np.array([[1e6, 0.0, 0.0]])
    assert abs(robust.predict(far)[0]) < 10 * np.abs(y).max()
    with pytest.raises(ValueError, match=r"numeric_scaling.*standard, robust"):
        DNNRegressor(**FAST, numeric_scaling="minmax").fit(X, y)
