"""Each bad input: one line naming the problem and the fix, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


def _assert_clean_failure(r, tmp_path: Path, message: str) -> None:
    assert r.returncode == 2, r
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("error: "), r
    assert message in r.stderr, r
    assert not (tmp_path / "runs").exists()


def test_missing_file(cli, tmp_path: Path) -> None:
    r = cli("tune", "--data", "nope.csv", "--target", "y")
    _assert_clean_failure(r, tmp_path, "data file 'nope.csv' does not exist; check the path")


def test_unreadable_file(cli, tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"this is not parquet")
    r = cli("tune", "--data", "bad.parquet", "--target", "y")
    _assert_clean_failure(r, tmp_path, "cannot read 'bad.parquet' as Parquet")


def test_missing_target_lists_close_names(cli, tmp_path: Path, credit_g: Path) -> None:
    r = cli("tune", "--data", str(credit_g), "--target", "targt")
    _assert_clean_failure(
        r, tmp_path, "--target column 'targt' not in the table (did you mean 'target'?)"
    )


@pytest.mark.parametrize("option", ["--drop", "--categorical"])
def test_missing_drop_or_categorical_column(
    cli, tmp_path: Path, credit_g: Path, option: str
) -> None:
    r = cli("tune", "--data", str(credit_g), "--target", "target", option, "agee")
    _assert_clean_failure(
        r, tmp_path, f"{option} column 'agee' not in the table (did you mean 'age'"
    )


def test_empty_table(cli, tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("a,b,y\n")
    r = cli("tune", "--data", "empty.csv", "--target", "y")
    _assert_clean_failure(r, tmp_path, "'empty.csv' has no rows")


def test_single_class_target(cli, tmp_path: Path) -> None:
    pd.DataFrame({"x": range(20), "y": [1] * 20}).to_csv(tmp_path / "one.csv", index=False)
    r = cli("tune", "--data", "one.csv", "--target", "y")
    _assert_clean_failure(r, tmp_path, "target 'y' has a single class (1)")


def test_a_class_too_rare_for_the_folds(cli, tmp_path: Path) -> None:
    # Integer labels (ages, counts) may be quantities: the fix names --task regression too.
    y = [5] * 10 + [6] * 10 + [7] * 10 + [30]
    pd.DataFrame({"x": [0.5, 1.5] * 15 + [2.5], "y": y}).to_csv(tmp_path / "ages.csv", index=False)
    r = cli("tune", "--data", "ages.csv", "--target", "y")
    _assert_clean_failure(
        r,
        tmp_path,
        "class 30 of target 'y' has only 1 rows, fewer than --folds=5; use fewer folds or "
        "merge rare classes, or --task regression if its values are quantities",
    )
    labels = ["a"] * 10 + ["b"] * 10 + ["c"]
    frame = pd.DataFrame({"x": [0.5, 1.5] * 10 + [2.5], "y": labels})
    frame.to_csv(tmp_path / "labels.csv", index=False)
    r = cli("tune", "--data", "labels.csv", "--target", "y")
    _assert_clean_failure(
        r, tmp_path, "fewer than --folds=5; use fewer folds or merge rare classes\n"
    )


def test_non_numeric_regression_target(cli, tmp_path: Path) -> None:
    pd.DataFrame({"x": range(20), "y": list("abcd") * 5}).to_csv(tmp_path / "s.csv", index=False)
    r = cli("tune", "--data", "s.csv", "--target", "y", "--task", "regression")
    _assert_clean_failure(r, tmp_path, "regression target 'y' is not numeric")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        (
            "--sampler",
            "bayes",
            "unknown sampler 'bayes'; choose one of: grid, random, tpe, gp, cmaes, qmc",
        ),
        ("--pruner", "asha", "unknown pruner 'asha'; choose one of: none, median, hyperband"),
        ("--metric", "f1", "unknown metric 'f1'; choose one of: roc_auc, logloss, accuracy"),
        ("--metric", "rmse", "metric 'rmse' does not apply to a binary task"),
        ("--task", "ranking", "unknown task 'ranking'; choose one of: binary, multiclass"),
        ("--numeric-bins", "1", "--numeric-bins must be 0 (off) or between 2 and 1024, but got 1"),
        ("--folds", "1", "--folds must be at least 2, but got 1"),
    ],
)
def test_unknown_names(cli, tmp_path: Path, option: str, value: str, message: str) -> None:
    r = cli("tune", option, value)
    _assert_clean_failure(r, tmp_path, message)


def test_invalid_space_file_lists_every_problem(cli, tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("num_layers: {low: 4, high: 1}\ndropuot: 0.2\n")
    r = cli("tune", "--space", "s.yaml")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "error: invalid search space s.yaml: 2 problems" in r.stderr
    assert "parameter 'num_layers': `low <= high` must hold, but got (low=4, high=1)" in r.stderr
    assert "unknown parameter 'dropuot' (did you mean 'dropout'?)" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_worker_memory_share_out_of_range(cli, tmp_path: Path) -> None:
    r = cli("worker", "--study", "s", "--memory-share", "2")
    _assert_clean_failure(r, tmp_path, "--memory-share must be above 0 and at most 1, but got 2.0")


@pytest.mark.parametrize(
    ("column", "value", "task", "message"),
    [
        ("x", float("inf"), "binary", "column 'x' has the value inf in data row 6, beyond"),
        ("x", -1e300, "binary", "column 'x' has the value -1e+300 in data row 6, beyond"),
        ("y", float("-inf"), "regression", "column 'y' has the value -inf in data row 6,"),
    ],
)
def test_infinite_or_huge_values_are_refused_naming_column_and_row(
    cli, tmp_path: Path, column: str, value: float, task: str, message: str
) -> None:
    # Read as they are, they would turn every score into NaN.
    frame = pd.DataFrame({"x": [0.5 * i for i in range(40)], "y": [0, 1] * 20})
    if task == "regression":
        frame["y"] = frame["x"] ** 2
    frame.loc[5, column] = value
    frame.to_csv(tmp_path / "t.csv", index=False)
    r = cli("tune", "--data", "t.csv", "--target", "y", "--task", task)
    _assert_clean_failure(r, tmp_path, message)
    assert "leave the cell empty to read it as missing" in r.stderr


def test_nested_parquet_columns_are_refused(cli, tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [[1, 2], [3]] * 20, "z": range(40), "y": [0, 1] * 20})
    frame.to_parquet(tmp_path / "n.parquet")
    r = cli("tune", "--data", "n.parquet", "--target", "y")
    _assert_clean_failure(r, tmp_path, "'n.parquet' has nested columns (lists or records in a")


def test_an_output_folder_that_is_a_file_is_refused(cli, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("keep me")
    r = cli("tune", "--output-dir", "taken")
    _assert_clean_failure(r, tmp_path, "--output-dir 'taken' is a file, not a folder")
    assert (tmp_path / "taken").read_text() == "keep me"


def test_repeated_column_names_are_refused(cli, tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(
        "a,a,y\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(40))
    )
    r = cli("tune", "--data", "d.csv", "--target", "y")
    _assert_clean_failure(r, tmp_path, "'d.csv' names a column 'a' more than once in its header")


def test_text_that_is_not_utf8_is_refused(cli, tmp_path: Path) -> None:
    rows = "".join(f"caf\xe9{i % 3},{i},{i % 2}\n" for i in range(40))
    (tmp_path / "l.csv").write_bytes(("name,x,y\n" + rows).encode("latin-1"))
    r = cli("tune", "--data", "l.csv", "--target", "y")
    _assert_clean_failure(
        r, tmp_path, "'l.csv' is not UTF-8 text (byte 0xe9 in line 2); save it as UTF-8"
    )


def test_a_constant_regression_target_is_refused(cli, tmp_path: Path) -> None:
    pd.DataFrame({"x": range(40), "y": [3.5] * 40}).to_csv(tmp_path / "c.csv", index=False)
    r = cli("tune", "--data", "c.csv", "--target", "y", "--task", "regression")
    _assert_clean_failure(r, tmp_path, "target 'y' has one value (3.5) in all 40 rows; there is")


@pytest.mark.parametrize("command", ["report", "dashboard"])
def test_a_damaged_run_summary_is_refused(cli, tmp_path: Path, command: str) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text("{oops")
    r = cli(command, "run")
    _assert_clean_failure(r, tmp_path, "'run/summary.json' is not readable JSON (")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("noise.csv", bytes(range(256)) * 8, "'noise.csv' is not UTF-8 text (byte 0x80 in line 2"),
        ("cut.csv.gz", None, "cannot read 'cut.csv.gz' as CSV/TSV: Compressed file ended before"),
        ("ragged.csv", b"a,b,y\n1,2,0\n3,4,5,1\n", "Expected 3 fields in line 3, saw 4"),
    ],
)
def test_files_that_are_not_tables(
    cli, tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    if content is None:  # half of a gzip-compressed table
        import gzip

        whole = gzip.compress(("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(500))).encode())
        content = whole[: len(whole) // 2]
    (tmp_path / name).write_bytes(content)
    r = cli("tune", "--data", name, "--target", "y")
    _assert_clean_failure(r, tmp_path, message)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--trials", "0", "--trials must be at least 1, but got 0"),
        ("--timeout", "0", "--timeout must be a positive number of seconds, but got 0.0"),
        ("--jobs", "0", "--jobs must be at least 1, but got 0"),
        ("--study", "../elsewhere", "--study '../elsewhere' is not a valid name; use letters"),
    ],
)
def test_option_values_out_of_range(cli, tmp_path: Path, option: str, value: str, message: str):
    r = cli("tune", option, value)
    _assert_clean_failure(r, tmp_path, message)


def test_a_cuda_device_without_cuda_is_one_line_and_the_next_run_works(
    cli, tmp_path: Path, credit_g: Path
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: --device cuda is valid here")
    common = ("tune", "--data", str(credit_g), "--target", "target", "--folds", "2")
    small = ("--trials", "1", "--space", "classic", "--no-baseline", "--no-report")
    r = cli(*common, *small, "--device", "cuda")
    _assert_clean_failure(r, tmp_path, "error: --device 'cuda', but this PyTorch (")
    assert "sees no CUDA device; use --device cpu or --device auto" in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1
    r = cli(*common, *small, "--device", "cpu", "--no-progress")
    assert r.returncode == 0, r
    # What was inferred is said first.
    assert r.stderr.startswith(
        "note: task binary (inferred; 2 classes of 'target': 0, 1), metric roc_auc (the task's "
        "default, maximized) on 1000 rows"
    ), r.stderr


def test_help_reads_at_80_columns_with_the_values_a_user_writes() -> None:
    from typer.testing import CliRunner

    from dnntune.cli import app

    r = CliRunner().invoke(app, ["tune", "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert r.exit_code == 0, r.output
    assert max(len(line) for line in r.output.splitlines()) <= 80
    assert "<list[str]>" not in r.output and "<str>" not in r.output and "…" not in r.output
    for usage in (
        "--target COLUMN[,COLUMN...]",
        "--task binary|multiclass|regression|multilabel",
        "--timeout SECONDS",
        "--device auto|cpu|cuda[:N]",
    ):
        assert usage in r.output


def test_a_fold_column_that_repeats_the_target_is_refused(
    cli, tmp_path: Path, credit_g: Path
) -> None:
    frame = pd.read_csv(credit_g, sep="\t")
    frame.assign(fold=frame["target"]).to_csv(tmp_path / "t.csv", index=False)
    r = cli("tune", "--data", "t.csv", "--target", "target", "--fold-column", "fold")
    _assert_clean_failure(
        r, tmp_path, "fold 0 of --fold-column 'fold' holds only class 0 of target 'target' (does"
    )


def test_an_output_folder_that_cannot_be_made_is_one_line(cli, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    r = cli("tune", "--trials", "1", "--output-dir", str(tmp_path / "file" / "run"))
    assert r.returncode == 2 and r.stderr.startswith("error: cannot create --output-dir "), r
    assert "pass a folder this user can write" in r.stderr and "Traceback" not in r.stderr
