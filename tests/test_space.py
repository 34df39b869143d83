from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest

from dnntune.exceptions import SpaceError
from dnntune.space import (
    CategoricalParam,
    FixedParam,
    FloatParam,
    IntParam,
    default_space,
    load_space,
    parse_space,
    suggest,
)


def test_default_space_is_the_classic_one() -> None:
    space = default_space()
    assert space.params["optimizer"] == CategoricalParam(
        "optimizer", ("Adam", "SGD", "AdamW"), default="AdamW"
    )
    assert space.params["num_layers"].low == 1 and space.params["num_layers"].high == 7
    hidden = space.params["hidden_size"]
    assert isinstance(hidden, IntParam) and (hidden.low, hidden.high) == (16, 128)
    lr = space.params["learning_rate"]
    assert isinstance(lr, FloatParam) and lr.log and (lr.low, lr.high) == (1e-5, 1e-3)


def test_documented_spaces_are_the_shipped_example_files() -> None:
    """Each YAML space docs/search.md shows is a file in examples/ (so its commands run as
    printed), and loads; classic4 extends the classic space with 4 networks per fold."""
    root = Path(__file__).resolve().parents[1]
    blocks = re.findall(r"```yaml\n(.*?)```", (root / "docs" / "search.md").read_text(), re.S)
    shipped = {p.name: p.read_text() for p in (root / "examples").glob("*.yaml")}
    assert len(blocks) == len(shipped) == 2
    for block in blocks:
        name = block.splitlines()[0].removeprefix("# examples/").split(":")[0]
        assert shipped.get(name) == block, name
    classic4 = load_space(root / "examples" / "classic4.yaml")
    assert dict(classic4.tuned) == dict(parse_space("classic").params)
    assert classic4.params["ensemble_size"] == FixedParam("ensemble_size", 4)
    assert load_space(root / "examples" / "space.yaml").tuned.keys() == {
        "optimizer", "num_layers", "hidden_size", "learning_rate", "weight_decay"
    }  # fmt: skip


def test_suggest_stores_plain_strings_and_fills_fixed_values() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    params = suggest(trial, default_space())
    assert isinstance(trial.params["optimizer"], str)
    assert params["epochs"] == 20 and params["batch_size"] is None
    assert set(trial.params) == {
        "optimizer",
        "num_layers",
        "hidden_size",
        "dropout",
        "learning_rate",
        "num_embeddings",
        "batch_norm",
    }


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_space_file_in_yaml_and_toml(tmp_path: Path, suffix: str) -> None:
    if suffix == ".yaml":
        text = """
params:
  optimizer: {choices: [Adam, AdamW]}
  hidden_size: {low: 32, high: 256, step: 32}
  learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true, grid: [1.0e-4, 1.0e-3]}
  weight_decay: {type: float, low: 0.0, high: 0.1}
  activation: [relu, gelu]
  batch_norm: false
  epochs: {value: 7}
"""
    else:
        text = """
[optimizer]
choices = ["Adam", "AdamW"]
[hidden_size]
low = 32
high = 256
step = 32
[learning_rate]
low = 1e-4
high = 1e-2
log = true
grid = [1e-4, 1e-3]
[weight_decay]
type = "float"
low = 0.0
high = 0.1
[activation]
choices = ["relu", "gelu"]
[batch_norm]
value = false
[epochs]
value = 7
"""
    path = tmp_path / f"space{suffix}"
    path.write_text(text)
    space = load_space(path)
    assert space.params["hidden_size"] == IntParam("hidden_size", 32, 256, 32)
    assert set(space.tuned) == {
        "optimizer",
        "hidden_size",
        "learning_rate",
        "weight_decay",
        "activation",
    }
    grid = space.grid(3)
    assert grid["learning_rate"] == [1e-4, 1e-3]
    assert grid["hidden_size"] == [32, 160, 256]
    params = suggest(
        optuna.trial.FixedTrial(
            {
                "optimizer": "Adam",
                "hidden_size": 64,
                "learning_rate": 1e-3,
                "weight_decay": 0.01,
                "activation": "gelu",
            }
        ),
        space,
    )
    assert params["epochs"] == 7 and params["batch_norm"] is False


def test_bad_space_file_reports_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("""
learnig_rate: {low: 1.0e-4, high: 1.0e-2}
num_layers: {low: 5, high: 2}
dropout: {low: 0.1, high: 1.5}
optimizer: {choices: [Adam, Adamm]}
hidden_size: {low: 8, hihg: 64}
weight_decay: {low: 0.0, high: 0.1, log: true}
""")
    with pytest.raises(SpaceError) as info:
        load_space(path)
    problems = info.value.problems
    text = "\n".join(problems)
    assert len(problems) == 7, text
    assert "unknown parameter 'learnig_rate' (did you mean 'learning_rate'?)" in text
    assert "parameter 'num_layers': `low <= high` must hold, but got (low=5, high=2)" in text
    assert "parameter 'dropout': 'high' must be < 1" in text
    assert "parameter 'optimizer': choice must be one of" in text and "'Adamm'" in text
    assert "unknown key 'hihg' (did you mean 'high'?)" in text
    assert "parameter 'hidden_size': an int range needs 'high'" in text
    assert "parameter 'weight_decay': a log range needs low > 0" in text
    assert str(info.value).startswith(f"invalid search space {path}: 7 problems")


def test_unparsable_space_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("num_layers: {low: 1, high: [")
    with pytest.raises(SpaceError, match="cannot parse the file"):
        load_space(path)


def test_grid_discretizes_log_ranges_and_ints() -> None:
    space = parse_space(
        {
            "learning_rate": {"low": 1e-5, "high": 1e-3, "log": True},
            "num_layers": {"low": 1, "high": 7},
        }
    )
    grid = space.grid(3)
    assert grid["learning_rate"] == [1e-5, 1e-4, 1e-3]
    assert grid["num_layers"] == [1, 4, 7]
    assert space.grid_size(3) == 9


def test_starts_are_further_first_trials_within_the_space(tmp_path: Path) -> None:
    space = default_space()
    first, *more = space.warm_starts()
    assert first == space.warm_start() and len(more) == len(space.starts) == 2
    assert more[0] == {**first, "num_embeddings": "piecewise_linear", "batch_norm": False}
    # A file that extends a named space keeps the named space's starts that still fit it.
    fixed_bn = parse_space({"extends": "default", "batch_norm": True})
    assert fixed_bn.starts == ({"num_embeddings": "piecewise_linear"},)
    assert parse_space({"extends": "default", "num_embeddings": "none"}).starts == ()
    own = parse_space({"extends": "default", "starts": [{"num_layers": 5}]})
    assert own.warm_starts()[1]["num_layers"] == 5 and len(own.starts) == 1
    path = tmp_path / "s.yaml"
    path.write_text("extends: classic\nstarts:\n  - {num_layers: 99, dropuot: 0.2}\n")
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert info.value.problems == [
        "'starts' entry 1 sets 'num_layers' to 99, but 'num_layers' lies in [1, 7]",
        "'starts' entry 1 sets 'dropuot', which the space does not tune",
    ]
    with pytest.raises(SpaceError, match="'starts' must be a list of mappings"):
        parse_space({"extends": "classic", "starts": {"num_layers": 2}})
