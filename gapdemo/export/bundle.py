"""A run's charts, tables and files exported together: one zip, or a folder of HTML, PNG and CSV files.

Everything is built from the run folder's CSV and JSON files (gapdemo.runs), drawn by gapdemo.charts.
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from pathlib import Path

from gapdemo import runs
from gapdemo.charts.curves import curves_figure
from gapdemo.charts.parameters import parameter_dataframe, parameter_figure
from gapdemo.charts.results import results_dataframe
from gapdemo.export.formats import dataframe_to_csv, figure_to_html
from gapdemo.export.png import figure_to_png, png_export_available
from gapdemo.model.backends import parameter_table

EXPORT_FORMATS = ("html", "png", "csv")
PNG_SIZE = {"width": 900, "height": 500, "scale": 2}


def check_run_dir(run_dir) -> Path:
    """run_dir as a Path; ValueError when it is no folder or holds symbolic links."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ValueError(f"no run directory at {path}")
    if runs.symbolic_links_in(path):
        raise ValueError(symbolic_links_sentence(path))
    return path


def symbolic_links_sentence(run_dir: Path) -> str:
    """Why a run folder with symbolic links is not packaged (a link could bring in any file of the server)."""
    links = runs.symbolic_links_in(run_dir)
    return (f"Run {Path(run_dir).name} holds symbolic links ({', '.join(links[:3])}); it is not packaged, since a "
            "link could bring any file of this machine into the download.")


def _parameter_table(config: dict) -> dict | None:
    backends = config.get("model", {}).get("backends")
    if not backends:
        return None

    return parameter_table(backends, image_size=int(config.get("data", {}).get("image_size", 100)),
                           dropout_rate=float(config.get("model", {}).get("dropout_rate", 0.5)))


def run_figures_and_tables(run_dir, include_parameters: bool = True) -> tuple[dict, dict]:
    """({name: figure}, {name: DataFrame}) for a run, built from its CSV and JSON files."""
    run_dir = check_run_dir(run_dir)
    epoch_metrics, batch_metrics = runs.read_epoch_metrics(run_dir), runs.read_batch_metrics(run_dir)
    figures, tables = {}, {}
    if len(epoch_metrics) or len(batch_metrics):
        for metric in ("accuracy", "loss"):
            figures[f"curves_{metric}"] = curves_figure(epoch_metrics, batch_metrics, metric)
    if len(epoch_metrics):
        tables["results"] = results_dataframe(epoch_metrics)
    table = _parameter_table(runs.read_config(run_dir)) if include_parameters else None
    if table:
        figures["parameters"] = parameter_figure(table)
        tables["parameters"] = parameter_dataframe(table)
    return figures, tables


def _bundle_entries(run_dir: Path, include_parameters: bool) -> tuple[dict[str, bytes], list[str]]:
    """{path in zip: bytes} for the run's files and its charts, plus notes for the manifest."""
    entries = runs.read_run_files(run_dir)
    figures, tables = run_figures_and_tables(run_dir, include_parameters)
    png_available, png_message = png_export_available()
    notes = [] if png_available else [f"PNG charts left out: {png_message}"]
    for name, figure in figures.items():
        entries[f"charts/{name}.html"] = figure_to_html(figure)
        if png_available:
            entries[f"charts/{name}.png"] = figure_to_png(figure, **PNG_SIZE)
    for name, frame in tables.items():
        entries[f"tables/{name}.csv"] = dataframe_to_csv(frame)
    return entries, notes


def run_zip(run_dir, target=None, include_parameters: bool = True) -> bytes:
    """One zip of a run: its files, charts (HTML, and PNG when available), tables and MANIFEST.txt.

    MANIFEST.txt lists every other entry, one path a line; lines starting with # are notes.
    When target is given the zip is also written there (atomically).
    """
    run_dir = check_run_dir(run_dir)
    entries, notes = _bundle_entries(run_dir, include_parameters)
    data = files_zip(entries, [f"gapdemo run {run_dir.name}", *notes])
    if target is not None:
        target = Path(target)
        _prepare_target(target.parent)
        _write_atomic(target, data)
    return data


def files_zip(entries: dict[str, bytes], notes: list[str]) -> bytes:
    """A zip of entries (name -> bytes) with a MANIFEST.txt: the notes as '# ' lines, then every entry's name."""
    manifest = [*(f"# {note}" for note in notes), *entries]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("MANIFEST.txt", "\n".join(manifest) + "\n")
        for name, data in entries.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def _prepare_target(target_dir) -> Path:
    target = Path(target_dir)
    if target.exists() and not target.is_dir():
        raise ValueError(f"export target {target} is a file, not a folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create export folder {target}: {error.strerror or error}") from error
    if not os.access(target, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write to export folder {target}")
    return target


def _write_atomic(path: Path, data: bytes) -> Path:
    """runs' atomic writer, with a failure as one readable ValueError; returns path."""
    try:
        runs.write_bytes_atomic(path, data)
    except OSError as error:
        raise ValueError(f"cannot write {path}: {error.strerror or error}") from error
    return path


def export_run(run_dir, target_dir, formats=EXPORT_FORMATS, include_parameters: bool = True) -> list[Path]:
    """Write each chart once per format (html, png) and the metrics and tables (csv) into target_dir.

    PNG is skipped with a warning when no browser is found. Returns the paths written.
    """
    unknown = sorted(set(formats) - set(EXPORT_FORMATS))
    if unknown:
        raise ValueError(f"unknown export format(s) {', '.join(unknown)}; choose from {', '.join(EXPORT_FORMATS)}")
    run_dir = check_run_dir(run_dir)
    target = _prepare_target(target_dir)
    figures, tables = run_figures_and_tables(run_dir, include_parameters)
    png_available, png_message = png_export_available()
    if "png" in formats and not png_available:
        warnings.warn(png_message, RuntimeWarning, stacklevel=2)
    written = []
    for name, figure in figures.items():
        if "html" in formats:
            written.append(_write_atomic(target / f"{name}.html", figure_to_html(figure)))
        if "png" in formats and png_available:
            written.append(_write_atomic(target / f"{name}.png", figure_to_png(figure, **PNG_SIZE)))
    if "csv" in formats:
        for name, data in runs.read_run_files(run_dir, runs.METRIC_FILES).items():
            written.append(_write_atomic(target / name, data))
        for name, frame in tables.items():
            written.append(_write_atomic(target / f"{name}.csv", dataframe_to_csv(frame)))
    return written
