"""Load a run folder's study and write its report."""

from __future__ import annotations

import json
from pathlib import Path

import optuna

from dnntune._names import setting_name
from dnntune.artifacts import read_summary
from dnntune.exceptions import DataError, StorageError
from dnntune.report._render import render_html, render_pngs
from dnntune.storage import default_storage_url, open_storage, redact

__all__ = ["load_run_study", "write_report"]


def load_run_study(run_dir: Path, storage: str | None = None) -> tuple[optuna.Study, dict]:
    """The study of a run folder (from its summary.json) and that summary."""
    summary = read_summary(run_dir)
    url = storage or summary.get("config", {}).get("storage") or default_storage_url(Path(run_dir))
    try:
        study = optuna.load_study(study_name=summary["study"], storage=open_storage(url))
    except KeyError:
        raise StorageError(
            f"study {summary['study']!r} not found in {redact(url)!r}; pass "
            f"{setting_name('storage')}"
        ) from None
    return study, summary


def write_report(
    run_dir: Path, *, storage: str | None = None, study: optuna.Study | None = None
) -> Path:
    """Write ``report.html`` and ``plots/*.png`` into the run folder; return the HTML path."""
    run_dir = Path(run_dir)
    if study is None:
        study, summary = load_run_study(run_dir, storage)
    else:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    model = None
    if (run_dir / "model" / "manifest.json").is_file():
        from dnntune.artifacts import describe_model, load_model

        try:
            model = describe_model(load_model(run_dir))
        except DataError:
            model = None
    render_pngs(study, summary, run_dir / "plots")
    return render_html(study, summary, model, run_dir / "report.html")
