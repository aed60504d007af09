import json
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from gapdemo.model.backends import (
    BACKENDS,
    build_lockstep_models,
    build_model,
    check_backend,
    dense_after_flatten_params,
    feature_layer_name,
    parameter_table,
)
from gapdemo.model.lockstep import compile_lockstep_model
from gapdemo.model.variable_dropout import VariableRateDropout

# Exact counts at 100x100 (head 29,152 of which 28,896 trainable), as in the tutorial.
EXPECTED_BACKEND_PARAMS_100 = {"fc": 676301, "fc_dropout": 676301, "gap": 65, "gmp": 65, "avgpool_flatten": 1601}
EXPECTED_BACKEND_TRAINABLE_100 = {"fc": 663301, "fc_dropout": 663301, "gap": 65, "gmp": 65, "avgpool_flatten": 1601}


def head_map_size(image_size):
    size = image_size
    for _ in range(3):
        size = (size - 2) // 2
    return size


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_parameter_counts_at_100(backend):
    counts = parameter_table([backend], 100)[backend]
    assert counts["head_params"] == 29152
    assert counts["head_trainable_params"] == 28896
    assert counts["backend_params"] == EXPECTED_BACKEND_PARAMS_100[backend]
    assert counts["backend_trainable_params"] == EXPECTED_BACKEND_TRAINABLE_100[backend]
    assert counts["total_params"] == 29152 + EXPECTED_BACKEND_PARAMS_100[backend]


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_every_backend_has_a_label_description_and_its_own_colour(backend):
    spec = BACKENDS[backend]
    assert spec.label and spec.description and callable(spec.builder)
    assert isinstance(spec.uses_cam, bool)
    assert re.fullmatch(r"#[0-9A-Fa-f]{6}", spec.color)
    others = [other.color.upper() for key, other in BACKENDS.items() if key != backend]
    assert spec.color.upper() not in others


@pytest.mark.parametrize("image_size", [32, 64, 100, 150])
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_output_shape_and_feature_maps(backend, image_size):
    model = build_model(backend, image_size)
    images = np.random.default_rng(0).random((2, image_size, image_size, 3), dtype=np.float32)
    output = model(images, training=False).numpy()
    assert output.shape == (2, 1)
    assert np.all((output >= 0) & (output <= 1))
    side = head_map_size(image_size)
    assert tuple(model.get_layer(feature_layer_name(backend)).output.shape) == (None, side, side, 64)


@pytest.mark.parametrize("image_size", [64, 150])
def test_backend_params_follow_image_size(image_size):
    side = head_map_size(image_size)
    table = parameter_table(["fc", "gap", "avgpool_flatten"], image_size)
    flat = side * side * 64
    assert table["fc"]["backend_params"] == 4 * flat + flat * 100 + 100 + 400 + 100 * 100 + 100 + 101
    assert table["gap"]["backend_params"] == 65
    assert table["avgpool_flatten"]["backend_params"] == (side // 2) ** 2 * 64 + 1


def head_weights(model, backend):
    return [w.numpy() for i in (1, 2, 3) for w in model.get_layer(f"{backend}_conv{i}").weights]


def test_heads_start_identical_for_one_seed_and_differ_for_another():
    models = build_lockstep_models(list(BACKENDS), 32, seed=3)
    reference = head_weights(models.training_model, "fc")
    for backend in BACKENDS:
        for a, b in zip(reference, head_weights(models.training_model, backend), strict=True):
            np.testing.assert_array_equal(a, b)
    other = head_weights(build_model("gap", 32, seed=4), "gap")
    assert not np.allclose(reference[0], other[0])
    same_seed_alone = head_weights(build_model("gap", 32, seed=3), "gap")
    np.testing.assert_array_equal(reference[0], same_seed_alone[0])


def test_lockstep_outputs_and_probes():
    models = build_lockstep_models(["fc", "gap"], 32)
    images = np.zeros((3, 32, 32, 3), np.float32)
    outputs = models.training_model(images)
    assert set(outputs) == {"fc", "gap"} and outputs["gap"].shape == (3, 1)
    probes = models.probe_model(images)
    assert probes["fc"].shape == (3, 2, 2, 64)
    np.testing.assert_allclose(models.backend_models["gap"](images), outputs["gap"], atol=1e-6)


@pytest.mark.parametrize("image_size", [31, 257, 0, 100.0])
def test_image_size_out_of_range(image_size):
    with pytest.raises(ValueError, match="32 to 256"):
        build_model("gap", image_size)


def test_unknown_backend_names_valid_keys():
    with pytest.raises(ValueError, match="fc, fc_dropout, gap"):
        check_backend("svm")
    with pytest.raises(ValueError):
        build_lockstep_models([], 32)


def test_tutorial_dense_example():
    assert dense_after_flatten_params(7, 64, 500) == 1568500


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "gapdemo", *args], capture_output=True, text=True, timeout=120)


def test_cli_params_json():
    result = run_cli("params", "--json")
    assert result.returncode == 0, result.stderr
    table = json.loads(result.stdout)
    assert table["image_size"] == 100
    assert table["backends"]["gap"] == {**table["backends"]["gap"], "head_params": 29152, "backend_params": 65,
                                        "total_params": 29217, "trainable_params": 28961}
    assert table["backends"]["fc"]["backend_params"] == 676301
    assert table["backends"]["avgpool_flatten"]["backend_params"] == 1601


def test_cli_params_text_and_errors():
    text = run_cli("params", "--backends", "fc,gap")
    assert text.returncode == 0 and "10,405x" in text.stdout and "1,568,500" in text.stdout
    for bad in (["params", "--image-size", "20"], ["params", "--backends", "svm"], ["params", "--image-size", "x"]):
        result = run_cli(*bad)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert "error" in result.stderr.splitlines()[-1]


def test_gradients_taken_one_head_at_a_time_update_weights_as_keras_summed_loss_step_does():
    """The memory-saving training step is the same arithmetic as Keras' step over the summed loss."""
    backends = ["fc", "gap", "avgpool_flatten"]
    rng = np.random.default_rng(0)
    images = rng.random((8, 32, 32, 3), dtype=np.float32)
    labels = {b: (np.arange(8) % 2).astype("float32") for b in backends}
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat(3)
    trained, logs = {}, {}
    for one_head_at_a_time in (True, False):
        models = build_lockstep_models(backends, image_size=32, seed=3)
        model = models.training_model
        if not one_head_at_a_time:  # the reference: a plain Keras model of the same layers, Keras' own step
            model = keras.Model(model.inputs[0], {b: models.backend_models[b].outputs[0] for b in backends})
        initial = model.get_weights()
        compile_lockstep_model(model, backends, 1e-3)
        history = model.fit(dataset, epochs=1, verbose=0, shuffle=False)
        trained[one_head_at_a_time] = model.get_weights()
        logs[one_head_at_a_time] = {key: values[-1] for key, values in history.history.items()}
    assert set(logs[True]) == set(logs[False]) >= {"loss", "fc_loss", "gap_accuracy", "avgpool_flatten_loss"}
    for key, value in logs[False].items():
        assert logs[True][key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    for ours, keras_step in zip(trained[True], trained[False], strict=True):
        np.testing.assert_allclose(ours, keras_step, rtol=1e-4, atol=1e-5)
    changed = [not np.allclose(before, after) for before, after in zip(initial, trained[True], strict=True)]
    assert sum(changed) > len(changed) // 2  # three Adam steps moved the kernels, biases and statistics


def test_variable_rate_dropout_draws_seeded_masks_and_takes_a_new_rate_untraced():
    inputs = np.ones((8, 50), "float32")
    ours, again = VariableRateDropout(0.3, seed=7), VariableRateDropout(0.3, seed=7)
    dropped = ours(inputs, training=True).numpy()
    np.testing.assert_array_equal(dropped, again(inputs, training=True))  # the seed decides the mask
    assert set(np.unique(dropped)) == {0.0, np.float32(1 / 0.7)}  # the kept units are scaled up
    np.testing.assert_array_equal(ours(inputs, training=False), inputs)

    step = tf.function(lambda x: ours(x, training=True))
    ones = np.ones((200, 500), "float32")
    dropped_share = {}
    for rate in (0.3, 0.8):
        ours.set_rate(rate)
        dropped_share[rate] = float(np.mean(step(ones).numpy() == 0))
    assert dropped_share[0.3] == pytest.approx(0.3, abs=0.01)
    assert dropped_share[0.8] == pytest.approx(0.8, abs=0.01)
    assert step.experimental_get_tracing_count() == 1
    assert ours.weights == [] and ours.get_config()["rate"] == 0.8  # no parameter; the config follows
    with pytest.raises(ValueError, match="dropout rate"):
        ours.set_rate(1.0)
