"""The queue of training runs: submitted jobs run one at a time, in the order they came, on one worker thread.

JobQueue holds the rules every queue of runs follows: an owner (an opaque string the page passes for
each browser session, None for the CLI and tests) may have one run waiting besides a running one,
and on a served page at most gapdemo.serving.max_queued_runs() runs wait in all, so reloading the
page (a new session) cannot grow it. Finished jobs leave memory once a newer one has finished: their
run folders stay, and the page reads those. Which job a submission makes is a subclass's choice:
gapdemo.training.job.JobManager trains here (the machine has 2 cores), and
gapdemo.training.cluster_job.ClusterJobManager sends runs to a Ray cluster side by side.
"""

from __future__ import annotations

import threading
from collections import deque

from gapdemo.config import RunConfig
from gapdemo.serving import max_queued_runs, may_stop

QUEUE_LIMIT_MESSAGE = ("You already have a run waiting in the queue; wait until it starts, or stop it, "
                       "before queueing another.")
QUEUE_FULL_MESSAGE = ("The queue is full ({waiting} runs waiting); try again when one of them has started.")
KEPT_FINISHED_JOBS = 1  # finished jobs kept in memory: the newest, whose results the page shows


class JobQueue:
    """Submit jobs; a single worker thread runs them in order. Subclasses say what job a submission makes."""

    engine_note = ""  # where runs train, in a sentence, when not here one at a time

    def __init__(self):
        self._lock = threading.Condition()
        self._queue: deque = deque()  # jobs with run(), is_done(), owner, like a TrainingJob
        self._jobs: list = []
        self._current = None
        self._worker: threading.Thread | None = None

    def submit(self, config: RunConfig, data_loader=None, owner: str | None = None, *,
               served: bool):
        """Queue a run for owner; raises ValueError (one sentence per problem) for an invalid config,
        QUEUE_LIMIT_MESSAGE when owner already has a run waiting, or QUEUE_FULL_MESSAGE when served
        and max_queued_runs() runs wait already.

        served: the page is reachable from other machines (data paths must lie under the data roots).
        """
        job = self._new_job(config, data_loader, owner, served)
        with self._lock:
            self._admit_locked(owner, served)
            self._forget_finished_locked()
            self._jobs.append(job)
            self._start_locked(job)
        return job

    def _admit_locked(self, owner: str | None, served: bool) -> None:
        """Raise ValueError (one sentence) when owner may not queue another run now."""
        waiting = self._waiting_locked()
        if any(queued.owner == owner for queued in waiting):
            raise ValueError(QUEUE_LIMIT_MESSAGE)
        if served and len(waiting) >= max_queued_runs():
            raise ValueError(QUEUE_FULL_MESSAGE.format(waiting=len(waiting)))

    def _new_job(self, config: RunConfig, data_loader, owner: str | None, served: bool):
        """A job for this run (raising ValueError when it may not run), not yet queued."""
        raise NotImplementedError

    def _start_locked(self, job) -> None:
        """Queue job for the single worker thread (started when none is alive)."""
        self._queue.append(job)
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="gapdemo-training", daemon=True)
            self._worker.start()
        self._lock.notify_all()

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    if not self._lock.wait(timeout=30):
                        self._worker = None  # idle: let the thread end; submit() starts another
                        return
                job = self._queue.popleft()
                self._current = job
            if not job.is_done():  # a queued job stopped by the user is already done
                job.run()
            with self._lock:
                self._current = None
                self._forget_finished_locked()

    def _forget_finished_locked(self) -> None:
        """Drop all but the newest KEPT_FINISHED_JOBS finished jobs (their run folders stay on disk)."""
        finished = [job for job in self._jobs if job.is_done()]
        forgotten = set(map(id, finished[:-KEPT_FINISHED_JOBS] if KEPT_FINISHED_JOBS else finished))
        self._jobs = [job for job in self._jobs if id(job) not in forgotten]

    def jobs(self) -> list:
        """All jobs this process has seen, newest first."""
        with self._lock:
            return list(reversed(self._jobs))

    def current(self):
        with self._lock:
            return self._current

    def queued(self) -> list:
        with self._lock:
            return [job for job in self._queue if not job.is_done()]

    def runs_ahead(self, job) -> int:
        """How many runs train before job: the running one and those queued before it (read at once,
        so a job the worker takes meanwhile is not counted both as queued and as running)."""
        with self._lock:
            waiting = [queued for queued in self._queue if not queued.is_done()]
            before = waiting.index(job) if job in waiting else 0
            return before + (self._current is not None and self._current is not job)

    def _waiting_locked(self) -> list:
        """Queued jobs that will not start next: with nothing running, the head of the queue is as
        good as running (the worker is about to take it)."""
        waiting = [job for job in self._queue if not job.is_done()]
        return waiting[1:] if self._current is None else waiting

    def job_to_stop(self, owner: str | None, any_owner: bool):
        """The run a Stop button acts on: the running one, else the first queued one.

        Args:
            owner: the visitor pressing Stop.
            any_owner: True on a local page (one user); False when served, so a visitor stops only their own runs.
        """
        with self._lock:
            candidates = [self._current] if self._current is not None and not self._current.is_done() else []
            candidates += [job for job in self._queue if not job.is_done()]
        return next((job for job in candidates if may_stop(job.owner, owner, any_owner)), None)

    def latest(self):
        """The running job, else the newest queued one, else the newest finished one."""
        with self._lock:
            if self._current is not None:
                return self._current
            return self._jobs[-1] if self._jobs else None

    def stop_all(self) -> None:
        for job in self.jobs():
            job.stop()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every submitted job is done (for tests and the CLI)."""
        for job in self.jobs():
            if not job.wait(timeout):
                return False
        return True
