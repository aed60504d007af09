"""A training job in the background, and the queue that runs jobs one at a time.

TrainingJob wraps one run of the Keras loop (gapdemo.training.trainer) in a thread-safe snapshot that any
thread may poll; JobManager is a process-wide FIFO queue with a single worker thread (the machine
has 2 cores). The dashboard keeps one manager per server process (st.cache_resource), so every
browser tab and every refresh sees the same jobs. Nothing here imports streamlit or TensorFlow.

Every job has an owner: an opaque string the page passes for each browser session (None for the
CLI and tests). An owner may have one run waiting besides a running one, and on a served page the
queue holds at most gapdemo.serving.max_queued_runs() waiting runs in all, so reloading the page
(a new session) cannot grow it. Finished jobs leave memory once a newer one has finished: their run
folders stay, and the page reads those.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from gapdemo import runs
from gapdemo.config import RunConfig
from gapdemo.serving import max_queued_runs, may_stop
from gapdemo.training.events import StopRequested, TrainingEvents
from gapdemo.training.failures import readable_error
from gapdemo.validation import validate_run_config

STOPPED_MESSAGE = "Stopped by the user; completed epochs are kept."
QUEUE_LIMIT_MESSAGE = ("You already have a run waiting in the queue; wait until it starts, or stop it, "
                       "before queueing another.")
QUEUE_FULL_MESSAGE = ("The queue is full ({waiting} runs waiting); try again when one of them has started.")
KEPT_FINISHED_JOBS = 1  # finished jobs kept in memory: the newest, whose results the page shows


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
    owner: str | None = None  # who queued the run (TrainingJob.owner)


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


class TrainingJob:
    """One run: load data, build the lockstep model, train, publish, save every epoch."""

    def __init__(self, config: RunConfig, data_loader=None, owner: str | None = None, served: bool = False):
        problems = validate_run_config(config, served=served)
        if problems:
            raise ValueError(" ".join(problems))
        self.config = config
        self.owner = owner  # who queued it (an opaque session id; None = local: CLI, tests)
        self.run_id = runs.new_run_id()
        self.run_dir = Path(config.train.runs_dir) / self.run_id
        self.data_loader = data_loader  # None: gapdemo.data.sources.load_data
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._done_event = threading.Event()
        self._published = _Published()

    # ----- reading (any thread) -----
    def snapshot(self, batch_start: int = 0) -> JobSnapshot:
        with self._lock:
            published = self._published
            end = published.finished or time.time()
            return JobSnapshot(
                run_id=self.run_id, run_dir=str(self.run_dir), state=published.state, message=published.message,
                config=self.config, version=published.version, progress=dict(published.progress),
                epoch_metrics=list(published.epoch_metrics), batch_metrics=published.batch_metrics[batch_start:],
                batch_start=batch_start, probes=published.probes, probes_epoch=published.probes_epoch,
                dataset_info=published.dataset_info,
                elapsed_seconds=(end - published.started) if published.started else 0.0, owner=self.owner,
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

    # ----- running -----
    def run(self) -> str:
        """Train in the calling thread (a job manager's worker, or the CLI). Returns the end state."""
        if self._done_event.is_set():
            return self.state
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
            self._log_failure(error)
        with self._lock:
            epochs_completed = max(epochs_completed, self._epochs_published_locked())
            self._publish_locked(state=final_state, message=message, finished=time.time(),
                                 progress={**self._published.progress, "phase": final_state})
            elapsed = self._published.finished - self._published.started
        self._write_final_status(final_state, message, epochs_completed, elapsed)
        self._done_event.set()
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

    def mark_done(self) -> None:
        """The run has ended and published its final state: wait() returns, the queue moves on."""
        self._done_event.set()

    def _epochs_published_locked(self) -> int:
        return len({row["epoch"] for row in self._published.epoch_metrics})

    def _epochs_published(self) -> int:
        with self._lock:
            return self._epochs_published_locked()

    def _write_final_status(self, state: str, message: str, epochs_completed: int, elapsed: float) -> None:
        if not self.run_dir.exists():
            return
        try:
            runs.write_status(self.run_dir, state, message, epochs_completed, elapsed)
        except OSError:
            pass  # a full disk: the snapshot still tells the page; the job must still end

    def _log_failure(self, error: Exception) -> None:
        try:
            runs.append_log(self.run_dir, "".join(traceback.format_exception(error)))
        except OSError:
            pass  # a full or read-only disk must not hide the original error


class JobManager:
    """Submit jobs; a single worker thread runs them in order."""

    engine_note = ""  # where runs train, in a sentence, when not here one at a time

    def __init__(self):
        self._lock = threading.Condition()
        self._queue: deque[TrainingJob] = deque()
        self._jobs: list[TrainingJob] = []
        self._current: TrainingJob | None = None
        self._worker: threading.Thread | None = None

    def submit(self, config: RunConfig, data_loader=None, owner: str | None = None, *,
               served: bool) -> TrainingJob:
        """Queue a run for owner; raises ValueError (one sentence per problem) for an invalid config,
        QUEUE_LIMIT_MESSAGE when owner already has a run waiting, or QUEUE_FULL_MESSAGE when served
        and max_queued_runs() runs wait already.

        served: the page is reachable from other machines (data paths must lie under the data roots).
        """
        job = self._new_job(config, data_loader, owner, served)
        with self._lock:
            self._admit_locked(owner, served)
            self._forget_finished_locked()
            self._jobs.append(job)
            self._start_locked(job)
        return job

    def _admit_locked(self, owner: str | None, served: bool) -> None:
        """Raise ValueError (one sentence) when owner may not queue another run now."""
        waiting = self._waiting_locked()
        if any(queued.owner == owner for queued in waiting):
            raise ValueError(QUEUE_LIMIT_MESSAGE)
        if served and len(waiting) >= max_queued_runs():
            raise ValueError(QUEUE_FULL_MESSAGE.format(waiting=len(waiting)))

    def _new_job(self, config: RunConfig, data_loader, owner: str | None, served: bool) -> TrainingJob:
        return TrainingJob(config, data_loader=data_loader, owner=owner, served=served)

    def _start_locked(self, job: TrainingJob) -> None:
        """Queue job for the single worker thread (started when none is alive)."""
        self._queue.append(job)
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="gapdemo-training", daemon=True)
            self._worker.start()
        self._lock.notify_all()

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
                self._forget_finished_locked()

    def _forget_finished_locked(self) -> None:
        """Drop all but the newest KEPT_FINISHED_JOBS finished jobs (their run folders stay on disk)."""
        finished = [job for job in self._jobs if job.is_done()]
        forgotten = set(map(id, finished[:-KEPT_FINISHED_JOBS] if KEPT_FINISHED_JOBS else finished))
        self._jobs = [job for job in self._jobs if id(job) not in forgotten]

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

    def runs_ahead(self, job: TrainingJob) -> int:
        """How many runs train before job: the running one and those queued before it (read at once,
        so a job the worker takes meanwhile is not counted both as queued and as running)."""
        with self._lock:
            waiting = [queued for queued in self._queue if not queued.is_done()]
            before = waiting.index(job) if job in waiting else 0
            return before + (self._current is not None and self._current is not job)

    def _waiting_locked(self) -> list[TrainingJob]:
        """Queued jobs that will not start next: with nothing running, the head of the queue is as
        good as running (the worker is about to take it)."""
        waiting = [job for job in self._queue if not job.is_done()]
        return waiting[1:] if self._current is None else waiting

    def job_to_stop(self, owner: str | None, any_owner: bool) -> TrainingJob | None:
        """The run a Stop button acts on: the running one, else the first queued one.

        Args:
            owner: the visitor pressing Stop.
            any_owner: True on a local page (one user); False when served, so a visitor stops only their own runs.
        """
        with self._lock:
            candidates = [self._current] if self._current is not None and not self._current.is_done() else []
            candidates += [job for job in self._queue if not job.is_done()]
        return next((job for job in candidates if may_stop(job.owner, owner, any_owner)), None)

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
