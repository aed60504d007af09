"""One queue for everything the page starts: runs, claims jobs and sweeps, in the order they came.

A job is anything with run() (blocking, never raising), stop(), is_done(), state, owner, kind ("run",
"claims" or "sweep") and slots: how many of this machine's training slots it takes while it runs
(gapdemo.jobs.settings.max_training of them; a local sweep takes one per trial at once, work sent to a
Ray cluster none, since the cluster's resources limit it). The head of the queue starts as soon as
its slots are free; nothing overtakes it. Each running job's run() has a thread of the scheduler,
and the job itself trains in a process of its own (gapdemo.jobs.run_job and gapdemo.jobs.child_job).

The served rules hold for every kind: an owner (an opaque id the page passes per visitor, None for
tests) may have one job of each kind waiting; on a served page at most max_queued_runs() jobs wait in
all, so reloads cannot grow the queue; one claims job and one sweep at a time. Finished jobs leave
memory once a newer one of their kind has finished: their folders stay, and the page reads those.
"""

from __future__ import annotations

import threading
from collections import deque

from gapdemo.config import RunConfig
from gapdemo.serving import max_queued_runs

QUEUE_LIMIT_MESSAGE = ("You already have a run waiting in the queue; wait until it starts, or stop it, "
                       "before queueing another.")
QUEUE_FULL_MESSAGE = "The queue is full ({waiting} jobs waiting); try again when one of them has started."
ONE_AT_A_TIME_MESSAGE = {"claims": "A claims job is already running or waiting; stop it or wait for it to finish.",
                         "sweep": "A sweep is already running or waiting; stop it or wait for it to finish.",
                         "pool": "The class's new runs are already being measured."}
KIND_WORDS = {"run": "run", "claims": "claims job", "sweep": "sweep", "pool": "measuring of pooled runs"}
KEPT_FINISHED_JOBS = 1  # finished jobs of each kind kept in memory: the newest, whose results the page shows


class Scheduler:
    """Submit jobs; at most max_training slots' worth run at once, in the order they came."""

    engine_note = ""  # where runs train, in a sentence, when not one at a time on this machine

    def __init__(self, max_training: int = 1):
        self.max_training = max(int(max_training), 1)
        self._lock = threading.Condition()
        self._queue: deque = deque()  # jobs not yet started, in order
        self._running: list = []
        self._jobs: list = []  # every job kept in memory, oldest first
        self._run_ids_by_owner: dict[str, set[str]] = {}  # for as long as the server runs: a few ids per visitor

    def submit(self, config: RunConfig, data_loader=None, owner: str | None = None, *, served: bool):
        """Queue a run for owner; raises ValueError (one sentence per problem) for a config that may
        not run here, QUEUE_LIMIT_MESSAGE when owner already has a run waiting, QUEUE_FULL_MESSAGE when
        served and max_queued_runs() jobs wait already."""
        return self.submit_job(self.new_run_job(config, data_loader, owner, served), served=served)

    def new_run_job(self, config: RunConfig, data_loader, owner: str | None, served: bool):
        """The job of one run (raising ValueError when it may not run), not yet queued."""
        raise NotImplementedError

    def submit_job(self, job, *, served: bool):
        """Queue a job of any kind under the rules above; the job."""
        with self._lock:
            self.admit_locked(job, served)
            run_id = getattr(job, "run_id", None)  # runs have one; the queue's contract does not ask for it
            if job.kind == "run" and job.owner is not None and run_id:
                self._run_ids_by_owner.setdefault(job.owner, set()).add(run_id)
            self._forget_finished_locked()
            self._jobs.append(job)
            self._queue.append(job)
            self._start_ready_locked()
        return job

    def admit_locked(self, job, served: bool) -> None:
        """Raise ValueError (one sentence) when job may not be queued now."""
        unfinished = [other for other in self._jobs if not other.is_done()]
        if job.kind in ONE_AT_A_TIME_MESSAGE and any(other.kind == job.kind for other in unfinished):
            raise ValueError(ONE_AT_A_TIME_MESSAGE[job.kind])
        waiting = self._waiting_locked()
        if any(other.owner == job.owner and other.kind == job.kind for other in waiting):
            raise ValueError(QUEUE_LIMIT_MESSAGE)
        if served and len(waiting) >= max_queued_runs():
            raise ValueError(QUEUE_FULL_MESSAGE.format(waiting=len(waiting)))

    def _start_ready_locked(self) -> None:
        """Start the queue's head while its slots are free (one larger than max_training runs alone)."""
        while self._queue:
            job = self._queue[0]
            if job.is_done():  # stopped while it waited
                self._queue.popleft()
                continue
            used = sum(running.slots for running in self._running)
            if self._running and used + job.slots > self.max_training:
                return
            self._queue.popleft()
            self._running.append(job)
            threading.Thread(target=self._run, args=(job,), name=f"gapdemo-{job.kind}", daemon=True).start()
        self._lock.notify_all()

    def _run(self, job) -> None:
        try:
            job.run()
        finally:
            with self._lock:
                self._running.remove(job)
                self._forget_finished_locked()
                self._start_ready_locked()

    def _forget_finished_locked(self) -> None:
        """Keep the newest KEPT_FINISHED_JOBS finished jobs of each kind (their folders stay on disk)."""
        kept = []
        for job in reversed(self._jobs):
            finished_newer = sum(other.is_done() and other.kind == job.kind for other in kept)
            if not job.is_done() or finished_newer < KEPT_FINISHED_JOBS:
                kept.append(job)
        self._jobs = list(reversed(kept))

    def _waiting_locked(self) -> list:
        """Queued jobs that will not start at once: with nothing running, the head is as good as running."""
        waiting = [job for job in self._queue if not job.is_done()]
        return waiting[1:] if not self._running else waiting

    # ----- reading (any thread) -----
    def jobs(self, kind: str | None = None) -> list:
        """The jobs kept in memory, newest first (of one kind when given)."""
        with self._lock:
            return [job for job in reversed(self._jobs) if kind in (None, job.kind)]

    def running(self, kind: str | None = None) -> list:
        with self._lock:
            return [job for job in self._running if kind in (None, job.kind)]

    def queued(self, kind: str | None = None) -> list:
        """Jobs waiting to start, in order (of one kind when given)."""
        with self._lock:
            return [job for job in self._queue if not job.is_done() and kind in (None, job.kind)]

    def runs_ahead(self, job) -> int:
        """How many jobs train before job: those running and those queued before it, read at once."""
        with self._lock:
            waiting = [queued for queued in self._queue if not queued.is_done()]
            if job not in waiting:  # running already, or ended: nothing trains before it
                return 0
            return waiting.index(job) + len(self._running)

    def place_in_line(self, job) -> int:
        """1 for the next job to start, 2 for the one after it, ...; 0 when job is not waiting."""
        waiting = self.queued()
        return waiting.index(job) + 1 if job in waiting else 0

    def job_to_stop(self, owner: str | None, any_owner: bool, kind: str = "run"):
        """What a Stop button of kind acts on: the newest running job, else the first queued one, that
        visitor owner may stop (any_owner: a local page, one user; served, only their own)."""
        candidates = list(reversed(self.running(kind))) + self.queued(kind)
        return next((job for job in candidates if job.may_be_stopped_by(owner, any_owner)),
                    None)

    def run_ids_of(self, owner: str | None) -> frozenset[str]:
        """The ids of the runs owner started since the server started (their dots in the pooled claims)."""
        with self._lock:
            return frozenset(self._run_ids_by_owner.get(owner, ())) if owner is not None else frozenset()

    def latest(self, kind: str = "run"):
        """The newest running job of kind, else the newest kept one."""
        running = self.running(kind)
        if running:
            return running[-1]
        jobs = self.jobs(kind)
        return jobs[0] if jobs else None
