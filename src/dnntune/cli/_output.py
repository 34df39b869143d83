"""What the commands print and write: a run's result, a comparison's leaderboard, tables of
predictions."""

from __future__ import annotations

from pathlib import Path

import typer

from dnntune.exceptions import DnntuneError, NoModelError

__all__ = ["check_output_suffix", "echo_board", "print_result", "write_table"]


def print_result(result: object) -> None:
    from dnntune.study import TuneResult

    assert isinstance(result, TuneResult)
    from dnntune.artifacts import state_counts

    study = result.study
    states = state_counts(study.get_trials(deepcopy=False))
    counts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    total = sum(states.values())
    typer.echo(
        f"Study {study.study_name!r}: {total} trial{'' if total == 1 else 's'} ({counts}) "
        f"in {result.wall_time_s:.1f} s"
    )
    try:
        best = result.best_trial
    except NoModelError:
        if result.delivered is not None:  # the folds a trial finished before the deadline
            loaded = result.delivered
            typer.echo(
                f"No trial completed: the delivered model is the {len(loaded.models)} fold(s) "
                f"trial {loaded.manifest.members[0].trial} finished before the time limit; "
                "raise --timeout for a full one."
            )
        else:
            typer.echo("No trial completed: nothing to report. Raise --timeout or --trials.")
        typer.echo(f"Outputs: {result.run_dir}")
        return
    folds = best.user_attrs.get("fold_scores", [])
    typer.echo("Best trial:")
    typer.echo(
        f"Trial {best.number} finished with value: {best.value} and parameters: {best.params}"
        f" ({result.metric.name.value}, {len(folds)}-fold mean)"
    )
    if result.ensemble is not None:
        typer.echo(result.ensemble.line())
        for msg in result.ensemble.notes:
            typer.echo(f"note: {msg}", err=True)
    if result.scores is not None:
        typer.echo("\n".join(result.scores.lines()))
    elif result.baseline is not None:
        typer.echo(result.baseline.line())
    model = result.model
    if model is not None:
        typer.echo("Model (the first network of the delivered model):")
        typer.echo(str(model))
    typer.echo(f"Outputs: {result.run_dir}")


_BOARD_FORMATS = {
    "best_mean": "{:.4f}",
    "best_std": "{:.4f}",
    "trials_to_99pct": "{:g}",
    "seconds_to_99pct": "{:.1f}",
    "wall_s": "{:.1f}",
}


def echo_board(board: object) -> None:
    import pandas as pd

    assert isinstance(board, pd.DataFrame)
    formatters = {name: fmt.format for name, fmt in _BOARD_FORMATS.items() if name in board.columns}
    typer.echo(board.to_string(index=False, formatters=formatters, na_rep="-"))


def check_output_suffix(output: Path) -> None:
    suffix = "".join(output.suffixes[-2:]).lower()
    if not suffix.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet")):
        raise DnntuneError(
            f"--output {str(output)!r} must end in .csv, .csv.gz, .tsv, .tsv.gz or .parquet"
        )


def write_table(frame: object, tmp: Path, output: Path) -> None:
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    suffix = "".join(output.suffixes[-2:]).lower()
    if suffix.endswith(".parquet"):
        frame.to_parquet(tmp, index=False)
    else:
        sep = "\t" if ".tsv" in suffix else ","
        compression = "gzip" if suffix.endswith(".gz") else None
        frame.to_csv(tmp, sep=sep, index=False, compression=compression)
