"""Earlier runs on disk: list, view one, overlay several, download a whole run."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.common import curves_pair, export_buttons, results_column_config, run_time_caption
from dashboard.visitor import shown_path
from gapdemo.charts.curves import overlay_runs_figure
from gapdemo.charts.results import results_dataframe
from gapdemo.export.bundle import run_zip, symbolic_links_sentence
from gapdemo.runs import (
    RunFileError,
    read_batch_metrics,
    read_config,
    read_elapsed_seconds,
    read_epoch_metrics,
    read_status,
    scan_runs,
    symbolic_links_in,
)

REFUSALS_SHOWN = 5  # sentences about refused folders drawn at most; a folder full of planted links gets a count


def _runs_frame(summaries) -> pd.DataFrame:
    return pd.DataFrame([{
        "run": s.run_id, "state": s.state, "data": s.dataset, "back-ends": ", ".join(s.backends),
        "epochs": f"{s.epochs_completed}/{s.epochs}",
        "best val acc": ", ".join(f"{b} {v:.3f}" for b, v in s.best_val_accuracy.items()),
        "message": s.message,
    } for s in summaries])


# One earlier run: state, curves and results from its files; a file refused as it is read gets its one sentence.
def _run_view(summary) -> None:
    if summary.state == "failed":
        st.error(f"This run failed: {summary.message}")
    elif summary.state == "interrupted":
        st.warning(summary.message)
    try:
        epochs, batches = read_epoch_metrics(summary.run_dir), read_batch_metrics(summary.run_dir)
        precision = read_config(summary.run_dir).get("train", {}).get("precision")
        elapsed = read_elapsed_seconds(read_status(summary.run_dir))
    except (ValueError, TypeError, AttributeError) as error:  # past a size cap (RunFileError), or not gapdemo's
        st.warning(str(error) if isinstance(error, RunFileError) else
                   f"Run {summary.run_id}'s files do not hold what gapdemo writes; it is not shown.")
        return
    if epochs.empty and batches.empty:
        st.caption("This run has no metrics yet.")
        return
    curves_pair(epochs, batches, summary.run_id, key="history")
    if not epochs.empty:
        results = results_dataframe(epochs)
        st.dataframe(results, column_config=results_column_config(results), key="history_results")
        st.caption(run_time_caption(elapsed, precision))
    if symbolic_links_in(summary.run_dir):
        st.warning(symbolic_links_sentence(summary.run_dir))
        return
    st.download_button("⬇ Whole run (zip: config, metrics, probes, models, charts)",
                       data=lambda: run_zip(summary.run_dir), file_name=f"{summary.run_id}.zip",
                       mime="application/zip", key="export_run_zip", on_click="ignore")


# Several runs' validation accuracy on one chart.
def _overlay(summaries) -> None:
    chosen = st.multiselect("Overlay validation accuracy of runs", [s.run_id for s in summaries],
                            default=[s.run_id for s in summaries[:2]], key="overlay_runs")
    frames = {s.run_id: read_epoch_metrics(s.run_dir) for s in summaries if s.run_id in chosen}
    frames = {run_id: frame for run_id, frame in frames.items() if not frame.empty}
    if frames:
        figure = overlay_runs_figure(frames)
        st.plotly_chart(figure, key="overlay_chart")
        export_buttons(figure, pd.concat(frames, names=["run"]).reset_index(level=0), "overlay", key="export_overlay")


# The run-history tab; folders refused in the runs folder (links, planted files) get one sentence each.
def runs_panel(runs_dir: str) -> None:
    summaries, refusals = scan_runs(runs_dir)
    for refusal in refusals[:REFUSALS_SHOWN]:
        st.warning(refusal)
    if len(refusals) > REFUSALS_SHOWN:
        st.warning(f"{len(refusals) - REFUSALS_SHOWN} more folders of the runs folder were passed by in the same way.")
    if not summaries:
        st.info(f"No runs in {shown_path(runs_dir)} yet.")
        return
    st.dataframe(_runs_frame(summaries), hide_index=True, key="runs_table")
    summary = st.selectbox("View run", summaries, format_func=lambda s: f"{s.run_id} · {s.state}", key="view_run")
    _run_view(summary)
    _overlay(summaries)
