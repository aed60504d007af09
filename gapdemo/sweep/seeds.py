"""Repeats over seeds, as sweeps and claims run them: each repeat's seed, its config, and a measure's spread.

Repeat i of a config whose data seed is s trains with seed s + i for its data, initial weights and batch
order alike; a sweep's trials and a claims job's seeds both draw theirs here, so the same base settings
give the same seeds in either. A measure over the repeats is summarised by spread() alone: the sweep's
table and bands and the claims' verdicts and charts read the same mean and sample standard deviation.
"""

from __future__ import annotations

import math
import statistics

from gapdemo.config import RunConfig


def repeat_seed(first_seed: int, repeat: int) -> int:
    """The seed of the repeat-th repeat (0-based) of a config whose data seed is first_seed."""
    return first_seed + repeat


def seeded_config(config: RunConfig, seed: int, runs_dir) -> RunConfig:
    """config with data, initial weights and batch order all drawn from seed, writing its run under runs_dir."""
    values = config.to_dict()
    values["data"]["seed"] = values["model"]["seed"] = values["train"]["seed"] = seed
    values["train"]["runs_dir"] = str(runs_dir)
    return RunConfig.from_dict(values)


def spread(values) -> dict:
    """{"mean", "std", "min", "max", "count", "values"} of a measure over repeats.

    std is the sample standard deviation (n - 1 in the denominator), 0 for a single value. None and
    NaN stand for "not measured": they are skipped, and listed as None in "values". With nothing
    measured, count is 0 and every number is None.
    """
    listed = [float(v) if v is not None and math.isfinite(float(v)) else None for v in values]
    finite = [v for v in listed if v is not None]  # the standard library: sweep.grid imports this module at the CLI's start
    if not finite:
        return {"mean": None, "std": None, "min": None, "max": None, "count": 0, "values": listed}
    return {"mean": statistics.fmean(finite), "std": statistics.stdev(finite) if len(finite) > 1 else 0.0,
            "min": min(finite), "max": max(finite), "count": len(finite), "values": listed}
