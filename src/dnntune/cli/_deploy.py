"""The commands that take a model or a study elsewhere: ``export`` and ``dashboard``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dnntune.exceptions import ConfigError, DnntuneError

__all__ = ["dashboard", "export"]


def export(
    run_dir: Annotated[
        Path, typer.Argument(help="Run folder written by dnntune tune (or a model folder).")
    ],
    format: Annotated[str, typer.Option(metavar="onnx", help="File format to write.")] = "onnx",
    output: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="File to write (default: RUN_DIR/model.onnx)."),
    ] = None,
    refit: Annotated[
        bool, typer.Option(help="Export the models refit on all rows instead of the fold models.")
    ] = False,
    data: Annotated[
        str | None,
        typer.Option(
            metavar="FILE", help="Also check the export on this table's rows (CSV/Parquet)."
        ),
    ] = None,
) -> None:
    """Export the delivered model, with its preprocessing, as one ONNX file checked against
    predict with onnxruntime."""
    from dnntune._logs import quiet_exporter
    from dnntune.export import FORMATS, export_onnx

    quiet_exporter()  # after torch's import, which sets its loggers' levels

    if format.lower() not in FORMATS:
        raise ConfigError(f"--format {format!r} is not one dnntune writes; use one of {FORMATS}")
    rows = None
    if data is not None:
        from dnntune.data import load_table

        rows = load_table(data).frame
    typer.echo("Exporting and checking with onnxruntime...", err=True)
    done = export_onnx(run_dir, output, refit=refit, rows=rows)
    typer.echo(
        f"wrote {done.path} (ONNX, {done.networks} network{'s' if done.networks > 1 else ''}; "
        f"same predictions as predict on {done.rows_checked} rows, largest difference "
        f"{done.max_difference:.1e})"
    )
    if done.mlflow_run:
        typer.echo(f"logged to MLflow run {done.mlflow_run}")


def dashboard(
    run_dir: Annotated[
        Path | None, typer.Argument(help="Run folder written by dnntune tune.")
    ] = None,
    storage: Annotated[
        str | None, typer.Option(metavar="URL", help="Storage URL instead of a run folder.")
    ] = None,
    host: Annotated[
        str,
        typer.Option(help="Address to bind: this machine only unless told otherwise."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Refuse every change (deleting, renaming, notes).")
    ] = False,
) -> None:
    """Serve optuna-dashboard on the study's storage (no authentication: see --host)."""
    from dnntune.dashboard import exposed_warning, serve
    from dnntune.storage import default_storage_url, open_storage, redact

    if storage is None:
        if run_dir is None:
            raise DnntuneError("pass a run folder or --storage URL")
        from dnntune.artifacts import read_summary

        summary = read_summary(run_dir)
        storage = summary.get("config", {}).get("storage") or default_storage_url(run_dir)
    backend = open_storage(storage)
    warning = exposed_warning(host, read_only)
    if warning:
        typer.echo(f"warning: {warning}", err=True)
    mode = " (read-only)" if read_only else ""

    def ready() -> None:
        typer.echo(
            f"optuna-dashboard{mode} on {redact(storage or '')}: http://{host}:{port}/ "
            "(Ctrl-C to stop)"
        )

    try:
        serve(backend, host=host, port=port, read_only=read_only, on_ready=ready)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise DnntuneError(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port or --host"
        ) from None
