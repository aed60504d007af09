"""Status, live curves and results of the current run; polls the job every few seconds."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.common import (
    POLL_SECONDS,
    QUICK_POLL_SECONDS,
    curves_pair,
    export_buttons,
    format_seconds,
    results_column_config,
    run_time_caption,
)
from dashboard.visitor import queue_caption, run_owner_note
from gapdemo.charts.common import backend_color
from gapdemo.charts.curves import curves_figure
from gapdemo.charts.results import results_dataframe
from gapdemo.jobs.run_job import NO_BATCH_ROWS
from gapdemo.runs import EPOCH_FIELDS
from gapdemo.training.curves import CurveHistory
from gapdemo.training.phases import phase_text

# The live charts take their new batch points at each epoch's end, and between ends at most this
# often (TensorBoard reloads every 30 s): meanwhile a poll re-sends the same cached figures.
CHART_REFRESH_SECONDS = 30.0
STATE_TEXT = {
    "queued": ":gray[queued]", "running": ":blue[training]", "stopping": ":orange[stopping after this batch]",
    "finished": ":green[finished]", "stopped": ":orange[stopped]", "failed": ":red[failed]",
    "interrupted": ":orange[interrupted]",
}


def epoch_frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(EPOCH_FIELDS))


# State line, progress bar with epoch/batch, images/s and ETA, and the queue.
def status_panel(snapshot, queued_jobs) -> None:
    progress = snapshot.progress
    st.markdown(f"**Run `{snapshot.run_id}`**{run_owner_note(snapshot)} — "
                f"{STATE_TEXT.get(snapshot.state, snapshot.state)} · {snapshot.elapsed_seconds:.0f} s")
    if snapshot.state == "queued" and progress.get("phase") == "waiting":  # a cluster run waiting for free CPUs
        st.caption(phase_text(progress, capitalized=True))
    if snapshot.state in ("running", "stopping"):
        if progress.get("phase") == "loading data":
            st.progress(float(progress.get("fraction", 0.0)), text=phase_text(progress, capitalized=True))
        elif progress.get("phase") == "compiling":
            st.progress(0.0, text=phase_text(progress, capitalized=True))
        elif "epoch" in progress:
            batches = max(progress["batches_per_epoch"], 1)
            done = ((progress["epoch"] - 1) * batches + progress["batch"]) / (progress["epochs"] * batches)
            st.progress(min(done, 1.0), text=(
                f"Epoch {progress['epoch']}/{progress['epochs']} · batch {progress['batch']}/{batches} · "
                f"{phase_text(progress)} · {progress['images_per_second']:.0f} images/s · "
                f"{format_seconds(progress.get('eta_seconds'))} left"))
    if snapshot.state == "failed":
        st.error(snapshot.message)
    elif snapshot.state in ("stopped", "interrupted") and snapshot.message:
        st.warning(snapshot.message)
    if queued_jobs:
        st.caption(queue_caption(queued_jobs))


# One growing copy of each run's per-batch curves per server process, shared by every tab watching it.
@st.cache_resource(max_entries=4, show_spinner=False)
def curve_history(run_id: str):
    return CurveHistory(run_id)


# A live figure, built once per new rows and smoothing whichever tab asks first; at most
# gapdemo.training.curves.MAX_POINTS points per line however long the run (the CSVs keep every batch).
@st.cache_resource(max_entries=16, show_spinner=False)
def live_figure(run_id: str, rows_read: int, epoch_rows: int, metric: str, smoothing: float, _history, _epochs):
    return curves_figure(_epochs, _history.series(), metric=metric, smoothing=smoothing)


# Live accuracy and loss; exports once the run is done (HTML/PNG are made on click).
def curves_panel(snapshot, history, with_exports: bool) -> None:
    if not history.rows_read:
        st.caption("Curves appear after the first batch.")
        return
    epochs = epoch_frame(snapshot.epoch_metrics)

    rows = history.rows_read if with_exports else history.rows_to_chart(CHART_REFRESH_SECONDS, len(epochs))

    def build_figure(metric, smoothing):
        return live_figure(snapshot.run_id, rows, len(epochs), metric, smoothing, history, epochs)

    curves_pair(epochs, None, snapshot.run_id, key="live", with_exports=with_exports, build_figure=build_figure)


# Best and final validation accuracy and the train-validation gap per back-end; the run's time once.
def results_panel(snapshot) -> None:
    epochs = epoch_frame(snapshot.epoch_metrics)
    if epochs.empty:
        return
    results = results_dataframe(epochs)
    st.subheader("Results")
    st.caption("Train − val gap: final training accuracy minus final validation accuracy (overfitting).")
    st.caption(run_time_caption(snapshot.elapsed_seconds, snapshot.config.train.precision))
    st.dataframe(results, column_config=results_column_config(results), key="results_table")
    export_buttons(_results_figure(results), results, f"{snapshot.run_id}_results", key="export_results")


def _results_figure(results):
    figure = go.Figure()
    for name in ("Final train accuracy", "Final val accuracy"):
        figure.add_trace(go.Bar(x=results["Back-end"], y=results[name], name=name,
                                marker_color=[backend_color(b) for b in results.index],
                                marker_pattern_shape="" if "train" in name else "/"))
    figure.update_layout(title="Final train vs validation accuracy", barmode="group", yaxis_tickformat=".0%",
                         template="plotly_white")
    return figure


def _live_view(manager, interval: float | None) -> None:
    job = manager.latest()
    history = curve_history(job.run_id)
    snapshot = history.read(job.snapshot)  # only the batch rows this server has not read yet
    done = job.is_done()
    if interval is not None and poll_interval(not done, bool(history.rows_read), snapshot.progress) != interval:
        # Redraw the whole page once: with the results when the run ended, else to poll at the new pace.
        st.rerun()
    status_panel(snapshot, manager.queued())
    curves_panel(snapshot, history, with_exports=done)
    if done:
        results_panel(snapshot)


# The current (or last) job of this server process, polled while it runs (poll_interval).
def training_panel(manager) -> None:
    job = manager.latest()
    if job is None:
        st.info("No run yet. Choose settings in the sidebar and press **Start**. The default settings train "
                "FC, FC + dropout and GAP side by side on the built-in synthetic pets in a few minutes.")
        return
    history = curve_history(job.run_id)
    progress = job.snapshot(NO_BATCH_ROWS).progress  # the progress alone: the live view takes the new rows
    interval = poll_interval(not job.is_done(), bool(history.rows_read), progress)
    st.fragment(run_every=interval)(_live_view)(manager, interval)


def poll_interval(running: bool, points_shown: bool, progress: dict | None = None) -> float | None:
    """Seconds between polls of the live view: quick until the first curve point and a time-left
    estimate, then slower, and quick again in the run's last seconds (so its results show soon after
    its end: a run shorter than one slow poll never slows down); None when done."""
    if not running:
        return None
    eta = (progress or {}).get("eta_seconds")
    settled = points_shown and eta is not None and eta >= POLL_SECONDS
    return POLL_SECONDS if settled else QUICK_POLL_SECONDS
