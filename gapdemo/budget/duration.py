"""How long a run will train, estimated before Start; a served page refuses one over GAPDEMO_MAX_RUN_MINUTES.

Training cost grows with images x epochs x back-ends x image size² (each back-end has its own copy of
the head, whose convolutions dominate; validation and batch-norm recalibration add forward passes).
The rate in those units comes from this machine: the images/s of the runs its workers trained (the
page's workers report them as they train), or, before any has, its float32 matmul peak measured once
(about 0.2 s) times the share of peak that lockstep training reaches (benchmarks/RESULTS.md: 112
images/s for three back-ends at 100 px on a 403 GFLOP/s machine). The measure runs on this machine's
CPU or GPU alike only through numpy, so on a GPU machine the first estimate errs long until a run reports.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Mapping

import numpy as np

from gapdemo import settings
from gapdemo.budget.memory import images_held
from gapdemo.config import RunConfig

MAX_RUN_MINUTES_VARIABLE = settings.MAX_RUN_MINUTES.name
DEFAULT_MAX_RUN_MINUTES = settings.MAX_RUN_MINUTES.default  # a lesson's worth: a default run takes ~4 min on 2 cores
TRAIN_SHARE = 0.8  # of the images a run holds (80/10/10 splits)
FORWARD_ONLY_SHARE = 0.1 * 2 / 3  # validation plus recalibration: a tenth of the images, twice, forward only
UNITS_PER_GFLOP = 112 * 3 * 100**2 / 403  # lockstep images/s x back-ends x pixels, per GFLOP/s of matmul peak
RECENT_RUNS = 5  # the rates of the newest runs that set the estimate
MAX_RATE_FACTOR = 2.0  # a run's rate counts within this factor of the matmul estimate, either way
RATE_VARIABLE = settings.TRAINING_RATE.name  # units/s, set by the page for the processes it starts


def training_units(config: RunConfig) -> float:
    """Images x epochs x back-ends x image size², with validation's forward passes counted in."""
    images = images_held(config) * (TRAIN_SHARE + FORWARD_ONLY_SHARE)
    return images * config.train.epochs * len(config.model.backends) * config.data.image_size**2


def measure_matmul_gflops(side: int = 512, seconds: float = 0.2) -> float:
    """This machine's float32 matmul rate (GFLOP/s) through numpy's BLAS, best of repeats over about seconds."""
    generator = np.random.default_rng(0)
    left, right = (generator.standard_normal((side, side), dtype=np.float32) for _ in range(2))
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline or best == float("inf"):
        started = time.perf_counter()
        np.matmul(left, right)
        best = min(best, time.perf_counter() - started)
    return 2 * side**3 / max(best, 1e-9) / 1e9


class TrainingRate:
    """This process's rate of training in units per second: the median of the newest runs' images/s, else
    the rate the page that started this process measured (GAPDEMO_TRAINING_RATE, or told per run), else
    the matmul estimate (measured at first use). Shared by every session's gate, hence the lock.

    A run's figure counts only within MAX_RATE_FACTOR of the matmul estimate either way: a few runs of
    batch 1 (slow per image) must not get every default run refused, nor a few huge batches let long runs in.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.observed: deque[float] = deque(maxlen=RECENT_RUNS)
        self.run_ids: deque[str] = deque(maxlen=RECENT_RUNS)
        self.matmul_units: float | None = None
        self.told: float | None = None

    def observe(self, run_id: str, config: RunConfig, images_per_second: float) -> None:
        """A run's current images/s while it trains; a run counts once, with its newest figure."""
        if images_per_second <= 0:
            return
        units = images_per_second * len(config.model.backends) * config.data.image_size**2
        baseline = self.matmul_estimate()
        units = min(max(units, baseline / MAX_RATE_FACTOR), baseline * MAX_RATE_FACTOR)
        with self.lock:
            if self.run_ids and self.run_ids[-1] == run_id:
                self.observed[-1] = units
            else:
                self.run_ids.append(run_id)
                self.observed.append(units)

    def tell(self, units_per_second: float) -> None:
        """The rate the page measured, for a process it started (the training worker, per run)."""
        with self.lock:
            self.told = units_per_second if units_per_second > 0 else None

    def forget_runs(self) -> None:
        with self.lock:
            self.observed.clear()
            self.run_ids.clear()
            self.told = None

    def matmul_estimate(self) -> float:
        with self.lock:
            if self.matmul_units is None:
                self.matmul_units = measure_matmul_gflops() * UNITS_PER_GFLOP
            return self.matmul_units

    def units_per_second(self) -> float:
        with self.lock:
            if self.observed:
                return statistics.median(self.observed)
            told = self.told or rate_from_environment()
        return told or self.matmul_estimate()


def rate_from_environment(environ: Mapping[str, str] | None = None) -> float | None:
    """GAPDEMO_TRAINING_RATE: the page's rate, passed to the claims jobs and sweeps it starts."""
    return settings.training_rate(environ)


TRAINING_RATE = TrainingRate()  # one per process: the page's, the worker's and each command's


def estimate_training_seconds(config: RunConfig, rate: TrainingRate = TRAINING_RATE) -> float:
    return training_units(config) / rate.units_per_second()


def max_run_minutes(environ: Mapping[str, str] | None = None) -> float:
    """GAPDEMO_MAX_RUN_MINUTES (a positive number), else DEFAULT_MAX_RUN_MINUTES."""
    return settings.max_run_minutes(environ)


def format_minutes(seconds: float) -> str:
    """75 -> 'about 1 minute'; 1000 -> 'about 17 minutes'; 20000 -> 'about 5.6 hours'."""
    if seconds >= 5400:
        return f"about {seconds / 3600:.1f} hours"
    minutes = max(1, round(seconds / 60))
    return f"about {minutes} minute{'s' if minutes != 1 else ''}"


def duration_problem(config: RunConfig, rate: TrainingRate = TRAINING_RATE) -> str | None:
    """One sentence when the run's estimated training time is over GAPDEMO_MAX_RUN_MINUTES, else None."""
    seconds, limit = estimate_training_seconds(config, rate), max_run_minutes()
    if seconds <= limit * 60:
        return None
    return (f"This run would train for {format_minutes(seconds)} here, over the {limit:g} minutes a run may take "
            "on a served page (GAPDEMO_MAX_RUN_MINUTES); lower the epochs, the training images, the image size "
            "or the back-ends.")
