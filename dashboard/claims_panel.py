"""The Claims tab: the tutorial's four claims measured over several seeds in the background, then shown."""

from __future__ import annotations

import dataclasses

import streamlit as st

from dashboard.common import POLL_SECONDS, export_buttons, format_seconds
from dashboard.job_controls import latest_job, start_button, stop_button
from dashboard.pool_panel import pooled_claims_view
from dashboard.visitor import queue_caption, served_rules_apply, shown_path, visitor_id
from gapdemo.claims import CLAIMS, DEFAULT_SEEDS, MAX_SEEDS, latest_claims
from gapdemo.claims.charts import claim_figure, claim_frame
from gapdemo.model.backends import BACKENDS

ANOTHER_VISITORS_CLAIMS = "Another visitor is measuring the claims; only they can stop it. Results show here when done."


def _settings_text(config, seeds: int) -> str:
    backends = ", ".join(BACKENDS[b].label for b in config.model.backends if b in BACKENDS)
    train_size = config.data.train_size or "all"
    return (f"Uses the sidebar settings: {config.data.dataset}, {config.data.image_size}×{config.data.image_size}, "
            f"{backends}, {config.train.epochs} epochs, {train_size} training images. Each of the {seeds} seeds "
            f"trains two runs (the chosen data, and synthetic pets kept in the left half), so {2 * seeds} runs in all.")


# Seeds, Start and Stop; queues the job with the page's scheduler. Served, only its owner may stop it.
def claims_controls(scheduler, config, problems: list[str]) -> None:
    (job, running, may_stop_it), served = latest_job(scheduler, "claims"), served_rules_apply()
    seeds = int(st.number_input("Seeds (independent repeats)", 1, MAX_SEEDS, DEFAULT_SEEDS, key="claims_seeds",
                                disabled=running,
                                help="Every claim is measured once per seed; results show the mean and the "
                                     "min–max spread."))
    st.caption(_settings_text(config, seeds))
    for problem in problems:
        st.error(problem)
    start_column, stop_column = st.columns(2)
    start_button(start_column, scheduler, lambda: scheduler.submit_claims(config, seeds, owner=visitor_id(), served=served),
                 label="▶ Measure the claims", key="claims_start", disabled=running or bool(problems),
                 name="Claims job", started="Measuring the claims in the background.")
    stop_button(stop_column, job, may_stop_it, label="■ Stop claims", key="claims_stop", others=ANOTHER_VISITORS_CLAIMS,
                stopping="Stopping: the current training run ends after this batch; nothing is saved.")


def _status_view(scheduler, polling: bool) -> None:
    job = scheduler.latest("claims")
    if job is None:
        return
    status = job.status()
    state = status["state"]
    if state == "queued":
        st.caption(queue_caption(scheduler.queued()))
    elif state in ("running", "stopping"):
        st.progress(min(max(status["fraction"], 0.0), 1.0),
                    text=f"{status['message']} · {format_seconds(status['elapsed_seconds'])} so far")
    elif state == "failed":
        st.error(f"The claims job failed: {status['message']}")
    elif state == "stopped":
        st.warning(status["message"])
    if polling and state not in ("queued", "running", "stopping"):
        st.rerun()  # the job ended: redraw the page once so the new result shows


def _result_caption(result: dict) -> str:
    config = result.get("config", {})
    data, train = config.get("data", {}), config.get("train", {})
    return (f"Result `{result.get('id', '?')}` of {result.get('created', '?')}: {result.get('seeds')} seed(s), "
            f"{data.get('dataset')}, {data.get('image_size')} px, {train.get('epochs')} epochs, "
            f"{data.get('train_size') or 'all'} training images; took {format_seconds(result.get('seconds'))}. "
            f"Training runs: {shown_path(str(result.get('claims_dir', '')) + '/runs', 'its runs folder')}.")


# Each claim: heading, how it is measured, one chart, one verdict, export buttons.
def claims_results(result: dict) -> None:
    st.caption(_result_caption(result))
    for key, claim in CLAIMS.items():
        st.subheader(claim.heading)
        st.caption(claim.method)
        figure = claim_figure(result, key)
        st.plotly_chart(figure, key=f"claims_chart_{key}")
        st.markdown(f"**Verdict:** {result['verdicts'][key]}")
        export_buttons(figure, claim_frame(result, key), f"{result.get('id', 'claims')}_{key}",
                       key=f"export_claims_{key}")


# The Claims tab; problems: the sidebar's answer from the gate (gapdemo.validation), served or not; is_open: the
# tab shows, so the class's pooled runs are read (and redrawn as they finish).
def claims_panel(scheduler, runs_dir: str, config, problems: list[str], is_open: bool = True) -> None:
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, runs_dir=runs_dir))
    st.markdown("The tutorial makes four claims about GAP. Here each one is measured, several times over, "
                "with a spread, and judged by a sentence computed from the numbers.")
    if is_open:
        pooled_claims_view(scheduler, runs_dir, live=True)
        st.divider()
    st.subheader("Measure the claims with seeds of your own")
    claims_controls(scheduler, config, problems)
    job = scheduler.latest("claims")
    polling = job is not None and not job.is_done()
    st.fragment(run_every=POLL_SECONDS if polling else None)(_status_view)(scheduler, polling)
    result = latest_claims(runs_dir)
    if result is None:
        st.info(f"No claims measured in {shown_path(runs_dir)} yet. Press **Measure the claims**; with the default settings "
                "this takes a while on a CPU (two training runs per seed).")
        return
    claims_results(result)
