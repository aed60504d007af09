"""Shared pieces of the dashboard: the process-wide job manager, cached look-ups, export buttons."""

from __future__ import annotations

import sys

import streamlit as st
from streamlit.runtime.scriptrunner import script_runner

from gapdemo import settings
from gapdemo.budget.limits import warm_worker
from gapdemo.charts.curves import curves_figure
from gapdemo.cluster.connection import resolve_address
from gapdemo.cluster.resources import resources_per_run
from gapdemo.export.formats import dataframe_to_csv, figure_to_html
from gapdemo.export.png import figure_to_png, png_export_available
from gapdemo.jobs.cluster_job import ClusterJobManager
from gapdemo.jobs.page import PageScheduler
from gapdemo.model.backends import parameter_table
from gapdemo.model.precision import PRECISION_LABELS
from gapdemo.training.curves import DEFAULT_SMOOTHING
from gapdemo.units import format_duration

# How often a tab polls running work. Each poll of a fragment costs the browser about 0.2 s of CPU
# whatever it redraws (Streamlit re-renders its page tree), on the cores that train, in every tab
# that watches: with three tabs, polls every 5 s took 24% of a core, every 10 s 16%
# (benchmarks/RESULTS.md, section 5). TensorBoard reloads every 30 s.
QUICK_POLL_SECONDS = 2.0  # until a run's first curve point shows: Start -> first point stays quick
POLL_SECONDS = 10.0  # then: the status line, live curves, claims and sweeps
PROBES_POLL_SECONDS = 10.0  # feature-map probes arrive once per epoch (about 25 s at the defaults)


def keep_keras_session() -> None:
    """Stop Streamlit from calling keras.backend.clear_session() after every script run.

    Streamlit resets a few stateful modules after each run once they are imported, keras among
    them. This page reruns every few seconds while a job trains in another thread, and each reset (a
    full gc.collect plus an emptied TF kernel cache) starved the training: Start -> first curve
    point went from 23 s to 66 s (benchmarks/RESULTS.md, section 5). The page builds no Keras
    models that a reset would need to forget. Matplotlib figures are still closed, as Streamlit does.
    Streamlit has no public switch for this: requirements cap it below 2, and tests/test_streamlit_patch.py
    fails when an upgrade drops the private name.
    """
    script_runner._clean_problem_modules = _close_matplotlib_figures


def _close_matplotlib_figures() -> None:
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


# One scheduler per server process: every tab and every refresh sees the same runs, claims jobs and
# sweeps, each trained in a process of its own. With GAPDEMO_RAY_ADDRESS set, they go to that Ray
# cluster side by side instead of taking turns here. ValueError (an unreadable setting): app.py shows it.
@st.cache_resource
def job_manager():
    address = resolve_address(None)
    scheduler = ClusterJobManager(address, *resources_per_run()) if address else PageScheduler()
    if warm_worker():
        scheduler.warm()  # a training worker imports TensorFlow now, not when Start is pressed
    return scheduler


def runs_dir() -> str:
    """Where runs are written: GAPDEMO_RUNS_DIR, else runs, as for the command line's --runs-dir."""
    return settings.runs_dir()


# A GAPDEMO_* value its rule cannot read stops the page as it starts, in one sentence naming the variable.
def stop_on_unreadable_settings() -> None:
    try:
        settings.check_all()
    except settings.SettingsError as error:
        st.error(str(error))
        st.stop()


@st.cache_data(show_spinner="Counting parameters…")
def cached_parameter_table(backends: tuple[str, ...], image_size: int, dropout_rate: float) -> dict:
    return parameter_table(backends, image_size, dropout_rate)


@st.cache_data(show_spinner=False)
def png_available() -> tuple[bool, str]:
    return png_export_available()


PNG_SCALES = (1, 2, 3, 4)  # pixels per chart point offered in the sidebar
DEFAULT_PNG_SCALE = 2  # sharp on high-DPI screens and in slides


def png_scale() -> float:
    return float(st.session_state.get("png_scale", DEFAULT_PNG_SCALE))


# Download buttons under a chart: interactive HTML, PNG (when Chromium is there) and the data as CSV.
def export_buttons(figure, frame, name: str, key: str) -> None:
    html_column, png_column, csv_column = st.columns(3)
    # HTML and PNG are made only when clicked: an embedded plotly.js is ~4 MB per chart.
    html_column.download_button("⬇ HTML", data=lambda: figure_to_html(figure), file_name=f"{name}.html",
                                mime="text/html", key=f"{key}_html", on_click="ignore")
    available, hint = png_available()
    if available:
        scale = png_scale()
        png_column.download_button("⬇ PNG", data=lambda: figure_to_png(figure, scale=scale), file_name=f"{name}.png",
                                   mime="image/png", key=f"{key}_png", on_click="ignore")
    else:
        png_column.caption(hint)
    if frame is not None:  # made on click too: the Feature maps tab redraws these buttons every poll
        csv_column.download_button("⬇ CSV", data=lambda: dataframe_to_csv(frame), file_name=f"{name}.csv",
                                   mime="text/csv", key=f"{key}_csv", on_click="ignore")


def format_seconds(seconds: float | None) -> str:
    """gapdemo.units.format_duration, or 'estimating…' while there is no figure yet."""
    return format_duration(seconds) or "estimating…"


def results_column_config(frame) -> dict:
    """Three decimals for accuracies and gaps."""
    return {name: st.column_config.NumberColumn(format="%.3f") for name in frame.columns
            if "accuracy" in name or "gap" in name}


def run_time_caption(seconds: float | None, precision: str | None = None) -> str:
    """The run's time as one figure (the back-ends share it, so the results table has no time column),
    and the arithmetic it trained in (runs from before the setting trained in float32)."""
    arithmetic = f" Trained in {PRECISION_LABELS.get(precision or 'float32', precision)}."
    if seconds is None:
        return "Run time not recorded." + arithmetic
    return f"Run time {format_seconds(seconds)} — the back-ends train together, in lockstep." + arithmetic


SMOOTHING_HELP = ("TensorBoard's smoothing: an exponential moving average over the per-batch values, whose raw "
                  "values stay faint behind. 0 draws the raw values alone; each batch's value is its own loss or "
                  "accuracy, not a running mean since the epoch began.")


# The smoothing slider over a pair of curves; returns TensorBoard's weight (0 = the raw values).
def smoothing_control(key: str) -> float:
    column, _ = st.columns([1, 2])  # a third of the page: the curves are what matters
    return float(column.slider("Smoothing", 0.0, 0.95, value=DEFAULT_SMOOTHING, step=0.05, key=f"{key}_smoothing",
                               help=SMOOTHING_HELP))


# Accuracy and loss side by side: training solid (per batch, smoothed), validation dashed (per epoch).
def curves_pair(epochs, batches, run_id: str, key: str, with_exports: bool = True, build_figure=None) -> None:
    """build_figure(metric, smoothing) -> figure; default: gapdemo.charts.curves.curves_figure of epochs and batches."""
    smoothing = smoothing_control(key)
    if build_figure is None:
        def build_figure(metric, weight):
            return curves_figure(epochs, batches, metric=metric, smoothing=weight)

    for column, metric in zip(st.columns(2), ("accuracy", "loss"), strict=True):
        with column:
            figure = build_figure(metric, smoothing)
            st.plotly_chart(figure, key=f"{key}_{metric}")
            if with_exports:
                export_buttons(figure, epochs, f"{run_id}_{metric}", key=f"export_{key}_{metric}")
