"""The Python API: dnntune.tune(...) and its result."""

from __future__ import annotations

import ast
import json
import re
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

import dnntune
from dnntune.artifacts import load_model
from dnntune.testing import TINY_SPACE, write_space


def test_public_names_are_sorted_and_importable() -> None:
    assert dnntune.__all__ == sorted(dnntune.__all__)
    for name in dnntune.__all__:
        assert getattr(dnntune, name) is not None


def test_tune_returns_study_params_value_and_trained_model(tmp_path: Path, credit_g: Path) -> None:
    result = dnntune.tune(
        data=str(credit_g),
        target=("target",),
        trials=3,
        folds=3,
        space=str(write_space(tmp_path / "s.yaml")),
        output_dir=str(tmp_path / "run"),
    )
    assert isinstance(result.study, optuna.Study)
    assert result.best_value == result.study.best_value
    assert set(result.best_params) == {
        "optimizer",
        "num_layers",
        "hidden_size",
        "dropout",
        "learning_rate",
    }
    model = result.model
    assert isinstance(model, torch.nn.Module)
    assert len(result.models) == 3
    # The saved model reproduces the in-memory one and its validation score.
    loaded = load_model(tmp_path / "run" / "model")
    assert loaded.manifest["value"] == pytest.approx(result.best_value)
    x = torch.randn(4, loaded.preprocessors[0].n_features)
    with torch.inference_mode():
        np.testing.assert_allclose(loaded.models[0](x).numpy(), model(x).numpy(), rtol=1e-6)
    manifest = json.loads((tmp_path / "run" / "model" / "manifest.json").read_text())
    assert manifest["versions"]["torch"] == torch.__version__
    assert manifest["data"]["rows"] == 1000 and len(manifest["data"]["sha256"]) == 64


def test_timeout_bounds_the_trial_in_flight(tmp_path: Path, credit_g: Path) -> None:
    slow = TINY_SPACE.replace("epochs: 4", "epochs: 10000")
    start = time.monotonic()
    result = dnntune.tune(
        data=str(credit_g),
        target=("target",),
        timeout=4.0,
        patience=10000,
        space=str(write_space(tmp_path / "s.yaml", slow)),
        output_dir=str(tmp_path / "run"),
    )
    elapsed = time.monotonic() - start
    assert elapsed < 12, elapsed
    trials = result.study.trials
    assert trials[-1].state is optuna.trial.TrialState.PRUNED
    assert trials[-1].user_attrs["stop_reason"] == "timeout"
    assert trials[-1].user_attrs["epochs_run"] >= 1  # counted in the summary's epochs
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["trials"] == {"pruned": len(trials)}


def test_a_small_real_run_prunes_trials(tmp_path: Path, credit_g: Path) -> None:
    space = TINY_SPACE.replace("epochs: 4", "epochs: 8").replace("high: 1.0e-2", "high: 3.0e-1")
    result = dnntune.tune(
        data=str(credit_g),
        target=("target",),
        trials=14,
        folds=3,
        sampler="random",
        seed=3,
        space=str(write_space(tmp_path / "s.yaml", space)),
        output_dir=str(tmp_path / "run"),
    )
    states = [t.state for t in result.study.trials]
    assert optuna.trial.TrialState.PRUNED in states, states
    pruned = [t for t in result.study.trials if t.state is optuna.trial.TrialState.PRUNED]
    assert all(t.intermediate_values for t in pruned)
    # A pruned trial stopped before its last fold's last epoch.
    assert all(t.last_step < 3 * 8 for t in pruned)


STAGES = [
    "config",
    "data",
    "space",
    "model",
    "engine",
    "objective",
    "samplers",
    "pruners",
    "storage",
    "artifacts",
    "inference",
    "refit",
    "study",
    "parallel",
    "report",
    "compare",
    "cli",
]


def _stage(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "dnntune" or len(parts) < 2:
        return None
    return parts[1]


def test_data_flows_one_way() -> None:
    """A stage imports only from stages to its left (exceptions and helpers are shared)."""
    order = {s: i for i, s in enumerate(STAGES)}
    order.update(
        {
            "samplers": order["objective"] + 1,
            "pruners": order["objective"] + 1,
            "storage": order["objective"] + 1,
        }
    )
    root = Path(dnntune.__file__).parent
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        mine = rel.parts[0].removesuffix(".py")
        if mine not in order:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                other = _stage(node.module)
                if other in order and other != mine:
                    assert order[other] < order[mine], f"{rel} imports dnntune.{other}"


def test_a_study_from_before_the_bins_resumes_only_without_them(
    tmp_path: Path, credit_g: Path
) -> None:
    from dnntune.config import TuneConfig
    from dnntune.exceptions import StorageError
    from dnntune.study import CONFIG_ATTR

    settings = {
        "data": str(credit_g),
        "target": ("target",),
        "folds": 2,
        "max_folds": 1,
        "space": str(write_space(tmp_path / "s.yaml")),
        "output_dir": str(tmp_path / "run"),
    }
    first = dnntune.tune(trials=1, **settings)
    stored = first.study.user_attrs[CONFIG_ATTR]
    # What the first dnntune stored: no numeric_bins (it had none), no bin_encoding, no
    # group_duplicates, no fold_seed (its folds came from the seed), no copy encoding.
    later = (
        "numeric_bins",
        "bin_encoding",
        "group_duplicates",
        "fold_seed",
        "categorical",
        "copy_encoding",
    )
    old = {k: v for k, v in stored.items() if k not in later}
    first.study.set_user_attr(CONFIG_ATTR, old)
    with pytest.raises(StorageError, match=r"numeric_bins: 0, now 32") as refused:
        dnntune.tune(trials=2, **settings)
    assert "copy_encoding: False, now True" in str(refused.value)
    with pytest.raises(StorageError, match=r"copy_encoding: False, now True"):
        dnntune.tune(trials=2, numeric_bins=0, **settings)
    # No bins: no encoding to match.
    again = dnntune.tune(trials=2, numeric_bins=0, copy_encoding=False, **settings)
    assert len(again.study.trials) == 2
    # What the next one stored: 16 one-hot bins, before bin_encoding existed.
    first.study.set_user_attr(CONFIG_ATTR, {**old, "numeric_bins": 16})
    with pytest.raises(StorageError, match=r"bin_encoding: 'onehot', now 'linear'"):
        dnntune.tune(trials=3, numeric_bins=16, copy_encoding=False, **settings)
    again = dnntune.tune(
        trials=3, numeric_bins=16, bin_encoding="onehot", copy_encoding=False, **settings
    )
    assert len(again.study.trials) == 3
    # Folds split with another seed than the run's are another study.
    first.study.set_user_attr(CONFIG_ATTR, {**stored, "fold_seed": 7})
    with pytest.raises(StorageError, match=r"fold_seed: 7, now 42"):
        dnntune.tune(trials=4, **settings)
    again = dnntune.tune(trials=4, fold_seed=7, **settings)
    assert len(again.study.trials) == 4
    # Before the fixed defaults were stored, a study's space listed its own parameters only.
    # The previous release trained the others with today's defaults: it resumes as it is.
    own = ("optimizer", "num_layers", "hidden_size", "dropout", "learning_rate", "epochs")
    old_space = {k: v for k, v in stored["space"].items() if k in own}
    first.study.set_user_attr(CONFIG_ATTR, {**stored, "space": old_space})
    assert len(dnntune.tune(trials=5, **settings).study.trials) == 5
    # The releases before it (no bin_encoding stored) had no schedule: a constant rate, which
    # a space file restores.
    first.study.set_user_attr(CONFIG_ATTR, {**old, "numeric_bins": 0, "space": old_space})
    with pytest.raises(StorageError, match=r"\(space: lr_schedule 'constant', now 'cosine'\)"):
        dnntune.tune(trials=6, numeric_bins=0, copy_encoding=False, **settings)
    constant = write_space(tmp_path / "constant.yaml", TINY_SPACE + "lr_schedule: constant\n")
    again = dnntune.tune(
        trials=6, numeric_bins=0, copy_encoding=False, **{**settings, "space": str(constant)}
    )
    assert len(again.study.trials) == 6
    assert TuneConfig.from_stored({"data": "x.csv"}).numeric_bins == 0
    stored_16 = TuneConfig.from_stored({"data": "x.csv", "numeric_bins": 16})
    assert (stored_16.numeric_bins, stored_16.bin_encoding) == (16, "onehot")
    assert TuneConfig.from_stored({"data": "x.csv"}).copy_encoding is False
    # Grouped folds have no copy encoding, asked for or not: the same study either way.
    grouped = TuneConfig(data="x.csv", group_duplicates=True)
    assert not grouped.copies
    assert (
        grouped.identity() == TuneConfig(**{**grouped.__dict__, "copy_encoding": False}).identity()
    )
    assert grouped.identity() != TuneConfig(data="x.csv").identity()


def test_categorical_columns_are_one_hot_in_the_saved_model_and_part_of_the_study(
    tmp_path: Path, credit_g: Path
) -> None:
    from dnntune.data import load_table
    from dnntune.exceptions import StorageError

    settings = {
        "data": str(credit_g),
        "target": "target",
        "folds": 2,
        "max_folds": 1,
        "space": str(write_space(tmp_path / "s.yaml")),
        "output_dir": str(tmp_path / "run"),
    }
    result = dnntune.tune(trials=1, categorical="duration,age", **settings)
    pre = load_model(tmp_path / "run").preprocessors[0]
    assert {"age", "duration"} <= set(pre.plan.categorical) and pre.plan.numeric == [
        "credit_amount"
    ]
    assert "duration=12" in pre.feature_names_  # months as a level, not a quantity
    assert not any(n.startswith("duration__bin") for n in pre.feature_names_)
    frame = load_table(str(credit_g)).frame
    proba = dnntune.load(tmp_path / "run").predict(frame)["proba_1"].to_numpy()
    # The same months read as text (as a column with a word in it is) are the same levels.
    as_text = frame.assign(duration=frame["duration"].astype(int).astype(str))
    again = dnntune.load(tmp_path / "run").predict(as_text)["proba_1"].to_numpy()
    np.testing.assert_allclose(again, proba, rtol=1e-6)
    refused = r"different settings \(categorical: \['age', 'duration'\], now \[\]\)"
    with pytest.raises(StorageError, match=refused):
        dnntune.tune(trials=1, **settings)
    same = dnntune.tune(trials=1, categorical=("duration", "age", "age"), **settings)
    assert same.study.trials == result.study.trials


def test_folds_past_the_memory_budget_are_prepared_again_with_the_same_results(
    tmp_path: Path, credit_g: Path
) -> None:
    """A table too large to keep its K folds prepared still trains: the folds past the budget
    are prepared again by each trial that reaches them, with the same results, and the best
    model keeps no fold's inputs."""
    import sys

    from dnntune.config import TuneConfig
    from dnntune.data import dataset_from_config
    from dnntune.engine import resolve_metric
    from dnntune.objective import Objective, prepare_fold
    from dnntune.space import load_space

    dataset = dataset_from_config(TuneConfig(data=str(credit_g), target="target", folds=3))
    space = load_space(write_space(tmp_path / "s.yaml"))
    metric = resolve_metric(None, dataset.task)
    one_fold = prepare_fold(dataset, 0, torch.device("cpu")).tensors.nbytes
    runs = {}
    notes: list[str] = []
    for budget in (sys.maxsize, int(1.5 * one_fold), 0):
        objective = Objective(
            dataset,
            space,
            metric,
            device=torch.device("cpu"),
            fold_cache_bytes=budget,
            on_note=notes.append,
        )
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
        )
        study.optimize(objective, n_trials=2)
        assert objective.best is not None
        assert all(f.tensors.nbytes == 0 for f in objective.best.folds)
        runs[budget] = (objective.cached_folds, [t.value for t in study.trials], objective.best)
    everything, first_only, none = runs.values()
    assert (everything[0], first_only[0], none[0]) == ([0, 1, 2], [0], [])
    assert len(notes) == 2  # once per objective that could not keep every fold
    assert notes[0].startswith("fold 1's tensors (0.00 GiB) do not fit beside the 1 fold(s)")
    assert "each trial that reaches a fold past those prepares it again" in notes[0]
    for _, values, best in (first_only, none):
        np.testing.assert_allclose(values, everything[1], rtol=1e-6)
        for outputs, expected in zip(best.oof_outputs, everything[2].oof_outputs, strict=True):
            np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)
    # A run's memory share (a worker's --memory-share) reaches its objective, and the note the user.
    from dnntune.study import tune as tune_here

    said: list[str] = []
    run = tune_here(
        data=str(credit_g),
        target=("target",),
        trials=1,
        folds=2,
        space=str(write_space(tmp_path / "s.yaml")),
        output_dir=str(tmp_path / "run"),
        memory_share=1e-15,  # not a byte: no fold kept
        on_note=said.append,
    )
    assert run.best_value == pytest.approx(run.study.best_value)
    assert [m for m in said if m.startswith("fold 0's tensors")], said


def test_numeric_bins_and_copy_inputs_reach_the_model_and_can_be_turned_off(
    tmp_path: Path, wine: Path
) -> None:
    # 4,898 rows: 2 folds leave ~2,450 training rows, room for 4 bins per numeric column.
    # About a fifth of the wines repeat another's measurements, so the copy encoding applies.
    widths, notes = {}, {}
    for bins, copies in ((32, False), (0, False), (0, True)):
        said: list[str] = []
        result = dnntune.tune(
            data=str(wine),
            target=("target",),
            task="regression",
            trials=1,
            folds=2,
            max_folds=1,
            numeric_bins=bins,
            copy_encoding=copies,
            space=str(write_space(tmp_path / "s.yaml")),
            output_dir=str(tmp_path / f"run{bins}{copies}"),
            on_note=said.append,
        )
        assert result.model is not None
        widths[bins, copies] = result.model[0].in_features
        notes[bins, copies] = [m for m in said if "copy encoding" in m]
    assert widths[0, False] == 11  # the 11 measured columns, standardized
    assert widths[32, False] > widths[0, False] + 11  # each column also has its bins
    assert widths[0, True] == 11 + 2  # the copies' mean target and their count
    # The user is told once, with the share of training rows that have a copy.
    assert notes[32, False] == notes[0, False] == []
    (note,) = notes[0, True]
    assert re.match(r"\d+% of fold 0's training rows have an identical training row; ", note)
    assert note.endswith("(--no-copy-encoding turns it off)")


OOM_SPACE = """\
hidden_size: {choices: [16, 24]}
num_layers: 1
epochs: 2
"""


def test_a_trial_out_of_memory_fails_alone(
    tmp_path: Path, credit_g: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A GPU that cannot hold hidden_size 24 (simulated: no GPU here, and the message is
    # CUDA's). The trial fails with the reason recorded; the study goes on.
    import dnntune.objective

    real = dnntune.objective.make_mlp

    def make_mlp(**kwargs):
        if kwargs["hidden_size"] == 24:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 40.00 GiB")
        return real(**kwargs)

    monkeypatch.setattr(dnntune.objective, "make_mlp", make_mlp)
    result = dnntune.tune(
        data=str(credit_g),
        target=("target",),
        trials=2,
        folds=2,
        sampler="grid",
        space=str(write_space(tmp_path / "s.yaml", OOM_SPACE)),
        output_dir=str(tmp_path / "run"),
    )
    trials = {t.params["hidden_size"]: t for t in result.study.trials}
    failed = trials[24]
    assert failed.state is optuna.trial.TrialState.FAIL
    assert failed.user_attrs["fail_reason"] == (
        "out of memory: CUDA out of memory. Tried to allocate 40.00 GiB"
    )
    assert trials[16].state is optuna.trial.TrialState.COMPLETE
    assert result.best_params["hidden_size"] == 16
    # The failed trial's epochs are not counted as saved: the budget is the other trial's.
    epochs = json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"]
    assert epochs["budget"] == 2 * 2 and epochs["run"] == trials[16].user_attrs["epochs_run"]


def test_out_of_memory_is_told_from_other_errors() -> None:
    from dnntune.objective import is_out_of_memory

    try:  # a real failed allocation on the CPU: 4 EiB fits in no machine
        torch.empty(1 << 60)
    except RuntimeError as exc:
        assert is_out_of_memory(exc), exc
    else:
        pytest.fail("allocated 4 EiB")
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("out of memory"))  # only PyTorch's errors
