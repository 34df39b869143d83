"""The ``dnntune`` command: a thin Typer layer over :func:`dnntune.tune` and friends.

Heavy imports happen inside the commands so that ``--help`` is instant. Bad input is reported
on one line (``error: ...``) with exit code 2 and no traceback.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from dnntune import __version__
from dnntune._logs import quiet_expected_failures
from dnntune._names import render
from dnntune.cli._deploy import dashboard, export
from dnntune.cli._options import with_settings
from dnntune.cli._output import check_output_suffix, echo_board, print_result, write_table
from dnntune.config import SETTINGS, SamplerName, parse_choice
from dnntune.exceptions import ConfigError, DnntuneError

# When the command began (set by main): a --timeout counts from here, reading the data included.
_STARTED = [time.monotonic()]

app = typer.Typer(
    help="Tune the hyperparameters of PyTorch MLPs on tabular data with Optuna.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    # Plain help (click's): it wraps at any width, where rich's table cuts text at 80 columns.
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"dnntune {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Tune the hyperparameters of PyTorch MLPs on tabular data with Optuna."""


def _split(values: list[str] | None) -> tuple[str, ...]:
    out: list[str] = []
    for v in values or []:
        out += [s.strip() for s in v.split(",") if s.strip()]
    return tuple(out)


def _note(msg: str) -> None:
    """A library note on stderr, naming this CLI's options."""
    typer.echo(f"note: {render(getattr(msg, 'template', msg), flags=True)}", err=True)


DeviceOpt = Annotated[str, typer.Option("--device", help=SETTINGS["device"].help)]


@app.command()
@with_settings(SETTINGS)
def tune(
    *,
    settings: dict[str, Any],
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    verbose: Annotated[bool, typer.Option(help="Log every trial as Optuna does.")] = False,
    report: Annotated[
        bool, typer.Option(help="Write report.html and plots/*.png into the run folder.")
    ] = True,
    refit: Annotated[
        bool,
        typer.Option(help="Then train the best configuration on all rows (see dnntune refit)."),
    ] = False,
) -> None:
    """Run (or resume) a cross-validated Optuna study over an MLP search space."""
    import optuna

    from dnntune.config import TuneConfig
    from dnntune.storage import storage_from_env

    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    _catch_signals()
    try:
        config = TuneConfig.of(**{**settings, "storage": storage_from_env(settings["storage"])})
        from dnntune.parallel import tune_config  # PyTorch: after the options are checked

        result = tune_config(config, show_progress=progress, on_note=_note, started=_STARTED[0])
    except KeyboardInterrupt:
        typer.echo("interrupted: the study keeps every finished trial; rerun to resume", err=True)
        raise typer.Exit(130) from None
    print_result(result)
    complete = result.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if report and not complete:
        typer.echo("No report: no trial completed.")
    elif report:
        from dnntune.report import write_report

        path = write_report(result.run_dir, study=result.study)
        typer.echo(f"Report: {path}")
    if refit and (result.run_dir / "model" / "manifest.json").is_file():
        from dnntune.refit import refit as run_refit

        path = run_refit(result.run_dir, device=config.training.device)
        typer.echo(f"Refit on all rows: {path}")


_FOLD_SETTINGS = (
    "data",
    "target",
    "drop",
    "categorical",
    "task",
    "folds",
    "group_duplicates",
    "seed",
    "fold_seed",
)


@app.command()
@with_settings(_FOLD_SETTINGS)
def folds(
    *,
    settings: dict[str, Any],
    output: Annotated[
        Path, typer.Option(help="File to write (.csv, .csv.gz, .tsv, .parquet).")
    ] = Path("train_folds.csv"),
    fold_column: Annotated[str, typer.Option(help="Name of the fold column.")] = "kfold",
) -> None:
    """Write the table with a fold column (stratified for classification), e.g. train_folds.csv."""
    from dnntune.artifacts import atomic_path
    from dnntune.config import TuneConfig
    from dnntune.data import fold_table, load_table

    check_output_suffix(output)
    config = TuneConfig.of(**settings)
    frame = fold_table(load_table(config.columns.data), config, column=fold_column)
    with atomic_path(output) as tmp:
        write_table(frame, tmp, output)
    typer.echo(
        f"wrote {output} ({len(frame)} rows, {config.columns.folds} folds in column "
        f"{fold_column!r})"
    )


@app.command()
def worker(
    study: Annotated[str, typer.Option(help="Name of the study to join.")],
    storage: Annotated[
        str | None, typer.Option(help="Storage URL (default: $DNNTUNE_STORAGE).")
    ] = None,
    trials: Annotated[int | None, typer.Option(help="Trials this worker runs.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds this worker runs.")] = None,
    data: Annotated[str | None, typer.Option(help="Data path, when mounted elsewhere.")] = None,
    output_dir: Annotated[
        Path | None, typer.Option(help="Run folder for the best model (default: the study's).")
    ] = None,
    index: Annotated[int, typer.Option(help="Worker number: derives its sampler seed.")] = 0,
    threads: Annotated[int | None, typer.Option(help="Torch threads in this worker.")] = None,
    memory_share: Annotated[
        float,
        typer.Option(
            help="Share of the free memory the folds this worker keeps prepared may take "
            "(workers on one machine split 0.5; tune --jobs N does).",
        ),
    ] = 0.5,
    tickets: Annotated[Path | None, typer.Option(hidden=True)] = None,
) -> None:
    """Join an existing study (created by dnntune tune) from any machine and run trials."""
    if not 0.0 < memory_share <= 1.0:
        raise DnntuneError(f"--memory-share must be above 0 and at most 1, but got {memory_share}")
    import optuna

    from dnntune.parallel import run_worker
    from dnntune.storage import storage_from_env

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _catch_signals()
    url = storage_from_env(storage)
    try:
        if url is None:
            raise DnntuneError("no storage: pass --storage URL or set DNNTUNE_STORAGE")
        result = run_worker(
            storage=url,
            study_name=study,
            index=index,
            trials=trials,
            timeout=timeout,
            data=data,
            output_dir=str(output_dir) if output_dir else None,
            threads=threads,
            memory_share=memory_share,
            tickets=tickets,
            on_note=_note,
        )
    except KeyboardInterrupt:
        typer.echo("worker stopped: its running trial was marked failed", err=True)
        raise typer.Exit(130) from None
    typer.echo(f"worker {index} done: study {study!r} holds {len(result.study.trials)} trials")


# The settings compare passes to every run (the sampler, seed offsets and storage are its own).
_COMPARE_SETTINGS = (
    *(n for n, st in SETTINGS.items() if st.group in ("columns", "preprocessing", "training")),
    "pruner",
    "space",
    "trials",
    "timeout",
    "grid_points",
    "seed",
)


@app.command("compare")
@with_settings(
    _COMPARE_SETTINGS,
    trials=(20, "Trials per run (the shared budget)."),
    timeout=(None, "Seconds per run."),
)
def compare_command(
    *,
    settings: dict[str, Any],
    samplers: Annotated[str, typer.Option(help="Comma-separated samplers to compare.")] = (
        "grid,random,tpe,gp,cmaes"
    ),
    repeats: Annotated[
        int, typer.Option(help="Runs per sampler, seeds seed, seed+1, ... (the folds: seed).")
    ] = 3,
    jobs: Annotated[int, typer.Option(help="Runs in parallel processes.")] = 1,
    output_dir: Annotated[Path | None, typer.Option(help="Comparison folder.")] = None,
) -> None:
    """Compare samplers on the same data, space, folds and budget, with repeats."""
    import optuna

    from dnntune.compare import compare
    from dnntune.config import TuneConfig

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = [parse_choice(SamplerName, n, "sampler") for n in _split([samplers])]
    if repeats < 1:
        raise ConfigError(f"--repeats must be at least 1, but got {repeats}")
    config = TuneConfig.of(**settings)
    # Check the input once, before any run starts, and say what the runs will make of it.
    from dnntune.data import dataset_from_config

    for msg in dataset_from_config(config).notes:
        _note(msg)
    typer.echo(f"Comparing {len(names)} samplers x {repeats} repeats...", err=True)
    result = compare(config, names, repeats=repeats, jobs=jobs, directory=output_dir, on_note=_note)
    board = result.leaderboard
    typer.echo(f"Leaderboard ({repeats} repeats per sampler, best first):")
    echo_board(board)
    typer.echo(f"Plots: {result.directory / 'compare.png'}, {result.directory / 'compare.html'}")


# How the leaderboard prints each number column ("-": no repeat came within 1% of the best).
@app.command("ensemble")
def ensemble_command(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by dnntune tune.")],
    size: Annotated[
        int,
        typer.Option(
            min=1, help="Rounds of selection: at most that many trials, weights in steps of 1/N."
        ),
    ] = SETTINGS["ensemble_rounds"].default,
) -> None:
    """Select an ensemble of the run's best trials on their out-of-fold predictions; deliver it
    as the run's model when it scores better than the best trial."""
    from dnntune.ensemble import ensemble_run

    selection = ensemble_run(run_dir, rounds=size, remember=True)
    typer.echo(selection.line())
    for msg in selection.notes:
        typer.echo(f"note: {msg}", err=True)


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by dnntune tune.")],
    data: Annotated[str, typer.Option(help="Labelled rows the study never saw (with the target).")],
    output: Annotated[
        Path | None, typer.Option(help="Leaderboard JSON (default: RUN_DIR/evaluation.json).")
    ] = None,
    baseline: Annotated[
        bool, typer.Option(help="Also fit the baseline on the study's rows and score it.")
    ] = True,
) -> None:
    """Score the delivered model, the best trial alone, the refit model and the baseline on
    labelled rows: a leaderboard with the study's metric and the task's standard ones."""
    from dnntune.evaluate import evaluate as run_evaluate

    target = output or run_dir / "evaluation.json"
    if baseline:
        typer.echo("Fitting the baseline on the study's rows...", err=True)
    result = run_evaluate(run_dir, data, baseline=baseline, output=target)
    for msg in result.notes:
        typer.echo(f"note: {msg}", err=True)
    typer.echo(
        f"Leaderboard on {result.rows} labelled rows of {result.data} (best first by "
        f"{result.metric}):"
    )
    typer.echo(result.table())
    typer.echo(f"wrote {target}")


@app.command("refit")
def refit_command(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by dnntune tune.")],
    device: DeviceOpt = "auto",
) -> None:
    """Train the delivered configurations (the best trial's, or each ensemble member's) on all
    rows, each for the median best epoch of its folds."""
    from dnntune.refit import refit as run_refit

    path = run_refit(run_dir, device=device)
    typer.echo(f"Refit on all rows: {path}")


@app.command()
def predict(
    data: Annotated[str, typer.Option(help="CSV/TSV(.gz)/Parquet file to predict.")],
    run_dir: Annotated[
        Path | None,
        typer.Argument(help="Run folder written by dnntune tune (or its model/ folder)."),
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="The run folder, as an option instead of RUN_DIR.")
    ] = None,
    output: Annotated[Path, typer.Option(help="Predictions file (.csv, .tsv, .parquet).")] = Path(
        "predictions.csv"
    ),
    id_column: Annotated[str | None, typer.Option(help="Copy this column to the output.")] = None,
    refit: Annotated[
        bool, typer.Option(help="Use the model refit on all rows instead of the fold ensemble.")
    ] = False,
) -> None:
    """Predict with a tuned model: class probabilities and labels, or values."""
    if run_dir is not None and model is not None and run_dir != model:
        raise ConfigError(f"two run folders given ({run_dir} and --model {model}); give one")
    folder = run_dir or model
    if folder is None:
        raise ConfigError("name the run folder: dnntune predict runs/NAME --data FILE")
    check_output_suffix(output)

    from dnntune.artifacts import atomic_path
    from dnntune.data import load_table
    from dnntune.inference import load

    predictor = load(folder, refit=refit)
    frame = load_table(data).frame
    predictions = predictor.predict(frame, id_column=id_column)
    for msg in predictor.notes:
        typer.echo(f"note: {msg}", err=True)
    with atomic_path(output) as tmp:
        write_table(predictions, tmp, output)
    n = len(predictor.loaded.models)
    members = predictor.manifest.members
    kind = f"refit model{'s' if n > 1 else ''}" if refit else f"{n} fold models"
    if len(members) > 1:
        kind += f" of an ensemble of {len(members)} trials"
    typer.echo(f"wrote {output} ({len(predictions)} rows, {kind})")


@app.command()
def show(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by dnntune tune.")],
) -> None:
    """Print what a tuned model is: task, metric, parameters, architecture, data, versions."""
    from dnntune.artifacts import describe_model, load_model

    typer.echo(describe_model(load_model(run_dir)))


@app.command("report")
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by dnntune tune.")],
    storage: Annotated[
        str | None, typer.Option(help="Storage URL, when not the run's own.")
    ] = None,
) -> None:
    """Write the run's self-contained HTML report and PNG plots (or redraw a comparison)."""
    from dnntune.report import write_report

    if (run_dir / "compare.json").is_file():
        from dnntune.compare import rebuild

        result = rebuild(run_dir)
        typer.echo(f"Comparison: {run_dir / 'compare.html'}, {run_dir / 'compare.png'}")
        echo_board(result.leaderboard)
        return
    path = write_report(run_dir, storage=storage)
    typer.echo(f"Report: {path} (PNG plots in {path.parent / 'plots'})")


app.command("export")(export)
app.command("dashboard")(dashboard)


def _catch_signals() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt (set again after the heavy imports, in case a
    library reset them)."""
    from dnntune._signals import install

    install()
    quiet_expected_failures()


def main() -> None:
    _STARTED[0] = time.monotonic()
    from dnntune._runtime import tune_allocator

    tune_allocator()  # a setting of the whole process: the command line's to make
    _catch_signals()
    try:
        app()
    except DnntuneError as exc:  # bad input, from any command: one line, exit 2
        typer.echo(f"error: {exc.cli_message()}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:  # pragma: no cover - Ctrl-C outside a command
        sys.exit(130)
