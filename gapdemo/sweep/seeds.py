"""Repeats over seeds, as sweeps and claims run them: each repeat's seed and its config.

Repeat i of a config whose data seed is s trains with seed s + i for its data, initial weights and batch
order alike; a sweep's trials and a claims job's seeds both draw theirs here, so the same base settings
give the same seeds in either.
"""

from __future__ import annotations

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
