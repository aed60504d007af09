"""JobManager: a process-wide FIFO queue that trains one job at a time (the machine has 2 cores).

The dashboard keeps one manager per server process (st.cache_resource), so every browser tab
and every refresh sees the same jobs.
"""

from __future__ import annotations

import threading
from collections import deque

from gapdemo.config import RunConfig
from gapdemo.training import TrainingJob


class JobManager:
    """Submit jobs; a single worker thread runs them in order."""

    def __init__(self):
        self._lock = threading.Condition()
        self._queue: deque[TrainingJob] = deque()
        self._jobs: list[TrainingJob] = []
        self._current: TrainingJob | None = None
        self._worker: threading.Thread | None = None

    def submit(self, config: RunConfig, data_loader=None) -> TrainingJob:
        """Queue a run; raises ValueError (one sentence per problem) for an invalid config."""
        job = TrainingJob(config, data_loader=data_loader)
        with self._lock:
            self._jobs.append(job)
            self._queue.append(job)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="gapdemo-training", daemon=True)
                self._worker.start()
            self._lock.notify_all()
        return job

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

    def jobs(self) -> list[TrainingJob]:
        """All jobs this process has seen, newest first."""
        with self._lock:
            return list(reversed(self._jobs))

    def current(self) -> TrainingJob | None:
        with self._lock:
            return self._current

    def queued(self) -> list[TrainingJob]:
        with self._lock:
            return [job for job in self._queue if not job.is_done()]

    def get(self, run_id: str) -> TrainingJob | None:
        with self._lock:
            return next((job for job in self._jobs if job.run_id == run_id), None)

    def latest(self) -> TrainingJob | None:
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
