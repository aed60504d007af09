"""A training run in the calling process: the Keras loop with a snapshot that any thread may poll.

TrainingJob wraps one run of the Keras loop (gapdemo.training.trainer) in a thread-safe snapshot. The
CLI's `train` and the page's training worker (gapdemo.jobs.worker_loop) run one in a thread of their
own process; the page itself never does (gapdemo.jobs). Nothing here imports streamlit or TensorFlow.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from gapdemo import runs
from gapdemo.config import RunConfig
from gapdemo.data.audience import serving_visitors
from gapdemo.training.events import StopRequested, TrainingEvents
from gapdemo.training.failures import failure_log_text, readable_error
from gapdemo.training.owned_job import OwnedJob
from gapdemo.validation import validate_run_config

STOPPED_MESSAGE = "Stopped by the user; completed epochs are kept."


@dataclass
class JobSnapshot:
    """A consistent copy of what a job has published, safe to read from any thread."""

    run_id: str
    run_dir: str
    state: str
    message: str
    config: RunConfig
    progress: dict  # phase, epoch, epochs, batch, batches_per_epoch, images_per_second, eta_seconds
    epoch_metrics: list[dict]  # one row per back-end per completed epoch (runs.EPOCH_FIELDS)
    batch_metrics: list[dict]  # rows from batch_start on (runs.BATCH_FIELDS)
    batch_start: int  # index of batch_metrics[0] among all batch rows
    probes: dict  # backend -> {"images", "labels", "feature_averages", "dense_weights", "cams"}
    probes_epoch: int  # epoch the probes were taken after (0 = before training, -1 = none yet)
    dataset_info: dict
    elapsed_seconds: float
    owner: str | None = None  # who queued the run (TrainingJob.owner)


@dataclass
class _Published:
    state: str = "queued"
    message: str = ""
    progress: dict = field(default_factory=lambda: {"phase": "queued"})
    epoch_metrics: list = field(default_factory=list)
    batch_metrics: list = field(default_factory=list)
    probes: dict = field(default_factory=dict)
    probes_epoch: int = -1
    dataset_info: dict = field(default_factory=dict)
    started: float | None = None
    finished: float | None = None


class _JobEvents(TrainingEvents):
    """The trainer's events turned into updates of the job's snapshot."""

    def __init__(self, job: TrainingJob):
        self.job = job

    def should_stop(self) -> bool:
        return self.job.stop_requested

    def on_progress(self, progress: dict) -> None:
        self.job.publish(progress=progress)

    def on_dataset(self, info: dict) -> None:
        self.job.publish(dataset_info=info)

    def on_batch(self, rows: list[dict], progress: dict) -> None:
        self.job.add_batch_rows(rows, progress)

    def on_epoch(self, rows: list[dict], epochs_completed: int) -> None:
        self.job.add_epoch_rows(rows)

    def on_probes(self, epoch: int, probes: dict) -> None:
        self.job.publish(probes=probes, probes_epoch=epoch)


class TrainingJob(OwnedJob):
    """One run: load data, build the lockstep model, train, publish, save every epoch."""

    kind = "run"

    def __init__(self, config: RunConfig, data_loader=None, owner: str | None = None, served: bool = False):
        problems = validate_run_config(config, served=served)
        if problems:
            raise ValueError(" ".join(problems))
        super().__init__(owner)  # who queued it (None = local: CLI, tests)
        self.config = config
        self.served = served  # for a served page's visitor: its messages name no data file (gapdemo.data.audience)
        self.run_id = runs.new_run_id()
        self.run_dir = Path(config.train.runs_dir) / self.run_id
        self.data_loader = data_loader  # None: gapdemo.data.sources.load_data
        self._lock = threading.Lock()
        self._published = _Published()

    # ----- reading (any thread) -----
    def snapshot(self, batch_start: int = 0) -> JobSnapshot:
        with self._lock:
            published = self._published
            end = published.finished or time.time()
            return JobSnapshot(
                run_id=self.run_id, run_dir=str(self.run_dir), state=published.state, message=published.message,
                config=self.config, progress=dict(published.progress),
                epoch_metrics=list(published.epoch_metrics), batch_metrics=published.batch_metrics[batch_start:],
                batch_start=batch_start, probes=published.probes, probes_epoch=published.probes_epoch,
                dataset_info=published.dataset_info,
                elapsed_seconds=(end - published.started) if published.started else 0.0, owner=self.owner,
            )

    @property
    def state(self) -> str:
        with self._lock:
            return self._published.state

    # ----- control -----
    def stop(self) -> None:
        """Ask the job to stop; training ends after the batches in flight and keeps completed epochs."""
        super().stop()
        with self._lock:
            if self._published.state == "running":
                self._publish_locked(state="stopping")
            elif self._published.state == "queued":
                self._publish_locked(state="stopped", message="Stopped before it started.")
                self.mark_done()

    # ----- publishing (training thread) -----
    def _publish_locked(self, **changes) -> None:
        for key, value in changes.items():
            setattr(self._published, key, value)

    def publish(self, **changes) -> None:
        with self._lock:
            self._publish_locked(**changes)

    def add_batch_rows(self, rows: list[dict], progress: dict) -> None:
        with self._lock:
            self._published.batch_metrics.extend(rows)
            self._publish_locked(progress=progress)

    def add_epoch_rows(self, rows: list[dict]) -> None:
        with self._lock:
            self._published.epoch_metrics.extend(rows)
            self._publish_locked()

    # ----- running -----
    def run(self) -> str:
        """Train in the calling thread (a job manager's worker, or the CLI). Returns the end state."""
        if self.is_done():
            return self.state
        with serving_visitors(self.served):  # a served visitor's run: status and log name no data file
            return self._train_and_publish()

    def _train_and_publish(self) -> str:
        self.publish(state="running", started=time.time(), progress={"phase": "loading data"})
        epochs_completed = 0
        try:
            self._claim_run_folder()
            epochs_completed = self.new_trainer(_JobEvents(self)).train()
            final_state, message = ("stopped", STOPPED_MESSAGE) if self.stop_requested else ("finished", "")
        except StopRequested:
            final_state, message = "stopped", STOPPED_MESSAGE
        except Exception as error:  # any failure ends this job only; the process goes on
            final_state, message = "failed", readable_error(error, self._epochs_published())
            log_failure(self.run_dir, error)
        with self._lock:
            epochs_completed = max(epochs_completed, self._epochs_published_locked())
            self._publish_locked(state=final_state, message=message, finished=time.time(),
                                 progress={**self._published.progress, "phase": final_state})
            elapsed = self._published.finished - self._published.started
        write_final_status(self.run_dir, final_state, message, epochs_completed, elapsed)
        self.mark_done()
        return final_state

    def new_trainer(self, events: TrainingEvents):
        """The trainer of this run, reporting to events (a subclass may train another way)."""
        # deferred: the trainer imports TensorFlow (seconds); the page imports this module at start-up
        from gapdemo.training.trainer import Trainer

        return Trainer(self.config, self.run_dir, events, data_loader=self.data_loader)

    def _claim_run_folder(self) -> None:
        """Create the run folder, never one that exists: a clash (two runs in one second) takes a new id."""
        self.move_to(runs.create_run_folder(self.run_dir.parent, self.run_id))

    def move_to(self, run_dir: Path) -> None:
        """The run's folder is run_dir after all (its id taken by another run, a new one chosen)."""
        with self._lock:
            self.run_id, self.run_dir = Path(run_dir).name, Path(run_dir)

    def replace_rows(self, epoch_rows: list[dict], batch_rows: list[dict]) -> None:
        """Publish these rows instead of those so far (a run started again from epoch 1 elsewhere)."""
        with self._lock:
            self._published.epoch_metrics = list(epoch_rows)
            self._published.batch_metrics = list(batch_rows)
            self._publish_locked(probes={}, probes_epoch=-1)

    def _epochs_published_locked(self) -> int:
        return len({row["epoch"] for row in self._published.epoch_metrics})

    def _epochs_published(self) -> int:
        with self._lock:
            return self._epochs_published_locked()


def write_final_status(run_dir: Path, state: str, message: str, epochs_completed: int, elapsed: float) -> None:
    if not run_dir.exists():
        return
    try:
        runs.write_status(run_dir, state, message, epochs_completed, elapsed)
    except OSError:
        pass  # a full disk: the snapshot still tells the page; the job must still end


def log_failure(run_dir: Path, error: Exception) -> None:
    try:
        runs.append_log(run_dir, failure_log_text(error))
    except OSError:
        pass  # a full or read-only disk must not hide the original error
