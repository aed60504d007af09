"""gapdemo dashboard: streamlit run app.py

Draws only: every computation goes through the gapdemo package, and every run, claims job and sweep
trains in a process of its own (gapdemo.jobs) that this page follows through its folder.
"""

import streamlit as st

from dashboard.claims_panel import claims_panel
from dashboard.classify_panel import classify_panel
from dashboard.common import job_manager, keep_keras_session, runs_dir, stop_on_unreadable_settings
from dashboard.evaluation_panel import evaluation_panel
from dashboard.insight_panel import insight_panel
from dashboard.parameters_panel import parameters_panel
from dashboard.runs_panel import runs_panel
from dashboard.sidebar import run_controls, settings_sidebar
from dashboard.sweeps_panel import sweeps_panel
from dashboard.training_panel import training_panel
from dashboard.visitor import admit_operator, hide_error_details_when_served
from gapdemo.quiet import install_hook

INTRODUCTION = (
    "Why does **Global Average Pooling** beat a fully connected classifier at the end of a CNN? "
    "Train the tutorial's conv head with several back-ends side by side (same initial weights, same batches) "
    "and watch: GAP has ~10,000× fewer back-end parameters, overfits less, and turns its feature maps "
    "into category confidence maps."
)


def main() -> None:
    st.set_page_config(page_title="gapdemo · GAP vs FC", page_icon="🐾", layout="wide")
    stop_on_unreadable_settings()
    install_hook()  # TensorFlow's start-up lines off the server's terminal (GAPDEMO_TF_LOGS=1 shows them)
    hide_error_details_when_served()
    keep_keras_session()
    admit_operator()
    st.title("gapdemo: Global Average Pooling vs fully connected")
    st.markdown(INTRODUCTION)
    try:
        manager = job_manager()
    except ValueError as error:  # the scheduler cannot start as set up: one sentence
        st.error(str(error))
        st.stop()
    config, problems = settings_sidebar(runs_dir())
    run_controls(manager, config, problems)
    train_tab, maps_tab, parameters_tab, classify_tab, mistakes_tab, claims_tab, sweeps_tab, runs_tab = st.tabs(
        [":material/show_chart: Training", ":material/grid_view: Feature maps", ":material/table_chart: Parameters",
         ":material/pets: Classify a photo", ":material/rule: Mistakes", ":material/fact_check: Claims",
         ":material/stacked_line_chart: Sweeps", ":material/history: Runs"], key="main_tab", on_change="rerun")
    with train_tab:
        training_panel(manager)
    with maps_tab:
        # Drawn only while open: it polls and redraws heatmaps each epoch, in the browser, on the cores that train.
        if maps_tab.open:
            insight_panel(manager, runs_dir())
    with parameters_tab:
        parameters_panel(config)
    with classify_tab:
        classify_panel(runs_dir())
    with mistakes_tab:
        # Drawn only while open: it evaluates the newest finished run (TensorFlow, the data and the models),
        # which the other tabs' first draw would otherwise wait for.
        if mistakes_tab.open:
            evaluation_panel(runs_dir())
    with claims_tab:
        claims_panel(manager, runs_dir(), config, problems, is_open=claims_tab.open)
    with sweeps_tab:
        sweeps_panel(manager, runs_dir(), config, problems)
    with runs_tab:
        runs_panel(runs_dir())


main()
