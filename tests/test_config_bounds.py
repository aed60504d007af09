"""One source of defaults and bounds: the checks and the commands read gapdemo.config's values."""

import pytest

from gapdemo.config import DEFAULT_SEEDS, MAX_SEEDS, MAX_SYNTHETIC_TRAIN_SIZE, tiny_config
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
