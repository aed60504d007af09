"""One source of defaults and bounds: the checks and the commands read gapdemo.config's values, and every
refusal names the allowed range in words that match its comparison ("from A to B", "at least A", "at most B"
for bounds that are allowed; "above A", "below B" for bounds that are not)."""

import math
from dataclasses import dataclass

import pytest

from gapdemo.cli import main
from gapdemo.config import (
    DEFAULT_SEEDS,
    MAX_IMAGE_SIZE,
    MAX_SEEDS,
    MAX_STEPS_PER_EXECUTION,
    MAX_SYNTHETIC_TRAIN_SIZE,
    MIN_IMAGE_SIZE,
    MIN_SYNTHETIC_SIZE,
    MIN_TRAIN_SIZE,
    tiny_config,
)
from gapdemo.data.roots import ROOTS_VARIABLE
from gapdemo.sweep.grid import expand_trials
from gapdemo.validation import validate_run_config


def test_a_synthetic_request_beyond_its_bound_is_refused_before_start():
    config = tiny_config()
    config.data.train_size = MAX_SYNTHETIC_TRAIN_SIZE
    config.train.batch_size = 64
    assert validate_run_config(config, served=False) == []
    config.data.train_size = MAX_SYNTHETIC_TRAIN_SIZE + 1
    (problem,) = validate_run_config(config, served=False)
    assert f"at most {MAX_SYNTHETIC_TRAIN_SIZE:,} training images" in problem


def test_sweep_seeds_follow_the_configs_bounds():
    assert len(expand_trials({}, MAX_SEEDS)) == MAX_SEEDS
    with pytest.raises(ValueError, match=f"1 to {MAX_SEEDS} seeds"):
        expand_trials({}, MAX_SEEDS + 1)


@pytest.mark.parametrize("command", ["claims", "sweep"])
def test_seed_defaults_come_from_the_config(command):
    from gapdemo.cli import build_parser

    args = build_parser().parse_args([command] + (["--to", "x"] if command == "export" else []))
    assert args.seeds == DEFAULT_SEEDS


@dataclass(frozen=True)
class Edge:
    """One end of a setting's allowed range, as the gate (gapdemo.validation) compares it."""

    setting: str  # "part.field" of RunConfig
    bound: int | float
    side: str  # "lower" or "upper"
    allowed: bool  # the bound itself may run (an inclusive comparison)

    def __str__(self) -> str:
        return f"{self.setting}-{self.side}-{self.bound:g}"

    def beyond(self, value, outward: bool):
        """The next value past value, away from the range when outward, into it otherwise."""
        away = (self.side == "upper") == outward  # upwards
        if isinstance(self.bound, int):
            return value + (1 if away else -1)
        return math.nextafter(value, math.inf if away else -math.inf)

    def just_outside(self):
        return self.beyond(self.bound, outward=True) if self.allowed else self.bound

    def just_inside(self):
        return self.bound if self.allowed else self.beyond(self.bound, outward=False)

    def words(self, allowed: bool) -> tuple[str, ...]:
        """What a refusal may say about this end if it were (not) allowed: one of these must appear."""
        bound = f"{self.bound:,g}"
        lower = self.side == "lower"
        if allowed:  # inclusive: "at least A", "at most B", "from A to B"
            return (f"at least {bound}", f"from {bound} to") if lower else (f"at most {bound}", f" to {bound}")
        return (f"above {bound}",) if lower else (f"below {bound}",)


EDGES = [
    Edge("data.image_size", MIN_IMAGE_SIZE, "lower", allowed=True),
    Edge("data.image_size", MAX_IMAGE_SIZE, "upper", allowed=True),
    Edge("data.train_size", MIN_TRAIN_SIZE, "lower", allowed=True),
    Edge("data.train_size", MAX_SYNTHETIC_TRAIN_SIZE, "upper", allowed=True),  # of the synthetic source
    Edge("data.synthetic_size", MIN_SYNTHETIC_SIZE, "lower", allowed=True),
    Edge("model.dropout_rate", 0.0, "lower", allowed=True),
    Edge("model.dropout_rate", 1.0, "upper", allowed=False),
    Edge("model.bn_momentum", 0.0, "lower", allowed=False),
    Edge("model.bn_momentum", 1.0, "upper", allowed=False),
    Edge("train.epochs", 1, "lower", allowed=True),
    Edge("train.batch_size", 1, "lower", allowed=True),
    Edge("train.steps_per_execution", 1, "lower", allowed=True),
    Edge("train.steps_per_execution", MAX_STEPS_PER_EXECUTION, "upper", allowed=True),
    Edge("train.learning_rate", 0.0, "lower", allowed=False),
    Edge("train.learning_rate", 1.0, "upper", allowed=True),
]


def config_with(setting: str, value):
    """tiny_config (synthetic, valid) with one setting changed, in batches of 1 so any number of training images
    may run."""
    config = tiny_config("runs")
    config.train.batch_size = 1
    part, name = setting.split(".")
    setattr(getattr(config, part), name, value)
    return config


@pytest.mark.parametrize("edge", EDGES, ids=str)
def test_just_past_each_bound_is_refused_in_words_that_match_and_the_bound_runs_when_allowed(edge, monkeypatch):
    monkeypatch.delenv(ROOTS_VARIABLE, raising=False)
    (refusal,) = validate_run_config(config_with(edge.setting, edge.just_outside()), served=False)
    assert any(words in refusal for words in edge.words(edge.allowed)), refusal
    assert not any(words in refusal for words in edge.words(not edge.allowed)), refusal
    assert "between" not in refusal, refusal  # says neither whether the ends are allowed
    assert validate_run_config(config_with(edge.setting, edge.just_inside()), served=False) == []


@pytest.mark.parametrize(("arguments", "refusal"), [
    (["train", "--bn-momentum", "0"], "Batch-norm momentum must be above 0 and below 1."),  # issue #37's example
    (["train", "--dropout", "1"], "Dropout rate must be at least 0 and below 1."),
    (["train", "--steps-per-execution", str(MAX_STEPS_PER_EXECUTION + 1)],
     f"Batches per TensorFlow call must be from 1 to {MAX_STEPS_PER_EXECUTION}."),
    (["data", "--train-size", str(MIN_TRAIN_SIZE - 1)], f"Use at least {MIN_TRAIN_SIZE} training images."),
    (["sweep", "--seeds", str(MAX_SEEDS + 1)], f"a sweep takes from 1 to {MAX_SEEDS} seeds per grid point"),
], ids=lambda value: " ".join(value) if isinstance(value, list) else None)
def test_the_commands_refuse_with_the_same_words(arguments, refusal, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(ROOTS_VARIABLE, raising=False)
    assert main([*arguments, "--runs-dir", str(tmp_path)] if arguments[0] != "data" else arguments) == 2
    assert refusal in capsys.readouterr().err
