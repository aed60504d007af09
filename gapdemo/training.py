"""TrainingJob: trains several back-ends in lockstep, in the background, streaming a snapshot.

All chosen back-ends live in one Keras model with one output per back-end (its own head, its
own loss). No weight is shared and Adam is per-parameter, so each back-end learns exactly as if
trained alone, while every back-end sees the same batches in the same order and the data are
decoded once. Nothing here imports streamlit: readers poll ``TrainingJob.snapshot()``.
"""

from __future__ import annotations

import re
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from gapdemo import runs
from gapdemo.config import RunConfig
from gapdemo.validation import validate_run_config

STATES = ("queued", "running", "stopping", "finished", "stopped", "failed", "interrupted")
DONE_STATES = ("finished", "stopped", "failed", "interrupted")
PROBES_PER_CLASS = 4


class StopRequested(Exception):
    """Raised inside the job when the user asked to stop between phases."""


@dataclass
class JobSnapshot:
    """A consistent copy of what a job has published, safe to read from any thread."""

    run_id: str
    run_dir: str
    state: str
    message: str
    config: RunConfig
    version: int  # grows with every update; a reader whose version matches has nothing new
    progress: dict  # phase, epoch, epochs, batch, batches_per_epoch, images_per_second, eta_seconds
    epoch_metrics: list[dict]  # one row per back-end per completed epoch (runs.EPOCH_FIELDS)
    batch_metrics: list[dict]  # rows from batch_start on (runs.BATCH_FIELDS)
    batch_start: int  # index of batch_metrics[0] among all batch rows
    probes: dict  # backend -> {"images", "labels", "feature_averages", "dense_weights", "cams"}
    probes_epoch: int  # epoch the probes were taken after (0 = before training, -1 = none yet)
    dataset_info: dict
    elapsed_seconds: float


@dataclass
class _Published:
    state: str = "queued"
    message: str = ""
    version: int = 0
    progress: dict = field(default_factory=lambda: {"phase": "queued"})
    epoch_metrics: list = field(default_factory=list)
    batch_metrics: list = field(default_factory=list)
    probes: dict = field(default_factory=dict)
    probes_epoch: int = -1
    dataset_info: dict = field(default_factory=dict)
    started: float | None = None
    finished: float | None = None


class TrainingJob:
    """One run: load data, build the lockstep model, train, publish, save every epoch."""

    def __init__(self, config: RunConfig, data_loader=None):
        problems = validate_run_config(config)
        if problems:
            raise ValueError(" ".join(problems))
        self.config = config
        self.run_id = runs.new_run_id()
        self.run_dir = Path(config.train.runs_dir) / self.run_id
        self._data_loader = data_loader
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._done_event = threading.Event()
        self._published = _Published()

    # ----- reading (any thread) -----
    def snapshot(self, batch_start: int = 0) -> JobSnapshot:
        with self._lock:
            p = self._published
            end = p.finished or time.time()
            return JobSnapshot(
                run_id=self.run_id, run_dir=str(self.run_dir), state=p.state, message=p.message,
                config=self.config, version=p.version, progress=dict(p.progress),
                epoch_metrics=list(p.epoch_metrics), batch_metrics=p.batch_metrics[batch_start:],
                batch_start=batch_start, probes=p.probes, probes_epoch=p.probes_epoch,
                dataset_info=p.dataset_info, elapsed_seconds=(end - p.started) if p.started else 0.0,
            )

    @property
    def state(self) -> str:
        with self._lock:
            return self._published.state

    @property
    def version(self) -> int:
        with self._lock:
            return self._published.version

    def is_done(self) -> bool:
        return self._done_event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done_event.wait(timeout)

    # ----- control -----
    def stop(self) -> None:
        """Ask the job to stop; training ends after the batches in flight and keeps completed epochs."""
        self._stop_event.set()
        with self._lock:
            if self._published.state == "running":
                self._publish_locked(state="stopping")
            elif self._published.state == "queued":
                self._publish_locked(state="stopped", message="Stopped before it started.")
                self._done_event.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop_event.is_set()

    # ----- publishing (training thread) -----
    def _publish_locked(self, **changes) -> None:
        for key, value in changes.items():
            setattr(self._published, key, value)
        self._published.version += 1

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

    def _write_status(self, state: str, message: str = "", epochs_completed: int = 0) -> None:
        if not self.run_dir.exists():
            return
        started = self._published.started
        elapsed = round(time.time() - started, 2) if started else 0.0
        runs.write_json_atomic(self.run_dir / "status.json", {
            "state": state, "message": message, "epochs_completed": epochs_completed,
            # lockstep: every back-end trains in the same wall time, so each gets the run's time
            "durations": {backend: elapsed for backend in self.config.model.backends},
            "process": runs.process_token(), "updated": time.strftime("%Y-%m-%d %H:%M:%S"),
            "created": self.run_id[:15],
        })

    # ----- running -----
    def run(self) -> str:
        """Train in the calling thread (a job manager's worker, or the CLI). Returns the end state."""
        if self._done_event.is_set():
            return self.state
        self.publish(state="running", started=time.time(), progress={"phase": "loading data"})
        epochs_completed = 0
        try:
            from gapdemo.trainer import Trainer  # TensorFlow loads here, not at import time

            trainer = Trainer(self)
            epochs_completed = trainer.train()
            final_state = "stopped" if self.stop_requested else "finished"
            message = "Stopped by the user; completed epochs are kept." if self.stop_requested else ""
        except StopRequested:
            final_state, message = "stopped", "Stopped by the user; completed epochs are kept."
        except Exception as error:  # any failure ends this job only; the process goes on
            final_state, message = "failed", _readable(error)
            self._log_failure(error)
        with self._lock:
            epochs_completed = max(epochs_completed, len({r["epoch"] for r in self._published.epoch_metrics}))
            self._publish_locked(state=final_state, message=message, finished=time.time(),
                                 progress={**self._published.progress, "phase": final_state})
        self._write_status(final_state, message, epochs_completed)
        self._done_event.set()
        return final_state

    def _log_failure(self, error: Exception) -> None:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / "log.txt", "a") as handle:
                handle.write("".join(traceback.format_exception(error)))
        except OSError:
            pass  # a full or read-only disk must not hide the original error


def _readable(error: Exception) -> str:
    """One sentence for the page: data errors (ValueError, missing files) speak for themselves."""
    if isinstance(error, (ValueError, FileNotFoundError)):
        return str(error)
    text = str(error).strip()
    # A Python error inside the tf.data pipeline arrives wrapped in a TensorFlow error whose
    # text embeds the original "SomeError: message" line; that line is what the user needs.
    inner = re.findall(r"^(\w+(?:Error|Exception)): (.+)$", text, flags=re.MULTILINE)
    if inner:
        return f"Training failed ({inner[-1][0]}: {inner[-1][1].strip()}). Details are in log.txt."
    first_line = text.splitlines()[0] if text else ""
    return f"Training failed ({type(error).__name__}{': ' + first_line if first_line else ''}). Details are in log.txt."
