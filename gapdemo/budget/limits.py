"""How many runs may train at once on this machine: GAPDEMO_MAX_TRAINING.

A default run keeps about 1.8 of two cores busy (benchmarks/RESULTS.md, section 1b), so a second run
beside it only halves both; on this 2-core machine one at a time lets the first finish in half the
time, and a queue that says so beats three runs crawling side by side. Larger machines get one run
per two cores. A local sweep's or claims job's trials count against the same number.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from gapdemo import settings

MAX_TRAINING_VARIABLE = settings.MAX_TRAINING.name
WARM_WORKER_VARIABLE = settings.WARM_WORKER.name  # "0": start the training worker at the first Start, not with the page
CORES_PER_RUN = 2


def max_training(environ: Mapping[str, str] | None = None, cores: int | None = None) -> int:
    """GAPDEMO_MAX_TRAINING (a whole number of at least 1), else one run per CORES_PER_RUN cores (at least 1)."""
    told = settings.max_training(environ)
    return max(1, (cores or os.cpu_count() or 1) // CORES_PER_RUN) if told is None else told


def warm_worker(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the page starts a training worker as it starts (GAPDEMO_WARM_WORKER, default 1).

    A warm worker has TensorFlow imported before the first Start (about 4 s sooner to the first curve
    point) and holds about 0.7 GB while nobody trains; 0 saves that memory on a page mostly read.
    """
    return settings.warm_worker(environ)
