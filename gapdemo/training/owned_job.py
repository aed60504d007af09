"""What every background job shares, whatever it runs: who queued it, a stop flag, and an end to wait for.

A run (gapdemo.training.job.TrainingJob and the jobs that train it elsewhere), a claims job and a sweep
(gapdemo.jobs.child_job) all derive from OwnedJob, so the scheduler and the page ask each the same
questions: is it still going, was it asked to stop, and may this visitor stop it (gapdemo.serving.may_stop:
anyone on a local page, only its owner on a served one).
"""

from __future__ import annotations

import threading

from gapdemo.serving import may_stop


class OwnedJob:
    """A job some visitor (owner; None = the page's own work, the CLI, tests) queued; subclasses run it."""

    kind, slots = "", 1  # what gapdemo.jobs.scheduler queues it as, and the training slots it takes

    def __init__(self, owner: str | None = None):
        self.owner = owner  # an opaque session id
        self._stop_event = threading.Event()
        self._done_event = threading.Event()

    def is_done(self) -> bool:
        return self._done_event.is_set()

    def is_running(self) -> bool:
        """Queued or running: not yet ended."""
        return not self._done_event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done_event.wait(timeout)

    def mark_done(self) -> None:
        """The job has ended and published its final state: wait() returns, the queue moves on."""
        self._done_event.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop_event.is_set()

    def stop(self) -> None:
        """Ask the job to stop; a subclass extends this with what stopping means for its state."""
        self._stop_event.set()

    def may_be_stopped_by(self, visitor: str | None, any_owner: bool) -> bool:
        """Whether visitor may stop this job now: it has not ended, and gapdemo.serving.may_stop agrees."""
        return self.is_running() and may_stop(self.owner, visitor, any_owner)
