"""A fair queue: one waiting run per owner besides a running one; Stop on a served page acts on one's own runs."""

import errno
import threading

import pytest
from in_thread import InThreadScheduler

from gapdemo.config import tiny_config
from gapdemo.jobs.scheduler import QUEUE_LIMIT_MESSAGE
from gapdemo.training.failures import readable_error


def gated_loader(gate: threading.Event):
    """A data loader that holds its job in 'running' until gate is set, then fails without training."""

    def load(data_config, batch_size, progress=None):
        gate.wait(60)
        raise ValueError("released by the test")

    return load


@pytest.fixture
def manager_with_a_running_job(runs_dir):
    gate = threading.Event()
    manager = InThreadScheduler()

    def submit(owner):
        return manager.submit(tiny_config(str(runs_dir)), data_loader=gated_loader(gate), owner=owner, served=False)

    running = submit("visitor-a")
    assert running.wait(0.2) is False
    yield manager, submit, running
    gate.set()
    for job in manager.jobs():
        job.stop()
    assert all(job.wait(60) for job in manager.jobs())


def test_one_waiting_run_per_owner(manager_with_a_running_job):
    manager, submit, running = manager_with_a_running_job
    waiting = submit("visitor-a")
    with pytest.raises(ValueError, match="already have a run waiting") as refused:
        submit("visitor-a")
    assert str(refused.value) == QUEUE_LIMIT_MESSAGE
    other = submit("visitor-b")  # another visitor is not held back by visitor-a's runs
    with pytest.raises(ValueError, match="already have a run waiting"):
        submit("visitor-b")
    assert manager.queued() == [waiting, other]
    assert [job.owner for job in manager.jobs()] == ["visitor-b", "visitor-a", "visitor-a"]
    waiting.stop()
    assert submit("visitor-a").state == "queued"  # a stopped run frees the place


def test_runs_ahead_counts_the_running_run_and_those_queued_before(manager_with_a_running_job):
    manager, submit, running = manager_with_a_running_job
    second, third = submit("visitor-b"), submit("visitor-c")
    assert [manager.runs_ahead(job) for job in (running, second, third)] == [0, 1, 2]
    second.stop()  # a stopped run no longer waits
    assert manager.runs_ahead(third) == 1


def test_a_run_just_submitted_to_an_idle_queue_has_none_ahead_whenever_the_worker_takes_it(runs_dir):
    gate = threading.Event()
    managers = []
    try:
        for _ in range(40):  # the worker takes the job at any moment after submit; the count must not care
            managers.append(InThreadScheduler())
            job = managers[-1].submit(tiny_config(str(runs_dir)), data_loader=gated_loader(gate), served=False)
            assert managers[-1].runs_ahead(job) == 0
    finally:
        gate.set()
        assert all(job.wait(60) for manager in managers for job in manager.jobs())


def test_the_run_about_to_start_counts_as_running(runs_dir):
    gate = threading.Event()
    manager = InThreadScheduler()
    try:
        for _ in range(2):  # the first may still be in the queue when the second arrives: both are allowed
            manager.submit(tiny_config(str(runs_dir)), data_loader=gated_loader(gate), owner=None, served=False)
        with pytest.raises(ValueError, match="already have a run waiting"):
            manager.submit(tiny_config(str(runs_dir)), data_loader=gated_loader(gate), owner=None, served=False)
    finally:
        gate.set()
        assert all(job.wait(60) for job in manager.jobs())


def test_stop_acts_on_own_runs_when_served(manager_with_a_running_job):
    manager, submit, running = manager_with_a_running_job
    other = submit("visitor-b")
    assert manager.job_to_stop("visitor-b", any_owner=False) is other
    assert manager.job_to_stop("visitor-a", any_owner=False) is running
    assert manager.job_to_stop("visitor-c", any_owner=False) is None
    assert manager.job_to_stop("visitor-b", any_owner=True) is running  # local page: one user, any run


def test_served_submit_checks_the_data_roots(runs_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GAPDEMO_DATA_ROOTS", str(tmp_path / "root"))
    (tmp_path / "outside").mkdir()
    config = tiny_config(str(runs_dir))
    config.data.dataset, config.data.data_dir = "folder", str(tmp_path / "outside")
    with pytest.raises(ValueError, match=f"^The folder {tmp_path / 'outside'} does not exist.$"):
        InThreadScheduler().submit(config, owner="visitor-a", served=True)


@pytest.mark.parametrize("error, epochs, expected", [
    (OSError(errno.ENOSPC, "No space left on device"), 1,
     "The disk is full: the run stopped in epoch 2, and the models of epoch 1 are kept."),
    (RuntimeError("UnknownError: ... No space left on device"), 3,
     "The disk is full: the run stopped in epoch 4, and the models of epoch 3 are kept."),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), 0,
     "The disk is full: the run stopped in epoch 1, and no epoch had been saved yet."),
])
def test_full_disk_reads_as_one_sentence(error, epochs, expected):
    assert readable_error(error, epochs) == expected


def test_the_scheduler_remembers_whose_runs_are_whose(manager_with_a_running_job):
    """The pooled claims ring a visitor's own runs: the scheduler keeps each visitor's run ids."""
    manager, submit, running = manager_with_a_running_job
    other = submit("visitor-b")
    assert manager.run_ids_of("visitor-a") == {running.run_id}
    assert manager.run_ids_of("visitor-b") == {other.run_id} and manager.run_ids_of(None) == frozenset()
