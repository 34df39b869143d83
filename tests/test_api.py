"""The Python API: dnntune.tune(...) and its result."""

from __future__ import annotations

import ast
import json
import re
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch

import dnntune
from dnntune.artifacts import load_model
from dnntune.exceptions import NoModelError
from dnntune.space import load_space
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
    assert loaded.manifest.best_value == pytest.approx(result.best_value)
    x = torch.randn(4, loaded.preprocessors[0].n_features)
    with torch.inference_mode():
        np.testing.assert_allclose(loaded.models[0](x).numpy(), model(x).numpy(), rtol=1e-6)
    manifest = json.loads((tmp_path / "run" / "model" / "manifest.json").read_text())
    assert manifest["versions"]["torch"] == torch.__version__
    assert manifest["data"]["rows"] == 1000 and len(manifest["data"]["sha256"]) == 64


def slow_epochs(monkeypatch: pytest.MonkeyPatch, seconds: float, first: float = 0.0) -> None:
    """Make every epoch take ``seconds`` more on the clock trials meet the deadline by (the
    process's first epoch ``first`` more again, as PyTorch's one-time costs do): an injected
    clock, so the tests below count epochs instead of timing them."""
    from dnntune import objective

    epochs = [0]
    report = objective._EpochReport.__call__

    def counted(self: objective._EpochReport, epoch: int, score: float) -> bool:
        epochs[0] += 1
        return report(self, epoch, score)

    monkeypatch.setattr(objective._EpochReport, "__call__", counted)
    monkeypatch.setattr(
        objective, "clock", lambda: time.monotonic() + seconds * epochs[0] + first * (epochs[0] > 0)
    )


def test_a_budget_shorter_than_one_epoch_per_fold_delivers_the_folds_it_finished(
    tmp_path: Path, credit_g: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Epochs of 1 s in a 4 s budget: not even one epoch per fold fits, so the first trial is
    not sized; the deadline cuts it at the end of an epoch; it is recorded as cut, not pruned,
    its finished fold is delivered, and a resumed study runs it again first."""
    slow_epochs(monkeypatch, 1.0)
    slow = TINY_SPACE.replace("epochs: 4", "epochs: 10000")
    settings = {
        "data": str(credit_g),
        "target": ("target",),
        "timeout": 4.0,
        "patience": 10000,
        "baseline": False,
        "space": str(write_space(tmp_path / "s.yaml", slow)),
        "output_dir": str(tmp_path / "run"),
    }
    result = dnntune.tune(**settings)
    first = result.study.trials[0]
    assert first.state is optuna.trial.TrialState.FAIL
    assert first.user_attrs["stop_reason"] == "timeout" and first.user_attrs["folds_done"] == 1
    assert 1 <= first.user_attrs["epochs_run"] <= 4 and "sized_epochs" not in first.user_attrs
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["trials"] == {"cut": 1, "waiting": 1}  # no trial started after the deadline
    # No trial completed: dnntune's own error, naming the states, not Optuna's ValueError...
    with pytest.raises(NoModelError, match=r"no trial of study .* completed \(trials: 1 cut"):
        _ = result.best_value
    # ... but the fold the trial finished is the delivered model, and predict uses it.
    assert any("model delivered is trial 0's 1 of 5 folds" in n for n in result.notes)
    assert result.delivered is not None and result.delivered.manifest.cut_by_deadline
    assert len(result.models) == 1
    frame = pd.read_csv(credit_g, sep="\t").head(20)
    assert dnntune.load(tmp_path / "run").predict(frame)["proba_1"].between(0, 1).all()
    # Resumed, the cut trial runs first, with its parameters.
    again = dnntune.tune(**settings).study.trials
    assert again[1].params == first.params and again[1].user_attrs["retry_of"] == 0


def _sized_run(
    tmp_path: Path, credit_g: Path, *, epochs: int, timeout: float, **extra: object
) -> dnntune.TuneResult:
    """A study on credit_g within ``timeout`` whose trials train ``epochs`` per fold without
    early stopping (the tiny space): its first trial is sized to the time limit."""
    space = TINY_SPACE.replace("epochs: 4", f"epochs: {epochs}")
    return dnntune.tune(
        data=str(credit_g),
        target=("target",),
        timeout=timeout,
        patience=10000,
        baseline=False,
        ensemble=False,
        space=str(write_space(tmp_path / "s.yaml", space)),
        output_dir=str(tmp_path / "run"),
        **extra,
    )


def test_a_budget_shorter_than_one_trial_delivers_a_whole_smaller_trial(
    tmp_path: Path, credit_g: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Epochs of 0.25 s: 5 folds of 40 epochs need 50 s, the budget is 20 s. After its first
    epoch the first trial is sized to the epochs that fit the time left, and completes: a whole
    model of 5 folds, said in a note, trained with the sized epochs."""
    slow_epochs(monkeypatch, 0.25)
    result = _sized_run(tmp_path, credit_g, epochs=40, timeout=20.0)
    first = result.study.trials[0]
    assert first.state is optuna.trial.TrialState.COMPLETE
    sized = first.user_attrs["sized_epochs"]
    assert 5 <= sized["epochs"] < 40 and sized["of"] == 40 and sized["seconds_per_epoch"] >= 0.25
    assert first.user_attrs["epochs_budget"] == 5 * sized["epochs"]
    assert len(first.user_attrs["fold_scores"]) == 5
    assert max(first.user_attrs["best_epochs"]) <= sized["epochs"]
    line = f"trial 0 trained at most {sized['epochs']} of 40 epochs per fold to finish within"
    assert any(line in n for n in result.notes), result.notes
    assert result.best_value == first.value
    manifest = result.delivered.manifest if result.delivered is not None else None
    assert manifest is not None and not manifest.cut_by_deadline and len(manifest.folds) == 5
    assert manifest.members[0].params["epochs"] == sized["epochs"]
    frame = pd.read_csv(credit_g, sep="\t").head(20)
    assert dnntune.load(tmp_path / "run").predict(frame)["proba_1"].between(0, 1).all()


@pytest.mark.filterwarnings("error::UserWarning")  # no step is reported to Optuna twice
def test_the_sizing_times_the_epochs_after_the_first(
    tmp_path: Path, credit_g: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first epoch of 4 s more (one-time costs) and 0.02 s epochs after it: timed from the
    first epoch, not even 5 epochs per fold would fit the 12 s; timed after it, 400 epochs x 5
    folds (40 s) are sized to the many that fit, and the restarted first fold reports each
    step once."""
    slow_epochs(monkeypatch, 0.02, first=4.0)
    result = _sized_run(tmp_path, credit_g, epochs=400, timeout=12.0, trials=1)
    first = result.study.trials[0]
    assert first.state is optuna.trial.TrialState.COMPLETE
    sized = first.user_attrs["sized_epochs"]
    assert 10 <= sized["epochs"] < 400 and sized["seconds_per_epoch"] < 0.5, sized


@pytest.mark.slow
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


# Every module of the package, in the order data flows: a module imports only from those to
# its left. Modules on one line are one stage (they do not import each other's).
STAGES = [
    ("__init__", "_names", "_redact", "_signals", "_runtime"),
    ("exceptions",),
    ("_logs",),
    ("config",),
    ("data",),
    ("space",),
    ("model",),
    ("engine",),
    ("baseline",),
    ("_owners",),
    ("objective",),
    ("samplers", "pruners", "storage", "dashboard", "tracking"),
    ("artifacts",),
    ("ensemble",),
    ("inference", "refit"),
    ("evaluate",),
    ("export",),
    ("study",),
    ("parallel",),
    ("report",),
    ("compare",),
    ("api",),
    ("sklearn",),
    ("cli",),
    ("testing", "__main__"),
]


def _stage(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "dnntune":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def test_data_flows_one_way() -> None:
    """Every module has a stage, and a stage imports only from stages to its left."""
    order = {name: i for i, names in enumerate(STAGES) for name in names}
    root = Path(dnntune.__file__).parent
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        mine = rel.parts[0].removesuffix(".py")
        assert mine in order, f"{rel} belongs to no stage: add it to STAGES"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                other = _stage(node.module)
                if other is not None and other != mine:
                    assert order[other] < order[mine], f"{rel} imports dnntune.{other}"


def test_the_run_folder_files_have_one_writer_each() -> None:
    """manifest.json is written by the model folder's writer only, summary.json by the run
    records' only: no other module names them in a write."""
    root = Path(dnntune.__file__).parent
    writers = {"MANIFEST": set(), "SUMMARY": set()}
    for path in root.rglob("*.py"):
        text = path.read_text()
        for line in text.splitlines():
            if "write_json(" in line or "write_text(" in line:
                for name, literal in (("MANIFEST", "manifest.json"), ("SUMMARY", "summary.json")):
                    if name in line or literal in line:
                        writers[name].add(str(path.relative_to(root)))
    assert writers == {"MANIFEST": {"artifacts/_folder.py"}, "SUMMARY": {"artifacts/_run.py"}}


def _one_fold_of_credit(tmp_path: Path, credit_g: Path, **extra: str) -> dict[str, object]:
    """The settings of a fast study on credit_g: the tiny space, fold 0 of 2."""
    space = str(write_space(tmp_path / "s.yaml"))
    return {
        "data": str(credit_g),
        "target": "target",
        "folds": 2,
        "max_folds": 1,
        "space": space,
        **extra,
    }


def test_a_study_resumes_only_with_its_own_settings_and_format(
    tmp_path: Path, credit_g: Path
) -> None:
    from dnntune.config import CONFIG_FORMAT, TuneConfig
    from dnntune.exceptions import StorageError
    from dnntune.study import CONFIG_ATTR

    settings = _one_fold_of_credit(tmp_path, credit_g, output_dir=str(tmp_path / "run"))
    first = dnntune.tune(trials=1, **settings)
    stored = first.study.user_attrs[CONFIG_ATTR]
    assert stored["format"] == CONFIG_FORMAT
    with pytest.raises(StorageError, match=r"\(numeric_bins: 32, now 0\); rerun with the same"):
        dnntune.tune(trials=2, numeric_bins=0, **settings)
    # Folds split with another seed than the run's are another study.
    first.study.set_user_attr(CONFIG_ATTR, {**stored, "fold_seed": 7})
    with pytest.raises(StorageError, match=r"fold_seed: 7, now 42"):
        dnntune.tune(trials=2, **settings)
    again = dnntune.tune(trials=2, fold_seed=7, **settings)
    assert len(again.study.trials) == 2
    # A study stored in another format (or none: an older dnntune) is refused in one line.
    for format_ in (None, CONFIG_FORMAT + 1):
        first.study.set_user_attr(CONFIG_ATTR, {**stored, "format": format_})
        with pytest.raises(StorageError) as refused:
            dnntune.tune(trials=3, **settings)
        message = str(refused.value)
        assert "\n" not in message
        assert f"settings format is {format_}; this one reads format {CONFIG_FORMAT}" in message
        assert message.endswith("use a new study name")
    # So is a model folder of another format.
    from dnntune.artifacts import FORMAT_VERSION
    from dnntune.exceptions import DataError

    manifest_path = tmp_path / "run" / "model" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "format_version": FORMAT_VERSION - 1}))
    with pytest.raises(DataError) as old_model:
        load_model(tmp_path / "run")
    assert f"has format {FORMAT_VERSION - 1}; this dnntune reads format {FORMAT_VERSION}; " in str(
        old_model.value
    )
    # Grouped folds have no copy encoding, asked for or not: the same study either way.
    grouped = TuneConfig.of(data="x.csv", group_duplicates=True)
    assert not grouped.copies
    assert grouped.identity() == grouped.replace(copy_encoding=False).identity()
    assert grouped.identity() != TuneConfig.of(data="x.csv").identity()


def test_settings_come_from_one_definition() -> None:
    """The API's keywords, the CLI's options and the stored identity follow from SETTINGS."""
    import inspect

    from dnntune.cli import app
    from dnntune.config import SETTINGS, TuneConfig

    signature = inspect.signature(dnntune.tune)
    keywords = {n: p.default for n, p in signature.parameters.items()}
    for name, s in SETTINGS.items():
        assert keywords.pop(name) == s.default, name
        assert f"``{name}``" in dnntune.tune.__doc__ and s.help in dnntune.tune.__doc__
    assert set(keywords) == {"show_progress", "on_note"}
    import typer.main

    command = typer.main.get_command(app).commands["tune"]  # type: ignore[attr-defined]
    options = {p.name for p in command.params}
    assert set(SETTINGS) <= options
    config = TuneConfig.of()
    assert set(config.to_dict()) == set(SETTINGS)
    assert TuneConfig.from_dict(config.to_dict()) == config


def test_messages_name_keywords_for_python_and_options_for_the_cli() -> None:
    from dnntune._names import Message, render, setting_example, setting_name

    text = (
        f"{setting_name('max_folds')} too high; try {setting_example('task', 'binary')} or "
        f"{setting_name('copy_encoding', off=True)}"
    )
    assert Message(text) == "max_folds too high; try task='binary' or copy_encoding=False"
    assert render(Message(text).template, flags=True) == (
        "--max-folds too high; try --task binary or --no-copy-encoding"
    )


def test_the_library_leaves_its_host_process_alone(tmp_path: Path, credit_g: Path) -> None:
    """No warning filters, logging filters or allocator settings outlive a call."""
    import logging
    import warnings

    from dnntune._runtime import tune_allocator

    settings = _one_fold_of_credit(tmp_path, credit_g)
    dnntune.tune(trials=1, output_dir=str(tmp_path / "warm"), **settings)  # imports done
    filters = list(warnings.filters)
    loggers = {n: list(logging.getLogger(n).filters) for n in ("optuna", "optuna.study._optimize")}
    tune_allocator.cache_clear()
    # GP is flagged experimental in some Optuna versions: silenced inside the call only.
    dnntune.tune(trials=2, sampler="gp", output_dir=str(tmp_path / "gp"), **settings)
    assert warnings.filters == filters
    assert {n: list(logging.getLogger(n).filters) for n in loggers} == loggers
    assert tune_allocator.cache_info().currsize == 0  # the command line's to make, never here


def test_help_names_every_keyword_and_what_it_returns() -> None:
    import pydoc

    text = pydoc.render_doc(dnntune.tune, renderer=pydoc.plaintext)
    assert "tune(data: 'str' = 'builtin:breast_cancer', target:" in text
    assert "Run (or resume) a cross-validated Optuna study" in text
    assert "``max_folds`` (default ``None``): Folds each trial runs (<= folds)." in text
    assert "Returns a :class:`TuneResult`" in text


def test_settings_are_checked_at_once_naming_the_keywords() -> None:
    from dnntune.config import TuneConfig
    from dnntune.exceptions import ConfigError

    with pytest.raises(ConfigError) as bad:
        dnntune.tune(folds=1, trials=0, sampler="bayes")
    assert str(bad.value) == (
        "folds must be at least 2, but got 1; unknown sampler 'bayes'; choose one of: grid, "
        "random, tpe, gp, cmaes, qmc; trials must be at least 1, but got 0"
    )
    assert bad.value.cli_message().startswith("--folds must be at least 2, but got 1; ")
    with pytest.raises(ConfigError, match=r"max_folds must be between 1 and folds=3, but got 4"):
        TuneConfig.of(folds=3, max_folds=4)
    with pytest.raises(ConfigError, match=r"unknown setting 'fodls' \(did you mean 'folds'\?\)"):
        TuneConfig.of(fodls=3)
    with pytest.raises(ConfigError, match=r"^patience must be an integer, but got '5'$"):
        TuneConfig.of(patience="5")
    config = TuneConfig.of(target="a, b", categorical=["y", "x,y"], sampler="RANDOM")
    assert config.columns.target == ("a", "b") and config.columns.categorical == ("x", "y")
    assert config.search.sampler == "random"


def test_categorical_columns_are_one_hot_in_the_saved_model_and_part_of_the_study(
    tmp_path: Path, credit_g: Path
) -> None:
    from dnntune.data import load_table
    from dnntune.exceptions import StorageError

    settings = _one_fold_of_credit(tmp_path, credit_g, output_dir=str(tmp_path / "run"))
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

    from dnntune.config import Preprocessing, Training, TuneConfig
    from dnntune.data import FoldCache, dataset_from_config, prepare_fold
    from dnntune.engine import resolve_metric
    from dnntune.objective import Objective
    from dnntune.space import load_space

    config = TuneConfig.of(data=str(credit_g), target="target", folds=3)
    dataset = dataset_from_config(config)
    space = load_space(write_space(tmp_path / "s.yaml"))
    metric = resolve_metric(None, dataset.task)
    cpu = torch.device("cpu")
    one_fold = prepare_fold(dataset, 0, cpu).tensors.nbytes
    runs = {}
    notes: list[str] = []
    for budget in (sys.maxsize, int(1.5 * one_fold), 0):
        folds = FoldCache(dataset, cpu, Preprocessing(), budget=budget, on_note=notes.append)
        objective = Objective(space, metric, folds, Training())
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
        )
        study.optimize(objective, n_trials=2)
        assert objective.best is not None
        assert all(f.tensors.nbytes == 0 for f in objective.best.folds)
        runs[budget] = (folds.kept, [t.value for t in study.trials], objective.best)
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
    from dnntune.study import prepare_run, run_trials

    said: list[str] = []
    config = TuneConfig.of(
        data=str(credit_g),
        target=("target",),
        folds=2,
        space=str(write_space(tmp_path / "s.yaml")),
        output_dir=str(tmp_path / "run"),
    )
    run = prepare_run(config, memory_share=1e-15, on_note=said.append)  # not a byte: none kept
    run_trials(run, 1)
    assert run.result().best_value == pytest.approx(run.study.best_value)
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
    assert note.endswith("(copy_encoding=False turns it off)")


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

    real = dnntune.objective.make_model

    def make_model(**kwargs):
        if kwargs["hidden_size"] == 24:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 40.00 GiB")
        return real(**kwargs)

    monkeypatch.setattr(dnntune.objective, "make_model", make_model)
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


def test_a_new_study_starts_with_the_space_starts_in_order(tmp_path: Path, credit_g: Path) -> None:
    space = write_space(
        tmp_path / "s.yaml",
        "extends: default\nnum_layers: {low: 1, high: 2, default: 1}\nhidden_size: 16\nepochs: 2\n",
    )
    result = dnntune.tune(
        data=str(credit_g), target="target", trials=4, folds=2, space=str(space),
        baseline=False, ensemble=False, output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    starts = load_space(space).warm_starts()
    assert [(s["num_embeddings"], s["batch_norm"]) for s in starts] == [
        ("none", True), ("piecewise_linear", False), ("piecewise_linear", True)
    ]  # fmt: skip
    trials = sorted(result.study.trials, key=lambda t: t.number)
    assert [t.params for t in trials[:3]] == starts
    assert "fixed_params" not in trials[3].system_attrs
    # A resumed study does not start over.
    again = dnntune.tune(
        data=str(credit_g), target="target", trials=5, folds=2, space=str(space),
        baseline=False, ensemble=False, output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    assert len(again.study.trials) == 5
    assert "fixed_params" not in again.study.trials[4].system_attrs
    # A budget below the starts queues only the starts it runs.
    short = dnntune.tune(
        data=str(credit_g), target="target", trials=1, folds=2, space=str(space),
        baseline=False, ensemble=False, output_dir=str(tmp_path / "short"),
    )  # fmt: skip
    assert [t.state for t in short.study.trials] == [optuna.trial.TrialState.COMPLETE]


def test_a_budget_spent_before_a_first_epoch_is_one_line(tmp_path: Path, credit_g: Path) -> None:
    """A millisecond is spent reading the table: no epoch can run, and the error says what the
    time went to (the deadline counts from the call) and, from a probe of two epochs, how long
    one trial of the space's 4 epochs on 5 folds needs."""
    with pytest.raises(NoModelError, match=r"timeout 0.001 s ran out before a first epoch") as e:
        dnntune.tune(
            data=str(credit_g),
            target="target",
            timeout=0.001,
            space=str(write_space(tmp_path / "s.yaml")),
            output_dir=str(tmp_path / "run"),
        )
    line = str(e.value)
    needs = re.search(r"one trial needs about (\d+) s here \(5 folds of 4 epochs of about", line)
    assert needs is not None, line
    total = re.search(r"raise timeout to (\d+) s or more$", line)
    assert total is not None and int(total.group(1)) >= int(needs.group(1)), line
    assert "\n" not in line
