"""validate_run_config: every rule, as the one sentence the sidebar and the CLI show, and its boundaries; the data
sources refuse with the same sentences."""

import pytest

from gapdemo.config import MAX_SYNTHETIC_TRAIN_SIZE, tiny_config
from gapdemo.data.roots import ROOTS_VARIABLE
from gapdemo.data.sources import DataError, load_splits
from gapdemo.model.backends import BACKENDS
from gapdemo.validation import validate_run_config


@pytest.fixture(autouse=True)
def no_data_roots(monkeypatch):
    """As on a plain command line: any folder may be read (tests/test_data_roots.py covers the roots)."""
    monkeypatch.delenv(ROOTS_VARIABLE, raising=False)


def config_with(**changes):
    """tiny_config (valid) with changes keyed 'part.field', e.g. {'train.epochs': 0}."""
    config = tiny_config("runs")
    for key, value in changes.items():
        part, name = key.split(".")
        setattr(getattr(config, part), name, value)
    return config


RULES = {
    "image too small": ({"data.image_size": 16}, "Image size must be an integer from 32 to 256, got 16."),
    "image too large": ({"data.image_size": 257}, "Image size must be an integer from 32 to 256, got 257."),
    "unknown data set": ({"data.dataset": "mnist"},
                         "Unknown data set 'mnist'; choose one of synthetic, cats_vs_dogs, folder."),
    "folder without a path": ({"data.dataset": "folder", "data.data_dir": None},
                              "The folder data set needs a folder path."),
    "missing folder": ({"data.dataset": "folder", "data.data_dir": "/no/such/folder"},
                       "The folder /no/such/folder does not exist."),
    "no back-end": ({"model.backends": ()}, "Choose at least one back-end."),
    "unknown back-end": ({"model.backends": ("fc", "svm")}, f"Unknown back-end(s) svm; valid: {', '.join(BACKENDS)}."),
    "duplicate back-ends": ({"model.backends": ("gap", "fc", "gap")}, "Each back-end may be chosen once."),
    "dropout 1": ({"model.dropout_rate": 1.0}, "Dropout rate must be at least 0 and below 1."),
    "negative dropout": ({"model.dropout_rate": -0.1}, "Dropout rate must be at least 0 and below 1."),
    "momentum 0": ({"model.bn_momentum": 0.0}, "Batch-norm momentum must be above 0 and below 1."),
    "momentum 1": ({"model.bn_momentum": 1.0}, "Batch-norm momentum must be above 0 and below 1."),
    "no epochs": ({"train.epochs": 0}, "Train for at least 1 epoch."),
    "batch size 0": ({"train.batch_size": 0}, "Batch size must be at least 1."),
    "no batches per call": ({"train.steps_per_execution": 0}, "Batches per TensorFlow call must be from 1 to 64."),
    "too many batches per call": ({"train.steps_per_execution": 65},
                                  "Batches per TensorFlow call must be from 1 to 64."),
    "learning rate 0": ({"train.learning_rate": 0.0}, "Learning rate must be above 0 and at most 1."),
    "learning rate above 1": ({"train.learning_rate": 1.5}, "Learning rate must be above 0 and at most 1."),
    "one training image": ({"data.train_size": 1, "train.batch_size": 1}, "Use at least 2 training images."),
    "training images not a whole number": ({"data.train_size": 2.5}, "The number of training images must be a "
                                                                      "whole number, got 2.5."),
    "synthetic set too small": ({"data.synthetic_size": 9}, "The synthetic data set needs at least 10 images, got 9."),
    "synthetic training images beyond the cap": (
        {"data.train_size": MAX_SYNTHETIC_TRAIN_SIZE + 1},
        f"The synthetic data set draws at most {MAX_SYNTHETIC_TRAIN_SIZE:,} training images (all held in memory), "
        f"got {MAX_SYNTHETIC_TRAIN_SIZE + 1:,}."),
    "batch larger than the training set": ({"data.train_size": 10, "train.batch_size": 16},
                                           "Batch size 16 is larger than the 10 training images; lower it or use "
                                           "more images."),
}


@pytest.mark.parametrize("rule", RULES)
def test_each_rule_gives_its_one_sentence(rule):
    changes, sentence = RULES[rule]
    assert validate_run_config(config_with(**changes), served=False) == [sentence]


DATA_RULES = ["image too small", "image too large", "unknown data set", "one training image",
              "training images not a whole number", "synthetic set too small", "synthetic training images beyond the cap"]


@pytest.mark.parametrize("rule", DATA_RULES)
def test_the_data_sources_refuse_with_the_gates_sentence(rule):
    changes, sentence = RULES[rule]
    with pytest.raises(DataError) as refused:
        load_splits(config_with(**changes).data)  # called directly, without the gate
    assert str(refused.value) == sentence


@pytest.mark.parametrize("rule", ["folder without a path", "missing folder"])
def test_the_folder_source_refuses_a_path_with_the_gates_sentence_and_the_layout_it_needs(rule):
    changes, sentence = RULES[rule]
    with pytest.raises(DataError, match="one sub-folder per class") as refused:
        load_splits(config_with(**changes).data)
    assert str(refused.value).startswith(sentence + " ")


@pytest.mark.parametrize("changes", [
    {}, {"data.image_size": 32}, {"data.image_size": 256}, {"model.dropout_rate": 0.0},
    {"model.backends": tuple(BACKENDS)}, {"train.steps_per_execution": 64}, {"train.learning_rate": 1.0},
    {"data.train_size": 16, "train.batch_size": 16}, {"data.train_size": None, "train.batch_size": 256},
    {"data.train_size": 2, "train.batch_size": 1},
], ids=str)
def test_values_at_the_bounds_are_accepted(changes):
    assert validate_run_config(config_with(**changes), served=False) == []


def test_every_problem_is_listed_at_once(tmp_path):
    config = config_with(**{"data.dataset": "folder", "data.data_dir": str(tmp_path / "missing"),
                            "model.backends": ("fc", "fc"), "train.epochs": 0, "train.learning_rate": 2.0})
    assert validate_run_config(config, served=False) == [
        f"The folder {tmp_path / 'missing'} does not exist.", "Each back-end may be chosen once.",
        "Train for at least 1 epoch.", "Learning rate must be above 0 and at most 1."]


def test_an_existing_folder_is_accepted(tmp_path):
    assert validate_run_config(config_with(**{"data.dataset": "folder", "data.data_dir": str(tmp_path)}), served=False) == []
