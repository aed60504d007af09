"""A run started from the page, trained by a worker process and followed through its run folder.

The page reads a WorkerRunJob exactly as it read a run trained in its own process (TrainingJob's
snapshot): progress comes from the worker's event lines, and everything else from the run folder,
reading only what was appended since the last read (gapdemo.runs.tail): the epoch rows when an
epoch ends, the probes when they are saved, and the batch rows when a tab asks for them. The server
keeps no batch rows and no TensorFlow state. When the worker dies (killed, out of memory, a crash
inside TensorFlow) the run ends as failed with one sentence, its finished epochs stay on disk, and
the pool starts another worker for the next run.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

from gapdemo import runs
from gapdemo.budget.duration import TRAINING_RATE
from gapdemo.jobs.endings import ending_sentence, over_budget_sentence
from gapdemo.jobs.worker_process import WorkerPool, WorkerProcess
from gapdemo.runs.tail import batch_metrics_tail, epoch_metrics_tail
from gapdemo.training.job import STOPPED_MESSAGE, TrainingJob

NO_BATCH_ROWS = 2**62  # a batch_start past every row: the snapshot reads no batch rows
EVENT_WAIT_SECONDS = 1.0


class WorkerRunJob(TrainingJob):
    """One run for a worker of pool; TrainingJob's snapshot, stop and wait, read from afar."""

    def __init__(self, config, pool: WorkerPool, owner: str | None = None, served: bool = False,
                 budget_bytes: int | None = None):
        super().__init__(config, owner=owner, served=served)  # the gate, with served
        self.pool, self.served, self.budget_bytes = pool, served, budget_bytes
        self.worker: WorkerProcess | None = None
        self.batch_tail = batch_metrics_tail(self.run_dir)
        self.epoch_tail = epoch_metrics_tail(self.run_dir)
        self._worker_lock = threading.Lock()

    def snapshot(self, batch_start: int = 0):
        """TrainingJob's snapshot, its batch rows from batch_start on read from batch_metrics.csv."""
        snapshot = super().snapshot(NO_BATCH_ROWS)
        snapshot.batch_start = batch_start
        if batch_start < NO_BATCH_ROWS:
            snapshot.batch_metrics = self.batch_tail.rows_from(batch_start)
        return snapshot

    def run(self) -> str:
        """Hand the run to a worker and follow it to its end; the end state. Never raises."""
        if self.is_done():
            return self.state
        self.publish(state="running", started=time.time(), progress={"phase": "starting worker"})
        try:
            worker = self.pool.acquire()
        except OSError as error:  # no process could be started (no memory, no Python): this run fails alone
            return self.finish("failed", f"The training process could not start: {error}")
        with self._worker_lock:
            self.worker = worker
        if self.stop_requested:  # Stop pressed while the worker was handed over
            self.pool.release(worker, reusable=True)
            return self.finish("stopped", "Stopped before it started.")
        watching = threading.Event()
        worker.watch_memory(self.budget_bytes, watching)
        worker.send({"train": {"config": self.config.to_dict(), "run_id": self.run_id, "served": self.served,
                               "units_per_second": TRAINING_RATE.units_per_second()}})  # its gate agrees with ours
        if self.stop_requested:  # a Stop that reached the worker before the run did: say it again
            worker.send({"stop": self.run_id})
        try:
            state, message = self.follow(worker)
        finally:
            watching.set()
        died = state is None
        if died:
            state, message = "failed", self.death_sentence(worker)
            self.record_death(message)
        with self._worker_lock:
            self.worker = None  # a Stop from now on must not reach the worker's next run
        self.pool.release(worker, reusable=not died)
        return self.finish(state, message)

    def follow(self, worker: WorkerProcess) -> tuple[str | None, str]:
        """Publish the worker's events until the run ends: (state, message), or (None, "") if it died."""
        while True:
            try:
                event = worker.events.get(timeout=EVENT_WAIT_SECONDS)
            except queue.Empty:
                if not worker.alive() and worker.events.empty():
                    return None, ""
                continue
            kind = event.get("event")
            if kind == "ended":
                return event.get("state") or "failed", event.get("message") or ""
            if kind == "exit":
                return None, ""
            self.take(event)

    def take(self, event: dict) -> None:
        """Publish one event of the worker's run."""
        kind = event.get("event")
        if kind == "started":
            self.follow_folder(Path(event["run_dir"]))
        elif kind == "progress":
            phase_state = "stopping" if self.stop_requested else "running"
            progress = event.get("progress") or {}
            if progress.get("phase") == "training" and progress.get("images_per_second"):
                TRAINING_RATE.observe(self.run_id, self.config, float(progress["images_per_second"]))
            self.publish(state=phase_state, progress=progress)
        elif kind == "dataset":
            self.publish(dataset_info=event.get("info") or {})
        elif kind == "epoch":
            self.read_epochs()
        elif kind == "probes":
            epoch, probes = runs.load_probes(self.run_dir)
            self.publish(probes=probes, probes_epoch=epoch)

    def follow_folder(self, run_dir: Path) -> None:
        """The worker chose run_dir (the id asked for, or another when it was taken)."""
        if run_dir != self.run_dir:
            self.move_to(run_dir)
            self.batch_tail, self.epoch_tail = batch_metrics_tail(run_dir), epoch_metrics_tail(run_dir)

    def read_epochs(self) -> None:
        rows = self.epoch_tail.read_new()
        if rows:
            self.add_epoch_rows(rows)

    def death_sentence(self, worker: WorkerProcess) -> str:
        if worker.over_budget:
            return over_budget_sentence(worker.peak_bytes, self.budget_bytes or 0)
        return ending_sentence(worker.returncode(), list(worker.error_lines), peak_bytes=worker.peak_bytes,
                               memory_was_low=worker.memory_was_low)

    def record_death(self, message: str) -> None:
        """The run's folder says failed, with the sentence, as the worker could not write it."""
        self.read_epochs()
        if not self.run_dir.is_dir():
            return
        snapshot = self.snapshot(NO_BATCH_ROWS)
        epochs = len({row["epoch"] for row in snapshot.epoch_metrics})
        try:
            runs.write_status(self.run_dir, "failed", message, epochs, snapshot.elapsed_seconds)
            runs.append_log(self.run_dir, f"\n{message}\n")
        except OSError:
            pass  # a full disk: the page still shows the sentence

    def finish(self, state: str, message: str) -> str:
        self.read_epochs()
        if state == "stopped" and not message:
            message = STOPPED_MESSAGE
        self.publish(state=state, message=message, finished=time.time(),
                     progress={**self.snapshot(NO_BATCH_ROWS).progress, "phase": state})
        self.mark_done()
        return state

    def stop(self) -> None:
        """Stop after the batch in flight: the worker stops the run; a queued run never starts."""
        super().stop()
        with self._worker_lock:
            worker = self.worker
        if worker is not None:
            worker.send({"stop": self.run_id})
