"""A run's memory: its peak estimated from its settings before it starts, the budget it must stay under,
and what a job's processes hold while it trains.

The estimate is calibrated on benchmarks/RESULTS.md, section 6 (peak resident memory of a run in a fresh
process, four settings from 64 to 200 px, 2,000 to 8,000 images, batch 32 to 128, one to three heads,
measured twice): the peak is a floor (TensorFlow and Keras imported, plus what every run allocates),
plus the uint8 image arrays 1.65 times over (the split and the pipeline's batches), plus 0.6 of the
float32 layer outputs of one training batch over every head (Keras frees much of them within the step),
plus each FC back-end's dense weights four times (weights, gradients and Adam's two moments). The
figures are a least-squares fit rounded up, so the estimate errs high; section 6 states its error.
"""

from __future__ import annotations

import functools

import psutil

from gapdemo import settings
from gapdemo.config import RunConfig
from gapdemo.units import format_bytes

BUDGET_VARIABLE = settings.MAX_RUN_MEMORY.name
FLOOR_BYTES = 1000 * 2**20  # TensorFlow and Keras imported (674 MiB) plus what every run allocates besides
DATA_COPIES = 1.65  # fitted: the decoded split and the pipeline's batches in flight
ACTIVATION_FACTOR = 0.6  # fitted: peak above the floor against one batch's layer outputs
FC_STATE_COPIES = 4  # weights, gradients, Adam's first and second moments
HEAD_BLOCKS = ((32, 3), (32, 3), (64, 3))  # (filters, kernel) of the head's conv blocks, each then BN, ReLU, pool 2
FC_UNITS = 100
CATS_VS_DOGS_IMAGES = 23_262  # the TFDS set's images, when a run takes all of them


def head_values_per_image(image_size: int) -> tuple[int, int]:
    """(float values every layer of one head outputs for one image, values its flatten feeds an FC layer).

    Each block: a valid 3x3 conv, batch norm and ReLU at one size, then a 2x2 max-pool halving it.
    """
    side, values, channels = image_size, 0, 0
    for filters, kernel in HEAD_BLOCKS:
        side -= kernel - 1  # (batch, side, side, filters) out of the conv, the BN and the ReLU
        values += 3 * side * side * filters
        side //= 2  # (batch, side, side, filters) out of the pool
        values += side * side * filters
        channels = filters
    return values, side * side * channels


def images_held(config: RunConfig) -> int:
    """Images the run decodes and keeps: every split, not only the training images."""
    data = config.data
    train = data.train_size
    if data.dataset == "synthetic":
        return max(data.synthetic_size, int((train or 0) / 0.8))
    if data.dataset == "cats_vs_dogs":
        return min(CATS_VS_DOGS_IMAGES, int(train / 0.8)) if train else CATS_VS_DOGS_IMAGES
    return int(train / 0.8) if train else CATS_VS_DOGS_IMAGES  # a folder's size is unknown until it is read


def estimate_peak_bytes(config: RunConfig) -> int:
    """The run's peak resident memory, estimated from image size, images, batch, back-ends and data source."""
    size = config.data.image_size
    per_image, flattened = head_values_per_image(size)
    backends = list(config.model.backends)
    activations = 4 * per_image * config.train.batch_size * len(backends)
    data = DATA_COPIES * images_held(config) * size * size * 3  # uint8 RGB
    fc_backends = sum(key.startswith("fc") for key in backends)
    fc_state = FC_STATE_COPIES * 4 * fc_backends * (flattened * FC_UNITS + FC_UNITS * FC_UNITS)
    return int(FLOOR_BYTES + data + ACTIVATION_FACTOR * activations + fc_state)


@functools.cache
def default_budget_bytes() -> int:
    """Half the machine's memory less what this process (the server) holds, read once: the page's gate
    and the jobs it starts then agree on one figure for as long as the server runs."""
    return max(psutil.virtual_memory().total // 2 - psutil.Process().memory_info().rss, 0)


def memory_budget_bytes(environ=None) -> int:
    """GAPDEMO_MAX_RUN_MEMORY, else default_budget_bytes(); the page passes the figure on to its jobs."""
    budget = settings.max_run_memory(environ)
    return default_budget_bytes() if budget is None else budget


def budget_problem(config: RunConfig, budget_bytes: int) -> str | None:
    """One sentence when the run's estimated peak is over budget_bytes, else None."""
    estimate = estimate_peak_bytes(config)
    if estimate <= budget_bytes:
        return None
    return (f"This run would need about {format_bytes(estimate)} of memory, more than the "
            f"{format_bytes(budget_bytes)} a run may take here; lower the image size, the batch size, "
            "the training images or the back-ends.")


def process_tree_bytes(pid: int) -> int:
    """Resident memory of process pid and all its descendants (a claims job's Ray workers too); 0 when gone."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:  # ended between the listing and the reading
            pass
    return total
