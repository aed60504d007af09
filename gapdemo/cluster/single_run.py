"""One training run as one Ray task, on a cluster: the engine the sweeps use, for a single run.

The run trains in a Ray worker through trials.train_in_worker (one Trainer, its folder sent home to
a collector on this node every epoch, its latest batch rows every few seconds); this process waits,
passes a stop on and reports progress. Ray schedules the task when the cluster has the CPUs (or GPUs)
it asks for, so several runs go side by side. A worker or node that dies takes the run with it: Ray
starts the task again on another node, up to MAX_RUN_RETRIES times, and the collector clears the
folder first, so a retried run starts again from epoch 1. A cluster that goes away ends the run as
failed; the epochs already home stay.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from gapdemo import runs
from gapdemo.cluster import connection, trials
from gapdemo.cluster.resources import reserved_task
from gapdemo.training.failures import readable_error

MAX_RUN_RETRIES = 2  # the run starts again from epoch 1 on another node this many times after a node is lost
LOST_NODE_MESSAGE = ("The node training this run was lost {attempts} time(s), so it ended here; "
                     "the epochs already home are kept.")
CLUSTER_GONE_MESSAGE = "The Ray cluster went away mid-run; the epochs already home are kept."
STOPPED_BEFORE_START = {"state": "stopped", "message": "Stopped before it started.", "epochs_completed": 0,
                        "node": None, "attempts": 0}


def train_remotely(spec: trials.TrialSpec, runs_dir, *, address: str, cpus: float = 1, gpus: float = 0,
                   stop_event: threading.Event | None = None,
                   on_update: Callable[[dict], None] | None = None) -> dict:
    """Train spec's run as one task on the cluster at address; its folder arrives in runs_dir/<run_id>.

    Returns {"state", "message", "epochs_completed", "node", "attempts"}. Raises connection.EngineError
    within seconds when nothing answers at address.

    Args:
        cpus, gpus: what the task asks Ray for; TensorFlow's thread pools are sized to cpus.
        stop_event: set it to stop the run after the batches in flight (finished epochs are kept).
        on_update: on_update(entry) about once a second, entry = the collector's view of the run
            ({"state", "node", "progress", "attempts"}; empty while the run waits for resources).
    """
    import ray  # deferred: Ray fixes its single-machine mode on first import (gapdemo.cluster.connection)

    connection.connect(address)
    collector = trials.start_collector(runs_dir)
    group, task = reserved_task(trials.train_in_worker, cpus, gpus, MAX_RUN_RETRIES)
    reference = task.remote(spec, collector, cpus)
    try:
        outcome = _wait(reference, collector, spec.run_id, stop_event, on_update)
    except ray.exceptions.TaskCancelledError:
        outcome = dict(STOPPED_BEFORE_START)
    except ray.exceptions.RayTaskError as error:  # the task's own code failed outside the trainer (an import, say)
        outcome = {"state": "failed", "message": readable_error(error.cause or error), "epochs_completed": None,
                   "node": None, "attempts": None}
    except ray.exceptions.RayError as error:
        outcome = _ended_by(error, collector, spec.run_id)
    _record_outcome(Path(runs_dir) / spec.run_id, outcome)
    if outcome["message"] != CLUSTER_GONE_MESSAGE:  # with no cluster, removing would wait for it, then end us
        try:
            ray.kill(collector)
            ray.util.remove_placement_group(group)
        except ray.exceptions.RayError:  # already gone with its node: the driver's exit frees the rest
            pass
    return outcome


def _wait(reference, collector, run_id: str, stop_event, on_update) -> dict:
    """Follow the task until it ends (trials.follow_collector); a task stopped before it reached a node is cancelled."""
    import ray  # deferred: Ray fixes its single-machine mode on first import (gapdemo.cluster.connection)

    cancelled = False

    def task_ended(seconds: float) -> bool:
        return bool(ray.wait([reference], timeout=seconds)[0])

    def show(snapshot: dict) -> None:
        nonlocal cancelled
        entry = snapshot.get(run_id, {})
        if stop_event is not None and stop_event.is_set() and not entry.get("state") and not cancelled:
            ray.cancel(reference)  # still waiting for a node: it need not wait any longer
            cancelled = True
        if on_update is not None:
            on_update(entry)

    entry = trials.follow_collector(collector, stop_event, task_ended, show).get(run_id, {})
    return {**ray.get(reference), "attempts": entry.get("attempts", 1)}


def _ended_by(error: Exception, collector, run_id: str) -> dict:
    """The outcome of a run whose task died: a node lost more often than retried, or the cluster gone."""
    import ray  # deferred: Ray fixes its single-machine mode on first import (gapdemo.cluster.connection)

    try:
        entry = ray.get(collector.snapshot.remote(), timeout=10).get(run_id, {})
    except Exception:  # the collector went with the cluster
        return {"state": "failed", "message": CLUSTER_GONE_MESSAGE, "epochs_completed": None, "node": None,
                "attempts": None}
    attempts = entry.get("attempts", 0)
    return {"state": "failed", "message": LOST_NODE_MESSAGE.format(attempts=attempts), "epochs_completed": None,
            "node": entry.get("node"), "attempts": attempts}


def _record_outcome(run_dir: Path, outcome: dict) -> None:
    """Write the run's status when the worker could not: a failure from here, or a run that never started."""
    if not run_dir.is_dir():
        return
    status = runs.read_stored_status(run_dir)
    if outcome["epochs_completed"] is None:
        outcome["epochs_completed"] = int(status.get("epochs_completed", 0))
    if outcome["state"] == "failed" or not status:
        runs.write_status(run_dir, outcome["state"], outcome["message"], outcome["epochs_completed"],
                          status.get("elapsed_seconds", 0.0))
