"""One owned-job base (who queued it, stop, still going) and one Stop control for the Claims and Sweeps tabs."""

import pytest
from streamlit.testing.v1 import AppTest

from gapdemo.config import tiny_config
from gapdemo.jobs.child_job import ClaimsJob, PoolMeasureJob, SweepJob
from gapdemo.jobs.cluster_job import ClusterJob
from gapdemo.jobs.run_job import WorkerRunJob
from gapdemo.training.job import TrainingJob
from gapdemo.training.owned_job import OwnedJob

OWNER, OTHER = "a" * 22, "b" * 22  # visitor ids as the page makes them


@pytest.mark.parametrize("job_class", [TrainingJob, WorkerRunJob, ClusterJob, ClaimsJob, SweepJob, PoolMeasureJob])
def test_every_background_job_is_an_owned_job(job_class):
    assert issubclass(job_class, OwnedJob)


def test_who_may_stop_an_owned_job():
    job = ClaimsJob(tiny_config(), 1, owner=OWNER, environment={})
    assert job.is_running() and not job.stop_requested
    assert job.may_be_stopped_by(OWNER, any_owner=False) and not job.may_be_stopped_by(OTHER, any_owner=False)
    assert job.may_be_stopped_by(OTHER, any_owner=True)  # a local page (or the operator): one user
    job.stop()  # queued: it never starts
    assert job.stop_requested and job.is_done() and job.state == "stopped"
    assert not job.may_be_stopped_by(OWNER, any_owner=True)  # nothing left to stop


def stop_control_page(owner: str) -> None:
    import streamlit as st

    from dashboard.job_controls import latest_job, stop_button
    from gapdemo.config import tiny_config
    from gapdemo.jobs.child_job import ClaimsJob

    if "job" not in st.session_state:
        st.session_state.job = ClaimsJob(tiny_config(), 1, owner=owner, environment={})

    class Scheduler:
        def latest(self, kind):
            return st.session_state.job

    job, running, may_stop_it = latest_job(Scheduler(), "claims")
    st.write(f"running={running}")
    (column,) = st.columns(1)
    stop_button(column, job, may_stop_it, label="Stop", key="stop", stopping="Stopping", others="Not yours")


def served_page(owner: str, monkeypatch) -> AppTest:
    """The control on a served page, seen by visitor OWNER."""
    monkeypatch.setenv("GAPDEMO_SERVED", "1")
    app = AppTest.from_function(stop_control_page, args=(owner,), default_timeout=30)
    app.query_params["visitor"] = OWNER
    return app.run()


def test_the_stop_control_stops_the_visitors_own_job(monkeypatch):
    app = served_page(OWNER, monkeypatch)
    assert not app.exception and not app.button(key="stop").disabled
    assert "Not yours" not in [caption.value for caption in app.caption]
    app.button(key="stop").click().run()
    assert app.session_state.job.state == "stopped"
    assert app.run().button(key="stop").disabled  # drawn again: nothing left to stop


def test_the_stop_control_leaves_another_visitors_job_alone_when_served(monkeypatch):
    app = served_page(OTHER, monkeypatch)
    assert not app.exception and app.button(key="stop").disabled
    assert "Not yours" in [caption.value for caption in app.caption]
    assert app.session_state.job.state == "queued"
