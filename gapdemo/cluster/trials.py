"""Training runs as Ray Tune trials, on this machine or a cluster, with every result brought home.

Each trial is one ordinary lockstep run (gapdemo.training.trainer.Trainer) in a Ray worker, written first to
a temporary folder on the worker's node. After every finished epoch the worker sends the whole run
folder to a collector actor pinned to the driver's node, which writes it into <runs_dir>/<run_id>/
there: nothing depends on a shared file system (Tune no longer copies trial folders to the head
node), and a finished epoch is home before the next one starts.

Tune provides the grid, per-trial resources, the concurrency cap and retries of trials whose
worker died. A retried trial starts again from epoch 1 in a clean folder. The temporary folder goes
when the trial ends, whether it finished, stopped or failed. gapdemo.cluster.connection starts or joins Ray.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gapdemo import runs
from gapdemo.cluster.collector import TERMINAL_STATES, TrialCollector
from gapdemo.config import RunConfig
from gapdemo.training.events import StopRequested, TrainingEvents
from gapdemo.training.failures import failure_log_text, readable_error
from gapdemo.training.job import STOPPED_MESSAGE

MAX_TRIAL_RETRIES = 3  # a trial whose worker (or node) died is started again this many times
STOP_POLL_SECONDS = 1.0  # how often a trial asks whether the sweep was stopped
PROGRESS_EVERY_SECONDS = 2.0
BATCH_ROWS_HOME_SECONDS = 10.0  # between epochs, the batch rows written since go home this often
WATCH_SECONDS = 1.0  # how often the driver passes a stop on and reads the collector's snapshot
SNAPSHOT_TIMEOUT_SECONDS = 10.0  # a collector busy writing epochs home is waited for this long per round
TRIAL_FOLDER_PREFIX = "gapdemo-trial-"  # a trial's temporary folder on its worker's node


@dataclass
class TrialSpec:
    """What a worker needs to train one run and where its result belongs."""

    run_id: str
    config: dict  # RunConfig.to_dict(); runs_dir is replaced by a folder on the worker
    tags: dict = field(default_factory=dict)  # merged into the run's config.json, e.g. {"sweep": {...}}
    data_loader: Callable | None = None  # module-level function (pickled by reference); None = load_data


# ----- one trial, in a Ray worker -----
class _TrialEvents(TrainingEvents):
    """Sends each finished epoch home, reports progress now and then, polls the stop flag."""

    def __init__(self, collector, spec: TrialSpec, run_dir: Path, in_tune: bool):
        self.collector, self.spec, self.run_dir = collector, spec, run_dir
        self.in_tune = in_tune  # a Tune trial also reports each epoch to Tune
        self.stop_seen, self.stop_checked, self.progress_sent = False, 0.0, 0.0
        self.sent = {}  # relative path -> signature of the file as last sent home
        self.rows_sent = 0.0  # the first batch's rows go home at once: the page's first curve point
        self.last_training_progress = {}  # the epoch's newest, sent home at its end with its final rate

    def should_stop(self) -> bool:
        import ray  # deferred: Ray fixes its single-machine mode on first import (gapdemo.cluster.connection)

        now = time.monotonic()
        if not self.stop_seen and now - self.stop_checked >= STOP_POLL_SECONDS:
            self.stop_checked = now
            self.stop_seen = ray.get(self.collector.stop_requested.remote())
        return self.stop_seen

    def on_progress(self, progress: dict) -> None:
        now = time.monotonic()
        if now - self.progress_sent >= PROGRESS_EVERY_SECONDS or progress.get("phase") != "training":
            self.progress_sent = now
            self.collector.report.remote(self.spec.run_id, progress)

    def on_batch(self, rows: list[dict], progress: dict) -> None:
        self.last_training_progress = progress
        self.on_progress(progress)
        now = time.monotonic()
        if now - self.rows_sent >= BATCH_ROWS_HOME_SECONDS:  # live curves at home between epochs
            self.rows_sent = now
            self.send_home()

    def on_epoch(self, rows: list[dict], epochs_completed: int) -> None:
        if self.last_training_progress.get("epoch") == epochs_completed:
            self.collector.end_epoch.remote(self.spec.run_id, self.last_training_progress)  # before the rows
        self.send_home()
        if self.in_tune:
            from ray import (
                tune,  # deferred: Ray fixes its single-machine mode on first import (gapdemo.cluster.connection)
            )

            tune.report({"epoch": epochs_completed, **{f"{r['backend']}_val_accuracy": r["val_accuracy"] for r in rows}})

    def send_home(self) -> None:
        """Send the files that changed since the last call (the models, the new rows, the new probes)."""
        import ray  # deferred: Ray fixes its single-machine mode on first import (gapdemo.cluster.connection)

        signatures = runs.run_file_signatures(self.run_dir)
        changed = [path for path, signature in signatures.items() if self.sent.get(path) != signature]
        files = runs.pack_run_folder(self.run_dir, only=changed)
        ray.get(self.collector.receive.remote(self.spec.run_id, files, self.spec.tags))
        self.sent = signatures


def limit_threads(cpus: float) -> None:
    """Size TensorFlow's thread pools to the trial's CPUs (small convolutions scale badly across threads)."""
    threads = str(max(1, int(cpus)))
    for variable in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ[variable] = threads
    import tensorflow as tf  # deferred: TensorFlow takes seconds to import; only a trial's worker needs it

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(int(threads))
        for gpu in tf.config.list_physical_devices("GPU"):  # trials may share a GPU (fractional gpus)
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:
        pass  # this worker process already started TensorFlow; the environment above applied then


def run_trial(parameters: dict, specs: list[TrialSpec], collector, cpus: float) -> None:
    """Tune's function trainable: train specs[parameters['trial']] and send it home."""
    from ray import tune  # deferred: Ray fixes its single-machine mode on first import (gapdemo.cluster.connection)

    outcome = train_in_worker(specs[parameters["trial"]], collector, cpus, in_tune=True)
    # reported even for a trial stopped before it started: one that reports nothing is announced on stdout
    tune.report({"state": outcome["state"], "epochs_completed": outcome["epochs_completed"]})


def train_in_worker(spec: TrialSpec, collector, cpus: float, in_tune: bool = False) -> dict:
    """Train spec's run in this Ray worker, sent home to collector; {"state", "message", "epochs_completed", "node"}.

    Sweep trials (run_trial) and single runs on a cluster (gapdemo.cluster.single_run) both train here.
    """
    import ray  # deferred: Ray fixes its single-machine mode on first import (gapdemo.cluster.connection)

    node = ray.get_runtime_context().get_node_id()
    if not ray.get(collector.begin.remote(spec.run_id, node)):
        state, message, completed = "stopped", "Stopped before it started.", 0
    else:
        limit_threads(cpus)
        # The folder goes whatever happens in it, and before the outcome is reported (Tune may not
        # resume a trial's function after its last report).
        with tempfile.TemporaryDirectory(prefix=TRIAL_FOLDER_PREFIX, ignore_cleanup_errors=True) as work_dir:
            state, message, completed = train_and_send_home(spec, collector, Path(work_dir), in_tune)
    ray.get(collector.finish.remote(spec.run_id, state, message))
    return {"state": state, "message": message, "epochs_completed": completed, "node": node}


def train_and_send_home(spec: TrialSpec, collector, work_dir: Path, in_tune: bool) -> tuple[str, str, int]:
    """Train spec's run in work_dir/<run_id>, its files sent home after every epoch and at the end.

    Returns (state, message, epochs completed); a failure, a bad config included, ends as "failed".
    """
    from gapdemo.training.trainer import Trainer  # deferred: it imports Keras and TensorFlow (seconds)

    run_dir = work_dir / spec.run_id
    events, started, completed = _TrialEvents(collector, spec, run_dir, in_tune), time.time(), 0
    try:
        config = RunConfig.from_dict({**spec.config, "train": {**spec.config["train"], "runs_dir": str(work_dir)}})
        completed = Trainer(config, run_dir, events, data_loader=spec.data_loader).train()
        state, message = ("stopped", STOPPED_MESSAGE) if events.should_stop() else ("finished", "")
    except StopRequested:
        state, message = "stopped", STOPPED_MESSAGE
    except Exception as error:  # a failing trial ends as failed; retrying would fail the same way
        state, message = "failed", readable_error(error)
        runs.append_log(run_dir, failure_log_text(error))
    if run_dir.exists():
        runs.write_status(run_dir, state, message, completed, time.time() - started)
        events.send_home()
    return state, message, completed


# ----- the driver -----
def start_collector(runs_dir):
    import ray  # deferred: Ray fixes its single-machine mode on first import (gapdemo.cluster.connection)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # with ray, above

    here = ray.get_runtime_context().get_node_id()
    remote_class = ray.remote(num_cpus=0, max_restarts=0)(TrialCollector)  # no CPU: trials get them all
    strategy = NodeAffinitySchedulingStrategy(node_id=here, soft=False)
    return remote_class.options(scheduling_strategy=strategy).remote(str(Path(runs_dir).resolve()))


def run_trials(specs: list[TrialSpec], runs_dir, experiment_dir, *, max_concurrent: int | None = None,
               cpus_per_trial: float = 1, gpus_per_trial: float = 0, stop_event: threading.Event | None = None,
               on_update: Callable[[dict], None] | None = None) -> dict:
    """Train every spec as a Tune trial (Ray must be connected); return run_id -> collector entry.

    stop_event: set it to stop every trial after its batches in flight (finished trials are kept).
    on_update: called about once a second from this thread's helper with the collector's snapshot.
    """
    import ray  # deferred: Ray fixes its single-machine mode on first import (gapdemo.cluster.connection)
    from ray import tune  # with ray, above

    for spec in specs:  # RunFileError before anything starts: each run's folder is cleared and written
        runs.run_folder(runs_dir, spec.run_id, "A trial to train")
    # Tune's newer console output prints a box on stdout whatever verbose says; the CLI's stdout is JSON.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    collector = start_collector(runs_dir)
    trainable = tune.with_parameters(run_trial, specs=specs, collector=collector, cpus=cpus_per_trial)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial}),
        param_space={"trial": tune.grid_search(list(range(len(specs))))},
        # reuse_actors: a trial's process already imported TensorFlow; the next trial skips that (~4 s)
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, reuse_actors=True),
        run_config=tune.RunConfig(name="tune", storage_path=str(Path(experiment_dir).resolve()), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=MAX_TRIAL_RETRIES)),
    )
    finished = threading.Event()

    def show(snapshot: dict) -> None:
        if on_update is not None:
            try:
                on_update(snapshot)
            except Exception:  # a failing update (a full disk, say) must not end the watch: stops still pass
                traceback.print_exc()

    watcher = threading.Thread(target=follow_collector, args=(collector, stop_event, finished.wait, show),
                               daemon=True)
    watcher.start()
    try:
        tuner.fit()
    finally:
        finished.set()
        watcher.join()
    outcome = ray.get(collector.snapshot.remote())
    _mark_lost_trials(specs, outcome, runs_dir)
    ray.kill(collector)
    return outcome


def follow_collector(collector, stop_event: threading.Event | None, wait_for_end: Callable[[float], bool],
                     on_snapshot: Callable[[dict], None]) -> dict:
    """Follow the collector until the work ends: once a round, pass a set stop_event on to it (once) and
    hand on_snapshot its snapshot; return the last snapshot.

    A sweep (run_trials) and a single run on a cluster (gapdemo.cluster.single_run) both wait this way.

    Args:
        wait_for_end: wait_for_end(seconds) waits up to seconds and says whether the work has ended.
        on_snapshot: on_snapshot(run_id -> collector entry), about once a second and once more at the end.
    """
    import ray  # deferred: Ray fixes its single-machine mode on first import (gapdemo.cluster.connection)

    stop_sent = False
    while True:
        ended = wait_for_end(WATCH_SECONDS)
        if stop_event is not None and stop_event.is_set() and not stop_sent:
            ray.get(collector.request_stop.remote())  # a trial that starts from now on trains nothing
            stop_sent = True
        try:
            snapshot = ray.get(collector.snapshot.remote(), timeout=SNAPSHOT_TIMEOUT_SECONDS)
        except ray.exceptions.GetTimeoutError:  # a busy collector, not a lost one: the next round asks again
            continue
        on_snapshot(snapshot)
        if ended:
            return snapshot


def _mark_lost_trials(specs: list[TrialSpec], outcome: dict, runs_dir) -> None:
    """Trials whose every attempt died (or that never ran) end as failed, in memory and on disk."""
    for spec in specs:
        entry = outcome.setdefault(spec.run_id, {"attempts": 0})
        if entry.get("state") in TERMINAL_STATES:
            continue
        entry["state"] = "failed"
        entry["message"] = f"The worker running this trial died {entry['attempts']} time(s); it was not finished."
        run_dir = Path(runs_dir) / spec.run_id
        if run_dir.exists():
            status = runs.read_stored_status(run_dir)
            runs.write_status(run_dir, "failed", entry["message"], status.get("epochs_completed", 0),
                              status.get("elapsed_seconds", 0.0))
