"""A run the page sends to a Ray cluster: a child `gapdemo train --address` process, read as a TrainingJob.

Ray stays out of the web server's process (a driver whose cluster dies is ended by Ray, and the page
must not go with it), as for claims jobs and sweeps (gapdemo.jobs.child_job). The child prints one JSON line per
update (--events): whether the run waits for the cluster's resources or trains, on which node, and
its progress. The run folder is the contract: epochs, batch rows and probes are read from it as they
come home and published through TrainingJob's snapshot, so the page draws a cluster run exactly as
one trained here. Stop ends the child with SIGTERM (Windows: TerminateProcess): the run stops after
its batch in flight, or, killed, Ray ends the task its driver owned; finished epochs stay either way.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from gapdemo import runs
from gapdemo.cluster.connection import EngineError, check_reachable
from gapdemo.jobs.page import PageScheduler
from gapdemo.jobs.processes import parse_event
from gapdemo.runs.tail import batch_metrics_tail, epoch_metrics_tail
from gapdemo.serving import child_environment
from gapdemo.training.failures import readable_error
from gapdemo.training.job import STOPPED_MESSAGE, TrainingJob

WAITING_PROGRESS = {"phase": "waiting"}  # in words: gapdemo.training.phases
RUNS_PER_VISITOR = 2  # on a served page: one training, one waiting
CLUSTER_LIMIT_MESSAGE = ("You already have a run training and one waiting; wait until one ends, or stop one, "
                         "before starting another.")
ERROR_LINES_KEPT = 20  # the child's last stderr lines: its "error: ..." sentence is among them


class ClusterJob(TrainingJob):
    """One run on the Ray cluster at address, with TrainingJob's snapshot, stop and wait."""

    slots = 0  # the cluster's resources limit it, not this machine's training slots

    def __init__(self, config, address: str, owner: str | None = None, served: bool = False,
                 cpus: float = 1, gpus: float = 0):
        super().__init__(config, owner=owner, served=served)  # the gate, with served
        self.address, self.cpus, self.gpus, self.served = address, cpus, gpus, served
        self.node: str | None = None  # the Ray node it trains on, once it started
        self.process: subprocess.Popen | None = None
        self.tails = None  # (metrics.csv, batch_metrics.csv) read a few rows at a time, once the folder is known

    def command(self) -> list[str]:
        return [sys.executable, "-m", "gapdemo", "train", "--address", self.address, "--config", "-",
                "--runs-dir", str(self.run_dir.parent), "--run-id", self.run_id, "--cpus-per-run", str(self.cpus),
                "--gpus-per-run", str(self.gpus), "--events", "--json"]

    def run(self) -> str:
        """Start the child, follow its events until it ends; the end state. Never raises: whatever goes
        wrong here ends the job as failed with one sentence, so it never holds a place in the queue."""
        if self.is_done():
            return self.state
        self.publish(started=time.time(), progress=dict(WAITING_PROGRESS))
        result, error_lines = {}, collections.deque(maxlen=ERROR_LINES_KEPT)
        try:
            self.start_child(error_lines)
            for line in self.process.stdout:
                result = self.follow(parse_event(line)) or result
            self.process.wait()
        except Exception as error:  # the child could not start, or its output made no sense
            error_lines.append(f"error: {readable_error(error)}")
        finally:
            self.end_child()
        return self.finish(result, list(error_lines))

    def start_child(self, error_lines) -> None:
        """Start `gapdemo train --address`, hand it the settings on stdin, keep its last stderr lines.

        stderr is read all along by a thread: a child blocked on a full pipe would stop reporting.
        """
        self.process = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
                                        env={**child_environment(self.served), "PYTHONIOENCODING": "utf-8"})
        threading.Thread(target=error_lines.extend, args=(self.process.stderr,), daemon=True).start()
        try:
            self.process.stdin.write(json.dumps(self.config.to_dict()))
            self.process.stdin.close()
        except OSError:  # Stop ended the child already: its output says the rest
            pass
        if self.stop_requested:  # Stop pressed while the child started
            self.process.terminate()

    def end_child(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def follow(self, event: dict) -> dict | None:
        """Publish one event line; the final result (a line with "status") is returned."""
        if "status" in event:
            return event
        if event.get("event") == "submitted":
            self.move_to(Path(event["run_dir"]))
        elif event.get("event") == "update" and event.get("state") not in (None, "waiting"):
            self.node = event.get("node")
            state = "stopping" if self.stop_requested else "running"
            self.publish(state=state, progress=event.get("progress") or {"phase": "starting"})
            self.read_run_folder()
        return None

    def read_run_folder(self) -> None:
        """Publish the epochs, batch rows and probes that came home since the last read (only the bytes
        appended since: gapdemo.runs.tail); a file that shrank means a lost node started the run again."""
        if self.tails is None or self.tails[0].path.parent != self.run_dir:  # the folder chosen on submission
            self.tails = (epoch_metrics_tail(self.run_dir), batch_metrics_tail(self.run_dir))
        epoch_tail, batch_tail = self.tails
        snapshot = self.snapshot()
        epoch_rows, batch_rows = epoch_tail.read_new(), batch_tail.read_new()
        if epoch_tail.restarted or batch_tail.restarted:  # a lost node: the run started again from epoch 1
            self.replace_rows(epoch_rows if epoch_tail.restarted else snapshot.epoch_metrics + epoch_rows,
                              batch_rows if batch_tail.restarted else snapshot.batch_metrics + batch_rows)
        else:
            if batch_rows:
                self.add_batch_rows(batch_rows, snapshot.progress)
            if epoch_rows:
                self.add_epoch_rows(epoch_rows)
        if epoch_rows:
            epoch, probes = runs.load_probes(self.run_dir)
            self.publish(probes=probes, probes_epoch=epoch)
        if not snapshot.dataset_info:
            self.publish(dataset_info=runs.read_config(self.run_dir).get("dataset_info", {}))

    def finish(self, result: dict, error_lines: list[str]) -> str:
        if self.run_dir.is_dir():
            self.read_run_folder()
        state = result.get("status") or ("stopped" if self.stop_requested else "failed")
        message = {"finished": "", "stopped": STOPPED_MESSAGE}.get(state)
        if message is None:
            errors = [line.strip().removeprefix("error: ") for line in error_lines if line.startswith("error: ")]
            message = errors[-1] if errors else "The run's process on this machine ended unexpectedly."
        self.publish(state=state, message=message, finished=time.time(),
                     progress={**self.snapshot().progress, "phase": state})
        self.mark_done()
        return state

    def stop(self) -> None:
        """Stop after the batch in flight: the child passes the stop to the cluster, then ends."""
        super().stop()
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()


class ClusterJobManager(PageScheduler):
    """The page's scheduler when GAPDEMO_RAY_ADDRESS names a Ray cluster: runs, claims jobs and sweeps go
    there side by side as its resources allow, taking none of this machine's training slots.

    The served-page rules hold unchanged: the gate (in ClusterJob), one waiting job per owner and kind
    and at most max_queued_runs() waiting in all, where waiting means not yet started on a node.
    """

    def __init__(self, address: str, cpus_per_run: float = 1, gpus_per_run: float = 0):
        super().__init__()
        self.address, self.cpus_per_run, self.gpus_per_run = address, cpus_per_run, gpus_per_run
        gpus = f" and {gpus_per_run:g} GPU(s)" if gpus_per_run else ""
        self.engine_note = (f"Runs train on a Ray cluster, side by side as its resources allow: "
                            f"{cpus_per_run:g} CPU(s){gpus} each.")

    def warm(self) -> None:
        """No worker here: every run trains on the cluster."""

    def local_slots(self, wanted: int) -> int:
        return 0  # the cluster's resources limit the work, not this machine's slots

    def new_run_job(self, config, data_loader, owner, served) -> ClusterJob:
        try:
            check_reachable(self.address)  # within seconds, before the run is queued
        except EngineError as error:
            raise ValueError(str(error)) from None
        return ClusterJob(config, self.address, owner=owner, served=served, cpus=self.cpus_per_run,
                          gpus=self.gpus_per_run)

    def admit_locked(self, job, served: bool) -> None:
        """The queue's rules, and, served, at most one running and one waiting run per visitor: on a
        cluster nothing else keeps one visitor from taking every node (and every run is a process here)."""
        super().admit_locked(job, served)
        mine = [other for other in self._jobs if other.owner == job.owner and other.kind == job.kind
                and not other.is_done()]
        if served and job.kind == "run" and len(mine) >= RUNS_PER_VISITOR:
            raise ValueError(CLUSTER_LIMIT_MESSAGE)

    def _waiting_locked(self) -> list:
        return [job for job in self._jobs if job.state == "queued"]

    def queued(self, kind: str | None = None) -> list:
        """Jobs waiting for the cluster's resources, in order."""
        with self._lock:
            return [job for job in self._waiting_locked() if kind in (None, job.kind)]

    def runs_ahead(self, job) -> int:
        """Jobs waiting for the cluster's resources before job."""
        with self._lock:
            waiting = self._waiting_locked()
            return waiting.index(job) if job in waiting else 0

    def latest(self, kind: str = "run"):
        """The newest unfinished job of kind, else the newest one."""
        jobs = self.jobs(kind)
        unfinished = [job for job in jobs if not job.is_done()]
        return (unfinished or jobs or [None])[0]
