"""python -m gapdemo train without --address: the run trains in this process, in a thread, and every
update it makes reaches the progress display in the order it happened."""

from __future__ import annotations

import json
import queue
import signal
import threading

from gapdemo.commands.progress import RunProgress, final_metrics
from gapdemo.config import RunConfig
from gapdemo.model.precision import PRECISION_LABELS
from gapdemo.serving import operator_says_served
from gapdemo.training.job import TrainingJob


def run_here(args, config: RunConfig) -> int:
    """Train config in this process, its progress on stderr and its result on stdout; the exit status."""
    job = ShownJob(config, served=operator_says_served())
    thread = threading.Thread(target=job.run, name="gapdemo-training", daemon=True)
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: job.stop())
    display = RunProgress(config.train.epochs)
    thread.start()
    show_progress_until_done(job, display)
    thread.join()
    snapshot = job.snapshot()
    epochs_completed = max((r["epoch"] for r in snapshot.epoch_metrics), default=0)
    display.finish(snapshot.state, snapshot.message, epochs_completed)
    final = final_metrics(snapshot.epoch_metrics)
    precision = snapshot.config.train.precision
    if args.json:
        print(json.dumps({"run_id": job.run_id, "run_dir": str(job.run_dir), "status": snapshot.state,
                          "precision": precision, "engine": "in-process", "epochs_completed": epochs_completed,
                          "backends": final}))
    else:
        print(f"run {job.run_id}: {snapshot.state} ({job.run_dir}), {PRECISION_LABELS[precision]}")
        for backend, values in final.items():
            print(f"  {backend:<16} train acc {values['accuracy']:.3f}  val acc {values['val_accuracy']:.3f}")
    return 1 if snapshot.state == "failed" else 0


class ShownJob(TrainingJob):
    """A TrainingJob that also queues its progress, finished epochs and data note for the CLI, in order.

    A poll of the snapshot misses an epoch that ends between two polls, and with it the epoch's rate;
    here every update reaches the display, however short the epoch.
    """

    def __init__(self, config: RunConfig, served: bool):
        super().__init__(config, served=served)
        self.updates: queue.SimpleQueue = queue.SimpleQueue()  # (kind, value), kind: progress, epoch or note

    def publish(self, **changes) -> None:
        super().publish(**changes)
        if "progress" in changes:
            self.updates.put(("progress", changes["progress"]))
        if (changes.get("dataset_info") or {}).get("cache_note"):  # where the images came from
            self.updates.put(("note", changes["dataset_info"]["cache_note"]))

    def add_batch_rows(self, rows: list[dict], progress: dict) -> None:
        super().add_batch_rows(rows, progress)
        self.updates.put(("progress", progress))

    def add_epoch_rows(self, rows: list[dict]) -> None:
        super().add_epoch_rows(rows)
        self.updates.put(("epoch", rows))


def show_progress_until_done(job: ShownJob, display: RunProgress) -> None:
    """Show the job's updates in the order they happened (stderr), until it is done and all are shown."""
    while True:
        try:
            kind, value = job.updates.get(timeout=0.2)
        except queue.Empty:
            if job.is_done() and job.updates.empty():  # every update is queued before the job is done
                return
            display.tick()
            continue
        if kind == "progress":
            display.show(value)
        elif kind == "epoch":
            display.end_epoch(value)
        else:
            display.print_line(value)
