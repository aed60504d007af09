"""The controls every tab of a background job shares (Claims, Sweeps): the job to show and one Stop button,
with one rule for who may stop what (gapdemo.training.owned_job.OwnedJob.may_be_stopped_by: anyone on a
local page, served only the visitor who started it, or the operator)."""

from __future__ import annotations

import streamlit as st

from dashboard.visitor import served_rules_apply, visitor_id


def latest_job(scheduler, kind: str) -> tuple[object | None, bool, bool]:
    """(the newest job of kind or None, whether it is still going, whether this visitor may stop it)."""
    job = scheduler.latest(kind)
    running = job is not None and job.is_running()
    return job, running, running and job.may_be_stopped_by(visitor_id(), any_owner=not served_rules_apply())


# Stop in column, pressed only by who may stop the job; others read whose it is.
def stop_button(column, job, may_stop_it: bool, *, label: str, key: str, stopping: str, others: str) -> None:
    if job is not None and job.is_running() and not may_stop_it:
        st.caption(others)
    if column.button(label, disabled=not may_stop_it, key=key, width="stretch"):
        job.stop()
        st.toast(stopping)


# Start in column: submit() queues the job (the gate asked again: a ValueError is shown), then the page redraws.
def start_button(column, scheduler, submit, *, label: str, key: str, disabled: bool, name: str, started: str) -> None:
    if not column.button(label, type="primary", disabled=disabled, key=key, width="stretch"):
        return
    try:
        queued = submit()
    except ValueError as error:
        st.error(str(error))
        return
    ahead = scheduler.runs_ahead(queued)
    st.toast(f"{name} queued behind {ahead} other job(s)." if ahead else started)
    st.rerun()
