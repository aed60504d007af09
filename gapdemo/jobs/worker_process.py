"""The page's training workers: `python -m gapdemo worker` processes that keep TensorFlow loaded.

A pool holds at most as many workers as runs may train at once (gapdemo.jobs.settings.max_training).
One is started when the page starts, so a first Start finds TensorFlow imported; a worker that died,
or that holds much more memory than a fresh one after a large run, is replaced for the next run.
"""

from __future__ import annotations

import sys
import threading

from gapdemo.jobs.processes import ChildProcess

WORKER_COMMAND = [sys.executable, "-m", "gapdemo", "worker"]
RECYCLE_BYTES = 3 * 2**30  # an idle worker holding more than this is replaced (TensorFlow keeps freed memory)


class WorkerProcess(ChildProcess):
    """One worker: requests go in as JSON lines, events come out on .events."""

    def __init__(self, environment: dict):
        self.ready = threading.Event()  # set once it says TensorFlow is imported
        super().__init__(WORKER_COMMAND, environment, keep_stdin_open=True)

    def on_event(self, event: dict) -> None:
        if event.get("event") == "ready":
            self.ready.set()


class WorkerPool:
    """Idle workers, handed out one per run; thread-safe."""

    def __init__(self, environment: dict):
        self.environment = environment
        self._idle: list[WorkerProcess] = []
        self._all: list[WorkerProcess] = []
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Start one worker now unless one is idle, so the next run finds TensorFlow imported."""
        with self._lock:
            if not any(worker.alive() for worker in self._idle):
                self._idle.append(self._start_locked())

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until an idle worker has TensorFlow imported (warm() first); False when none has in time."""
        with self._lock:
            idle = [worker for worker in self._idle if worker.alive()]
        return bool(idle) and idle[0].ready.wait(timeout)

    def acquire(self) -> WorkerProcess:
        """An idle worker that is alive, started afresh when there is none."""
        with self._lock:
            while self._idle:
                worker = self._idle.pop(0)
                if worker.alive():
                    return worker
            return self._start_locked()

    def release(self, worker: WorkerProcess, reusable: bool) -> None:
        """Take worker back after a run: kept when reusable and not swollen, else ended (and one warmed)."""
        if reusable and worker.alive() and worker.sample_memory(None) <= RECYCLE_BYTES:
            worker.peak_bytes, worker.over_budget = 0, False
            with self._lock:
                self._idle.append(worker)
            return
        self.end(worker)
        self.warm()

    def end(self, worker: WorkerProcess) -> None:
        worker.close_stdin()  # the worker stops its run and exits when its stdin closes
        if worker.returncode(timeout=5) is None:
            worker.kill()
        with self._lock:
            self._all = [other for other in self._all if other is not worker]

    def all_workers(self) -> list[WorkerProcess]:
        """Every worker this pool started that has not been ended, idle or training."""
        with self._lock:
            return list(self._all)

    def close(self) -> None:
        """End every worker (the page's process is going)."""
        with self._lock:
            workers, self._idle = list(self._all), []
        for worker in workers:
            worker.close_stdin()
            worker.kill()

    def _start_locked(self) -> WorkerProcess:
        worker = WorkerProcess(self.environment)
        self._all.append(worker)
        return worker
