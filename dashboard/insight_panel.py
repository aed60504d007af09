"""Feature-map averages of the probe images, streamed each epoch, and GAP's class activation maps."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.common import PROBES_POLL_SECONDS, export_buttons
from gapdemo.charts.probes import cam_grid_figure, class_means_figure, feature_averages_figure
from gapdemo.jobs.run_job import NO_BATCH_ROWS  # a snapshot without batch rows: this tab draws none
from gapdemo.model.backends import BACKENDS
from gapdemo.runs import list_runs, load_probes

CAPTION = (
    "Each row is one fixed validation image (cats first); each column one of the head's 64 last feature maps, "
    "coloured by its average over the image — exactly the number GAP feeds to its single sigmoid unit. "
    "As GAP trains, channels split into 'cat' and 'dog' detectors: the class means pull apart and the Dense "
    "weight of each channel takes the sign of the class it votes for. Weighting each map by that weight gives "
    "the class activation map: a *category confidence map* showing where the network sees dog (red) or cat (blue)."
)




# The three probe figures of one back-end after one epoch: built once, however many polls and tabs
# show them (probes change once per epoch; rebuilding them every poll took the cores from training).
@st.cache_resource(max_entries=12, show_spinner=False)
def probe_figures(source: str, epoch: int, backend: str, _probe):
    cams = cam_grid_figure(_probe) if _probe.get("cams") is not None else None
    return feature_averages_figure(_probe, backend), class_means_figure(_probe, backend), cams


def _probes_source(manager, runs_dir: str):
    """(epoch, {backend: probes}, title) from the live job, else from the newest run on disk."""
    job = manager.latest()
    if job is not None:
        snapshot = job.snapshot(batch_start=NO_BATCH_ROWS)
        if snapshot.probes:
            return snapshot.probes_epoch, snapshot.probes, f"run `{snapshot.run_id}`"
    for summary in list_runs(runs_dir):
        epoch, probes = load_probes(summary.run_dir)
        if probes:
            return epoch, probes, f"run `{summary.run_id}` (from disk)"
    return -1, {}, ""


def _averages_frame(probes_for_backend) -> pd.DataFrame:
    frame = pd.DataFrame(probes_for_backend["feature_averages"])
    frame.columns = [f"channel_{index}" for index in frame.columns]
    frame.insert(0, "label", ["dog" if label else "cat" for label in probes_for_backend["labels"]])
    return frame


def _draw(manager, runs_dir: str) -> None:
    epoch, probes, title = _probes_source(manager, runs_dir)
    if not probes:
        st.info("Feature-map averages appear here once a run has started.")
        return
    st.caption(f"{title} · after epoch {epoch}" + (" (before training)" if epoch == 0 else ""))
    backend = st.radio("Back-end", list(probes), format_func=lambda key: BACKENDS[key].label, horizontal=True,
                       key="insight_backend")
    probe = probes[backend]
    averages_figure, means_figure, cams_figure = probe_figures(title, epoch, backend, probe)
    left, right = st.columns(2)
    with left:
        figure = averages_figure
        st.plotly_chart(figure, key="feature_averages")
        export_buttons(figure, _averages_frame(probe), f"feature_averages_{backend}", key="export_averages")
    with right:
        figure = means_figure
        st.plotly_chart(figure, key="class_means")
        export_buttons(figure, _averages_frame(probe).groupby("label").mean(), f"class_means_{backend}",
                       key="export_means")
    if cams_figure is not None:
        st.markdown("**Class activation maps** (dense weights × feature maps) of the probe images")
        st.plotly_chart(cams_figure, key="cam_grid")
        export_buttons(cams_figure, None, f"cams_{backend}", key="export_cams")
    else:
        st.caption(f"{BACKENDS[backend].label} has no exact class activation map: its classifier does not act "
                   "on one average per feature map. Pick GAP or GMP to see them.")


# The feature-maps tab; polls while a job runs so each epoch's probes appear (within PROBES_POLL_SECONDS).
def insight_panel(manager, runs_dir: str) -> None:
    st.caption(CAPTION)
    job = manager.latest()
    polling = job is not None and not job.is_done()
    st.fragment(run_every=PROBES_POLL_SECONDS if polling else None)(_draw)(manager, runs_dir)
