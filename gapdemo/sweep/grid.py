"""A sweep's grid: which run settings may be swept, parsing NAME=V1,V2, and the trials it expands to.

One trial = one grid point (a value for every swept setting) x one seed; it is an ordinary
lockstep run whose config is the base config with the point's values and the seed applied.
A SweepPlan is the sweep as planned (id, base config, grid, seeds, trials), as data: what the page
hands the process that trains it, which runs exactly those trials.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import NamedTuple

from gapdemo.config import MAX_SEEDS, RunConfig
from gapdemo.sweep.seeds import repeat_seed, seeded_config


# setting name -> (RunConfig section, field, parser): what --set NAME=... may name
class Sweepable(NamedTuple):
    """Where a sweepable setting lives in RunConfig, how its values parse, and two values to start from."""

    section: str
    field_name: str
    parse: type
    example: str  # two values around the default that differ visibly (the Sweeps tab's value box starts here)


SWEEPABLE = {
    "dropout_rate": Sweepable("model", "dropout_rate", float, "0.3, 0.6"),
    "image_size": Sweepable("data", "image_size", int, "64, 100"),
    "train_size": Sweepable("data", "train_size", int, "500, 2000"),
    "bn_momentum": Sweepable("model", "bn_momentum", float, "0.9, 0.99"),
    "learning_rate": Sweepable("train", "learning_rate", float, "0.0003, 0.001"),
    "batch_size": Sweepable("train", "batch_size", int, "32, 64"),
    "epochs": Sweepable("train", "epochs", int, "5, 10"),
}
MAX_TRIALS = 200  # a grid beyond this is more likely a typo than a plan on a 2-core machine


@dataclass(frozen=True)
class Trial:
    """One grid point x one seed."""

    index: int  # position in the sweep, stable across resumes
    settings: dict  # swept setting -> value for this grid point
    seed: int  # seeds data, initial weights and batch order alike


@dataclass(frozen=True)
class SweepPlan:
    """A sweep as planned: its trials, exactly as they will train, and what they were planned from."""

    sweep_id: str  # sweep_id_for(base, grid, seeds): planning the same sweep again resumes it
    base: RunConfig  # every trial's settings before its grid point and seed are applied
    grid: dict  # swept setting -> values, in the order given
    seeds: int  # seeds per grid point
    trials: list[Trial]

    def to_dict(self) -> dict:
        """JSON-ready: {"sweep_id", "base_config", "grid", "seeds", "trials": [{"index", "settings", "seed"}]}."""
        return {"sweep_id": self.sweep_id, "base_config": self.base.to_dict(), "grid": self.grid,
                "seeds": self.seeds, "trials": [dataclasses.asdict(trial) for trial in self.trials]}

    @classmethod
    def from_dict(cls, values: dict) -> SweepPlan:
        """The plan to_dict wrote; ValueError when a trial sweeps a setting that cannot be swept."""
        trials = [Trial(int(t["index"]), dict(t["settings"]), int(t["seed"])) for t in values["trials"]]
        unknown = sorted({name for trial in trials for name in trial.settings} - set(SWEEPABLE))
        if unknown:
            raise ValueError(f"cannot sweep {', '.join(unknown)}; sweepable settings: {', '.join(SWEEPABLE)}")
        return cls(str(values["sweep_id"]), RunConfig.from_dict(values["base_config"]), dict(values["grid"]),
                   int(values["seeds"]), trials)


def parse_assignment(text: str) -> tuple[str, list]:
    """'dropout_rate=0.3,0.6' -> ('dropout_rate', [0.3, 0.6]); ValueError naming what is wrong."""
    name, separator, values_text = text.partition("=")
    name = name.strip()
    if not separator or not values_text.strip():
        raise ValueError(f"--set needs NAME=V1,V2,...; got {text!r}")
    if name not in SWEEPABLE:
        raise ValueError(f"cannot sweep {name!r}; sweepable settings: {', '.join(SWEEPABLE)}")
    parse = SWEEPABLE[name].parse
    values = []
    for part in values_text.split(","):
        try:
            values.append(parse(part.strip()))
        except ValueError:
            raise ValueError(f"{name} takes {parse.__name__} values; {part.strip()!r} is not one") from None
    if len(set(values)) != len(values):
        raise ValueError(f"{name} lists a value twice")
    return name, values


def parse_grid(assignments: list[str]) -> dict[str, list]:
    """Several --set options -> {setting: values}, in the order given."""
    grid = {}
    for text in assignments:
        name, values = parse_assignment(text)
        if name in grid:
            raise ValueError(f"{name} is set twice; give all its values in one --set")
        grid[name] = values
    return grid


def expand_trials(grid: dict[str, list], seeds: int, first_seed: int = 0) -> list[Trial]:
    """Every grid point x every seed, grid points outermost (seed i: seeds.repeat_seed(first_seed, i))."""
    if not 1 <= seeds <= MAX_SEEDS:
        raise ValueError(f"a sweep takes from 1 to {MAX_SEEDS} seeds per grid point, got {seeds}")
    points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())] if grid else [{}]
    trials = [Trial(index, point, repeat_seed(first_seed, repeat))
              for index, (point, repeat) in enumerate(itertools.product(points, range(seeds)))]
    if len(trials) > MAX_TRIALS:
        raise ValueError(f"the sweep has {len(trials)} trials; at most {MAX_TRIALS} are allowed")
    return trials


def plan_trials(base: RunConfig, grid: dict[str, list], seeds: int) -> SweepPlan:
    """The sweep's id and every trial, seeds from base.data.seed on (gapdemo.sweep.execution.plan_sweep asks the gate)."""
    return SweepPlan(sweep_id_for(base, grid, seeds), base, grid, seeds, expand_trials(grid, seeds, base.data.seed))


def trial_config(base: RunConfig, trial: Trial, runs_dir: str) -> RunConfig:
    """base with the trial's settings and seed applied, writing its run under runs_dir."""
    values = base.to_dict()
    for name, value in trial.settings.items():
        section, field_name = SWEEPABLE[name].section, SWEEPABLE[name].field_name
        values[section][field_name] = value
    return seeded_config(RunConfig.from_dict(values), trial.seed, runs_dir)


def sweep_id_for(base: RunConfig, grid: dict[str, list], seeds: int) -> str:
    """The same command gives the same id, so running it again resumes the sweep."""
    values = base.to_dict()
    values["train"].pop("runs_dir", None)
    text = json.dumps({"base": values, "grid": grid, "seeds": seeds}, sort_keys=True, default=str)
    return "sweep-" + hashlib.sha256(text.encode()).hexdigest()[:10]


def settings_label(settings: dict) -> str:
    """{'dropout_rate': 0.3} -> 'dropout_rate=0.3'; the empty point is 'base'."""
    return ", ".join(f"{name}={value}" for name, value in settings.items()) or "base"
