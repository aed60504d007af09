"""The Sweeps tab: a grid of settings x seeds on Ray, its live trials, bands over seeds and the summary."""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from dashboard.common import POLL_SECONDS, export_buttons
from dashboard.job_controls import latest_job, start_button, stop_button
from dashboard.visitor import queue_caption, served_rules_apply, shown_path, visitor_id
from gapdemo.config import DEFAULT_SEEDS, MAX_SEEDS
from gapdemo.sweep import store
from gapdemo.sweep.charts import bands_figure, summary_figure, summary_frame
from gapdemo.sweep.execution import plan_sweep, sweep_result
from gapdemo.sweep.grid import SWEEPABLE, parse_assignment, settings_label
from gapdemo.sweep.summary import epoch_bands

ANOTHER_VISITORS_SWEEP = "Another visitor's sweep is running; only they can stop it. You can watch it below."

# The swept settings and their values; returns (grid, problems).
def grid_inputs(disabled: bool) -> tuple[dict, list[str]]:
    names = st.multiselect("Settings to sweep", list(SWEEPABLE), default=["dropout_rate"], key="sweep_settings",
                           disabled=disabled, help="Every combination of their values is a grid point.")
    grid, problems = {}, []
    for name in names:
        text = st.text_input(f"Values of {name}", SWEEPABLE[name].example, key=f"sweep_values_{name}", disabled=disabled)
        try:
            grid[name] = parse_assignment(f"{name}={text}")[1]
        except ValueError as error:
            problems.append(str(error).capitalize() + ".")
    return grid, problems


# Whether this grid may run here: the sweep planner's gate and, on a served page, its trial cap.
def plan_problems(config, grid: dict, seeds: int, served: bool) -> list[str]:
    try:
        plan_sweep(config, grid, seeds, served=served)
    except ValueError as error:
        return [str(error)]
    return []


# Grid, seeds, Start and Stop; queues the sweep with the page's scheduler. Served, only its owner may stop it.
def sweep_controls(scheduler, config, problems: list[str]) -> None:
    (job, running, may_stop_it), served = latest_job(scheduler, "sweep"), served_rules_apply()
    grid, grid_problems = grid_inputs(running)
    seeds_column, concurrent_column = st.columns(2)
    seeds = int(seeds_column.number_input("Seeds per grid point", 1, MAX_SEEDS, DEFAULT_SEEDS, key="sweep_seeds", disabled=running))
    concurrent = int(concurrent_column.number_input(
        "Trials at once (0 = as the page allows)", 0, 64, 0, key="sweep_concurrent", disabled=running,
        help=f"Each trial takes one CPU. On this machine trials count against the runs that may train at once "
             f"({scheduler.max_training}, GAPDEMO_MAX_TRAINING); on a Ray cluster its CPUs limit them."))
    points = 1
    for values in grid.values():
        points *= len(values)
    st.caption(f"{points} grid point(s) × {seeds} seed(s) = {points * seeds} runs of the sidebar's settings, "
               "each an ordinary run listed in the Runs tab. Runs on Ray: this machine, or the cluster named by "
               "GAPDEMO_RAY_ADDRESS.")
    if not problems and not grid_problems:
        grid_problems = plan_problems(config, grid, seeds, served)
    for problem in problems + grid_problems:
        st.error(problem)
    start_column, stop_column = st.columns(2)
    start_button(start_column, scheduler,
                 lambda: scheduler.submit_sweep(config, grid, seeds, concurrent or None, owner=visitor_id(), served=served),
                 label="▶ Start sweep", key="sweep_start", disabled=running or bool(problems + grid_problems),
                 name="Sweep", started="Sweep started: Ray takes a few seconds to come up.")
    stop_button(stop_column, job, may_stop_it, label="■ Stop sweep", key="sweep_stop", others=ANOTHER_VISITORS_SWEEP,
                stopping="Stopping: running trials end after their batch in flight; finished trials are kept.")
    if running and job.state == "queued":
        st.caption(queue_caption(scheduler.queued()))


def _trial_table(result: dict):
    rows = []
    for trial in result["trials"]:
        row = {"run": trial["run_id"], "grid point": settings_label(trial["settings"]),
               "seed": trial["seed"], "state": trial["state"], "epochs": trial["epochs_completed"]}
        row.update({f"{backend} val acc": values["val_accuracy"] for backend, values in trial["final"].items()})
        rows.append(row)
    return pd.DataFrame(rows)


# One sweep: state, trials, bands per back-end, summary; polled while it runs.
def sweep_view(runs_dir: str, sweep_id: str, job) -> None:
    result = sweep_result(runs_dir, sweep_id)
    done = sum(trial["state"] == "finished" for trial in result["trials"])
    text = f"Sweep `{sweep_id}`: **{result['state']}** · {done}/{len(result['trials'])} trials finished"
    st.markdown(text + (f" · {result['nodes']} Ray node(s)" if result["nodes"] else ""))
    if result["message"]:
        st.info(result["message"])
    if job is not None and job.sweep_id == sweep_id and job.state == "failed":
        st.error(job.status()["message"])
    st.dataframe(_trial_table(result), hide_index=True, key=f"sweep_trials_{sweep_id}")
    metrics = store.trial_epoch_metrics(runs_dir, store.load(runs_dir, sweep_id))
    if not len(metrics):
        st.caption("Curves appear when the first trial finishes an epoch.")
        return
    metric = st.radio("Curves of", ["val_accuracy", "val_loss"], horizontal=True, key=f"sweep_metric_{sweep_id}")
    bands = epoch_bands(metrics, metric)
    for backend in result["summary"] and dict.fromkeys(row["backend"] for row in result["summary"]):
        figure = bands_figure(bands, backend, metric)
        st.plotly_chart(figure, key=f"sweep_bands_{sweep_id}_{backend}")
        export_buttons(figure, bands[bands.backend == backend], f"{sweep_id}_{backend}_{metric}",
                       key=f"export_sweep_{sweep_id}_{backend}")
    figure = summary_figure(result["summary"])
    st.plotly_chart(figure, key=f"sweep_summary_{sweep_id}")
    frame = summary_frame(result["summary"])
    st.dataframe(frame, hide_index=True, key=f"sweep_summary_table_{sweep_id}")
    export_buttons(figure, frame, f"{sweep_id}_summary", key=f"export_sweep_summary_{sweep_id}")


# The Sweeps tab.
def sweeps_panel(scheduler, runs_dir: str, config, problems: list[str]) -> None:
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, runs_dir=runs_dir))
    st.markdown("One run shows one seed. A sweep trains every combination of the values below, several seeds "
                "each, and shows the mean and the spread over seeds: does GAP really overfit less, and at which "
                "dropout rate does FC + dropout catch up?")
    sweep_controls(scheduler, config, problems)
    sweeps = store.list_sweeps(runs_dir)
    if not sweeps:
        st.info(f"No sweeps in {shown_path(runs_dir)} yet.")
        return
    ids = [sweep["sweep_id"] for sweep in sweeps]
    job = scheduler.latest("sweep")
    current = job.sweep_id if job is not None else None
    labels = {s["sweep_id"]: f"{s['sweep_id']} · {s.get('created', '?')} · "
                             + (", ".join(f"{k}={v}" for k, v in s.get("grid", {}).items()) or "seeds only")
              for s in sweeps}
    chosen = st.selectbox("Sweep", ids, index=ids.index(current) if current in ids else 0,
                          format_func=labels.get, key="sweep_chosen")
    polling = job is not None and not job.is_done() and chosen == current
    st.fragment(run_every=POLL_SECONDS if polling else None)(sweep_view)(runs_dir, chosen, job)
