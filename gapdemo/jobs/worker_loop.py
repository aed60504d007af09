"""The training worker's side: a long-lived process that trains the page's runs one at a time.

The page (gapdemo.jobs.worker_process) starts `python -m gapdemo worker` and talks to it in JSON lines:

    page -> worker (stdin)    {"train": {"config": RunConfig.to_dict(), "run_id": ..., "served": bool,
                                         "units_per_second": the page's training rate (jobs.duration)}}
                              {"stop": run_id}        stop that run after the batch in flight
    worker -> page (stdout)   {"event": "ready", "process": token}               TensorFlow is imported
                              {"event": "started", "run_id": ..., "run_dir": ...}
                              {"event": "progress", "progress": {...}}           phase, epoch, batch, rate
                              {"event": "dataset", "info": {...}}
                              {"event": "epoch", "epochs_completed": n}          its rows are on disk
                              {"event": "probes", "epoch": n}                    its probes are on disk
                              {"event": "ended", "state": ..., "message": ...}

Everything else a run has goes to its folder, where the page reads it. The worker keeps TensorFlow
imported and the last run's compiled model (gapdemo.model.compiled_cache) between runs, so a second Start at
the same settings neither imports nor traces again. It ends when its standard input closes (the page
went away), stopping a run in training first.
"""

from __future__ import annotations

import json
import os
import sys
import threading

from gapdemo import runs
from gapdemo.budget.duration import TRAINING_RATE
from gapdemo.config import RunConfig
from gapdemo.training.job import TrainingJob


class ReportingJob(TrainingJob):
    """A TrainingJob that also tells the page, line by line, what it publishes."""

    def __init__(self, config: RunConfig, run_id: str | None, served: bool, say):
        super().__init__(config, served=served)
        self.say = say
        if run_id:
            self.move_to(self.run_dir.parent / run_id)

    def publish(self, **changes) -> None:
        super().publish(**changes)
        if "progress" in changes:
            self.say({"event": "progress", "progress": changes["progress"]})
        if changes.get("dataset_info"):
            self.say({"event": "dataset", "info": changes["dataset_info"]})
        if "probes_epoch" in changes:
            self.say({"event": "probes", "epoch": changes["probes_epoch"]})

    def add_batch_rows(self, rows: list[dict], progress: dict) -> None:
        super().add_batch_rows(rows, progress)
        self.say({"event": "progress", "progress": progress})

    def add_epoch_rows(self, rows: list[dict]) -> None:
        super().add_epoch_rows(rows)
        self.say({"event": "epoch", "epochs_completed": self._epochs_published()})

    def _claim_run_folder(self) -> None:
        super()._claim_run_folder()
        self.say({"event": "started", "run_id": self.run_id, "run_dir": str(self.run_dir)})


class Worker:
    """Reads requests from a stream of lines, trains in a thread, writes events to another stream."""

    def __init__(self, output=None):
        self.output = output or sys.stdout
        self._write_lock = threading.Lock()
        self.current: ReportingJob | None = None
        self.thread: threading.Thread | None = None

    def say(self, event: dict) -> None:
        with self._write_lock:
            self.output.write(json.dumps(event, default=str) + "\n")
            self.output.flush()

    def handle(self, message: dict) -> None:
        if "train" in message:
            self.start(message["train"])
        elif message.get("stop") and self.current is not None and message["stop"] == self.current.run_id:
            self.current.stop()

    def start(self, request: dict) -> None:
        """Train one run in a thread; one at a time (the page never sends a second before "ended")."""
        if self.thread is not None and self.thread.is_alive():
            self.say({"event": "ended", "state": "failed", "message": "The worker was busy with another run."})
            return
        try:
            config = RunConfig.from_dict(request["config"])
            TRAINING_RATE.tell(float(request.get("units_per_second") or 0))  # the page's rate, for the gate
            self.current = ReportingJob(config, request.get("run_id"), bool(request.get("served")), self.say)
        except (TypeError, ValueError, KeyError) as error:  # the gate's sentences, or settings that make no config
            self.say({"event": "ended", "state": "failed", "message": str(error)})
            return
        self.thread = threading.Thread(target=self.train, args=(self.current,), name="gapdemo-training", daemon=True)
        self.thread.start()

    def train(self, job: ReportingJob) -> None:
        state = job.run()
        snapshot = job.snapshot(batch_start=2**62)  # no batch rows: the page reads them from the folder
        self.say({"event": "ended", "state": state, "message": snapshot.message, "run_id": job.run_id})

    def serve(self, lines) -> None:
        """Handle every request line until the stream ends, then stop the run in training and wait for it."""
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                self.handle(message)
        if self.current is not None:
            self.current.stop()
        if self.thread is not None:
            self.thread.join()


def serve_forever() -> int:
    """The worker process: import TensorFlow, say ready, then serve standard input."""
    # deferred: TensorFlow takes seconds to import; the page waits for "ready" instead of the first run
    import gapdemo.training.trainer  # noqa: F401

    worker = Worker(private_stdout())
    worker.say({"event": "ready", "process": runs.process_token()})
    worker.serve(sys.stdin)
    return 0


def private_stdout():
    """This process's standard output for events alone: whatever a library prints goes to stderr instead."""
    events = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return events
