"""dnntune compare: the leaderboard's numbers, then a real run through the CLI."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import optuna
import pandas as pd
import pytest

from dnntune.compare import leaderboard
from dnntune.storage import open_storage
from dnntune.study import CONFIG_ATTR
from dnntune.testing import write_space


def _curve(values: list[float]) -> pd.DataFrame:
    best, rows = -1.0, []
    for i, v in enumerate(values):
        best = max(best, v)
        rows.append({"number": i, "value": v, "best": best, "seconds": 10.0 * (i + 1)})
    return pd.DataFrame(rows)


def test_leaderboard_numbers() -> None:
    curves = {
        "fast": [_curve([0.5, 0.91, 0.91]), _curve([0.89, 0.905, 0.90])],
        "slow": [_curve([0.5, 0.6, 0.80]), _curve([0.5, 0.7, 0.82])],
    }
    board = leaderboard(curves, {"fast": [30.0, 32.0], "slow": [40.0, 40.0]}, maximize=True)
    assert list(board["sampler"]) == ["fast", "slow"]
    fast = board.iloc[0]
    assert fast["best_mean"] == pytest.approx(0.9075)
    assert fast["best_std"] == pytest.approx(0.0025)
    # within 1% of the best value of any run (0.91): >= 0.9009, reached at trial 2 by both
    assert fast["trials_to_99pct"] == 2 and fast["seconds_to_99pct"] == 20.0
    assert fast["reached_99pct"] == "2/2" and fast["wall_s"] == 31.0
    assert board.iloc[1]["reached_99pct"] == "0/2"


@pytest.mark.slow
def test_compare_cli(cli, tmp_path: Path, credit_g: Path) -> None:
    space = write_space(tmp_path / "s.yaml")
    r = cli(
        "compare",
        "--data",
        str(credit_g),
        "--target",
        "target",
        "--samplers",
        "random,tpe",
        "--repeats",
        "2",
        "--trials",
        "3",
        "--folds",
        "3",
        "--max-folds",
        "1",
        "--space",
        str(space),
        "--jobs",
        "2",
        "--categorical",
        "duration",
        "--output-dir",
        "cmp",
    )
    assert r.returncode == 0, r
    assert "Leaderboard (2 repeats per sampler, best first):" in r.stdout
    # Progress while the runs go: one note as each of the 4 ends.
    assert "Comparing 2 samplers x 2 repeats..." in r.stderr
    assert (
        len(
            re.findall(
                r"^note: run \d of 4 done: sampler (random|tpe), repeat [12] \(", r.stderr, re.M
            )
        )
        == 4
    )
    assert "trials_to_99pct" in r.stdout and "random" in r.stdout and "tpe" in r.stdout
    # sampler, best mean and std, trials and seconds to 99% (or "-"), reached, wall seconds
    row = r"^ *(?:random|tpe) +0\.\d{4} +0\.\d{4} +(?:\d+(?:\.5)? +\d+\.\d|- +-) +\d/2 +\d+\.\d$"
    assert len(re.findall(row, r.stdout, re.M)) == 2, r.stdout
    out = tmp_path / "cmp"
    assert (out / "compare.png").stat().st_size > 10_000
    html = (out / "compare.html").read_text()
    assert "Sampler comparison" in html and "Plotly.newPlot" in html
    summary = json.loads((out / "compare.json").read_text())
    assert [row["sampler"] for row in summary["leaderboard"]] != []
    storage = open_storage(f"journal:{(out / 'compare.journal').resolve()}")
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
    assert len(names) == 4 and all(n.endswith(("-r0", "-r1")) for n in names)
    default = {"optimizer": "AdamW", "num_layers": 2, "hidden_size": 32, "learning_rate": 3e-3}
    for name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        assert study.user_attrs[CONFIG_ATTR]["categorical"] == ["duration"]
        trials = study.trials
        assert len(trials) == 3
        # No warm start: the first trial is the sampler's, not the space's defaults.
        assert {k: trials[0].params[k] for k in default} != default
    # Every run validated on the same rows (fold 0 of the one split), whatever its seed.
    oof = sorted(out.glob("*-r*/model/*_oof.csv"))
    assert len(oof) == 4
    rows = {tuple(pd.read_csv(path)["row"]) for path in oof}
    assert len(rows) == 1 and 333 <= len(rows.pop()) <= 334
    # dnntune report on a comparison folder redraws its page and plot
    (out / "compare.html").unlink()
    r = cli("report", "cmp")
    assert r.returncode == 0, r
    assert "Comparison: cmp/compare.html" in r.stdout and (out / "compare.html").is_file()


def test_leaderboard_prints_counts_seconds_and_dashes(capsys: pytest.CaptureFixture[str]) -> None:
    from dnntune.cli._output import echo_board

    board = pd.DataFrame(
        {
            "sampler": ["tpe", "cmaes"],
            "best_mean": [0.79712, 0.76561],
            "best_std": [0.0003, 0.0161],
            "trials_to_99pct": [7.0, math.nan],
            "seconds_to_99pct": [10.44, math.nan],
            "reached_99pct": ["2/2", "0/2"],
            "wall_s": [15.31, 23.06],
        }
    )
    echo_board(board)
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert lines[1:] == [
        ["tpe", "0.7971", "0.0003", "7", "10.4", "2/2", "15.3"],
        ["cmaes", "0.7656", "0.0161", "-", "-", "0/2", "23.1"],
    ]


@pytest.mark.slow
def test_compare_groups_duplicate_rows(cli, tmp_path: Path, wine: Path) -> None:
    # The white wines repeat rows: with --group-duplicates every study runs on grouped folds
    # (stored in its settings), and the note suggesting the option does not appear. The
    # column settings reach every study too (--categorical in the test above).
    r = cli(
        "compare",
        "--data",
        str(wine),
        "--target",
        "target",
        "--samplers",
        "random",
        "--repeats",
        "1",
        "--trials",
        "1",
        "--folds",
        "3",
        "--max-folds",
        "1",
        "--space",
        str(write_space(tmp_path / "s.yaml")),
        "--group-duplicates",
        "--no-copy-encoding",
        "--output-dir",
        "cmp",
    )
    assert r.returncode == 0, r
    assert "repeat another row's features" not in r.stderr
    storage = open_storage(f"journal:{(tmp_path / 'cmp' / 'compare.journal').resolve()}")
    (summary,) = optuna.get_all_study_summaries(storage)
    assert summary.user_attrs[CONFIG_ATTR]["group_duplicates"] is True
    assert summary.user_attrs[CONFIG_ATTR]["copy_encoding"] is False


def test_compare_rejects_unknown_sampler(cli, tmp_path: Path) -> None:
    r = cli("compare", "--samplers", "random,bayes")
    assert r.returncode == 2 and "unknown sampler 'bayes'" in r.stderr
