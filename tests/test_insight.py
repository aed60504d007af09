"""CAM, Grad-CAM, shifts and localisation scores, checked against slow references and a toy task."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gapdemo.insight import maps as insight
from gapdemo.model.backends import (
    BACKENDS,
    build_lockstep_models,
    build_model,
    classifier_layer_name,
    feature_layer_name,
)

IMAGE_SIZE = 32  # a 2x2 feature map


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((3, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def gap_model():
    keras.utils.set_random_seed(0)
    return build_model("gap", IMAGE_SIZE)


def slow_class_activation_maps(feature_maps, kernel):
    """Zhou et al.'s definition written as explicit loops over images, positions and channels."""
    batch, height, width, channels = feature_maps.shape
    maps = np.zeros((batch, height, width))
    for image in range(batch):
        for row in range(height):
            for column in range(width):
                for channel in range(channels):
                    maps[image, row, column] += kernel[channel, 0] * feature_maps[image, row, column, channel]
    return maps


def feature_maps_and_probability(model, backend, images):
    """The test's own read of a one-back-end model by its layer names: (B, s, s, 64) maps and (B, 1) P(dog)."""
    probe = keras.Model(model.input, [model.get_layer(feature_layer_name(backend)).output,
                                      model.get_layer(backend).output])
    return probe(images, training=False)


def reference_grad_cam(model, backend, images):
    """Selvaraju et al.'s Grad-CAM written out with loops: alpha_k = mean over cells of d score / d F_k,
    score = the logit toward the predicted class, map = ReLU(sum_k alpha_k F_k)."""
    classifier = model.get_layer(classifier_layer_name(backend))
    probe = keras.Model(model.input, [model.get_layer(feature_layer_name(backend)).output, classifier.input])

    with tf.GradientTape() as tape:
        feature_maps, penultimate = probe(images, training=False)
        logits = tf.matmul(penultimate, classifier.kernel)[:, 0] + classifier.bias[0]
        total = tf.reduce_sum(logits)  # recorded on the tape: each image's own gradient, as they are independent
    gradients = tape.gradient(total, feature_maps).numpy()
    feature_maps, logits = feature_maps.numpy(), logits.numpy()
    batch, height, width, channels = feature_maps.shape
    maps = np.zeros((batch, height, width))
    for image in range(batch):
        sign = 1.0 if logits[image] >= 0 else -1.0
        for channel in range(channels):
            alpha = sign * gradients[image, :, :, channel].mean()
            maps[image] += alpha * feature_maps[image, :, :, channel]
    return np.maximum(maps, 0.0)


def logit(probability):
    probability = np.asarray(probability, dtype=np.float64)
    return np.log(probability / (1.0 - probability))


def test_cam_matches_slow_reference_on_a_real_gap_model(gap_model, images):
    feature_maps, _ = feature_maps_and_probability(gap_model, "gap", images)
    kernel = gap_model.get_layer(classifier_layer_name("gap")).kernel.numpy()  # (64, 1)
    expected = slow_class_activation_maps(feature_maps.numpy(), kernel)
    maps = insight.class_activation_maps(feature_maps, kernel)
    assert maps.shape == (3, 2, 2)
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6)


def test_cam_mean_plus_bias_is_the_gap_models_logit(gap_model, images):
    feature_maps, probability = feature_maps_and_probability(gap_model, "gap", images)
    classifier = gap_model.get_layer(classifier_layer_name("gap"))
    classifier.bias.assign([0.3])  # a non-zero bias, so leaving it out would show
    feature_maps, probability = feature_maps_and_probability(gap_model, "gap", images)
    kernel, bias = classifier.kernel.numpy(), classifier.bias.numpy()
    expected_logits = logit(probability.numpy()[:, 0])
    maps = insight.class_activation_maps(feature_maps, kernel)
    np.testing.assert_allclose(maps.mean(axis=(1, 2)) + bias[0], expected_logits, atol=1e-4)
    with_bias = insight.class_activation_maps(feature_maps, kernel, bias)
    np.testing.assert_allclose(with_bias.mean(axis=(1, 2)), expected_logits, atol=1e-4)
    averages = insight.feature_averages(feature_maps)  # (3, 64): what GAP hands the classifier
    np.testing.assert_allclose(averages @ kernel[:, 0] + bias[0], expected_logits, atol=1e-4)
    classifier.bias.assign([0.0])


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_explain_gives_the_models_probability_and_one_map_per_image(backend, images):
    model = build_model(backend, IMAGE_SIZE)
    explanation = insight.explain(model, backend, images)
    np.testing.assert_allclose(explanation["probability_dog"], model(images, training=False).numpy()[:, 0], atol=1e-5)
    assert explanation["maps"].shape == (3, 2, 2)
    assert explanation["method"] == ("CAM" if BACKENDS[backend].uses_cam else "Grad-CAM")
    if not BACKENDS[backend].uses_cam:
        assert explanation["maps"].min() >= 0.0


@pytest.mark.parametrize("backend", ["fc", "fc_dropout"])
def test_grad_cam_matches_a_reference_written_with_loops(backend, images):
    keras.utils.set_random_seed(1)
    model = build_model(backend, IMAGE_SIZE)
    explanation = insight.explain(model, backend, images)
    assert explanation["method"] == "Grad-CAM"
    np.testing.assert_allclose(explanation["maps"], reference_grad_cam(model, backend, images), rtol=1e-4, atol=1e-6)


def test_backend_layers_are_found_inside_a_lockstep_model(images):
    lockstep = build_lockstep_models(("fc", "gap"), IMAGE_SIZE)
    explanation = insight.explain(lockstep.training_model, "gap", images)
    expected = lockstep.backend_models["gap"](images, training=False).numpy()[:, 0]
    np.testing.assert_allclose(explanation["probability_dog"], expected, atol=1e-5)
    explanation = insight.explain(lockstep.training_model, "fc", images)
    expected = lockstep.backend_models["fc"](images, training=False).numpy()[:, 0]
    np.testing.assert_allclose(explanation["probability_dog"], expected, atol=1e-5)
    assert explanation["maps"].shape == (3, 2, 2) and explanation["method"] == "Grad-CAM"


def test_models_saved_and_loaded_as_keras_files_are_explained_alike(tmp_path, images):
    for backend in ("fc", "gap"):
        model = build_model(backend, IMAGE_SIZE)
        model.save(tmp_path / f"{backend}.keras")
        loaded = keras.models.load_model(tmp_path / f"{backend}.keras", compile=False)
        original, reloaded = insight.explain(model, backend, images), insight.explain(loaded, backend, images)
        np.testing.assert_allclose(reloaded["probability_dog"], original["probability_dog"], atol=1e-6)
        np.testing.assert_allclose(reloaded["maps"], original["maps"], atol=1e-6)


def test_unknown_backend_or_missing_layers_are_value_errors(gap_model, images):
    with pytest.raises(ValueError, match="valid back-ends"):
        insight.explain(gap_model, "vgg", images)
    with pytest.raises(ValueError, match="has no layer 'fc_"):
        insight.explain(gap_model, "fc", images)


# --- Grad-CAM follows the object: a tiny FC model trained on squares (cat) vs crosses (dog) ---

TOY_SIZE = 48  # a 4x4 feature map; at 32 px the 2x2 map is too coarse to say where anything is


def draw_shape(is_cross: int, left: int, top: int) -> np.ndarray:
    image = np.zeros((TOY_SIZE, TOY_SIZE, 3), np.float32)
    if is_cross:
        image[top + 3:top + 5, left:left + 8] = 1.0
        image[top:top + 8, left + 3:left + 5] = 1.0
    else:
        image[top:top + 8, left:left + 8] = 1.0
    return image


@pytest.fixture(scope="module")
def toy_fc_model():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model = build_model("fc", TOY_SIZE)
    model.compile(keras.optimizers.Adam(3e-3), "binary_crossentropy")
    for _ in range(120):  # ~5 s on 2 cores; enough for the BN moving statistics to settle
        labels = rng.integers(0, 2, 32)
        corners = rng.integers(0, TOY_SIZE - 8, (32, 2))
        batch = np.stack([draw_shape(label, left, top) for label, (left, top) in zip(labels, corners, strict=True)])
        model.train_on_batch(batch, labels.astype(np.float32)[:, None])
    return model


@pytest.mark.slow
@pytest.mark.parametrize("is_cross", [0, 1])
@pytest.mark.parametrize("top", [8, 30])
def test_grad_cam_peak_follows_the_object(toy_fc_model, is_cross, top):
    pair = np.stack([draw_shape(is_cross, 2, top), draw_shape(is_cross, TOY_SIZE - 10, top)])  # left, right
    explanation = insight.explain(toy_fc_model, "fc", pair)
    assert np.all((explanation["probability_dog"] >= 0.5) == bool(is_cross))  # it learned the task
    maps = explanation["maps"]  # Grad-CAM: FC has no CAM
    assert maps.shape == (2, 4, 4) and maps.min() >= 0.0 and maps.max() > 0.0
    peak_columns = [np.unravel_index(np.argmax(single), single.shape)[1] for single in maps]
    assert peak_columns[0] <= 1 and peak_columns[1] >= 2  # the peak moved from the left half to the right


# --- shifts ---


def test_shift_moves_a_bright_pixel_by_exactly_dx_dy():
    images = np.zeros((1, 9, 11, 3), np.float32)
    images[0, 4, 5] = 1.0
    for dx, dy in [(3, 0), (-2, 0), (0, 2), (-4, -3), (0, 0)]:
        shifted = insight.shift_images(images, dx, dy)
        assert shifted.shape == images.shape
        assert list(zip(*np.nonzero(shifted[0, ..., 0]), strict=True)) == [(4 + dy, 5 + dx)]


def test_shift_reflects_at_the_border():
    row = np.arange(6, dtype=np.float32).reshape(1, 1, 6, 1)  # [0 1 2 3 4 5]
    assert insight.shift_images(row, 2)[0, 0, :, 0].tolist() == [2, 1, 0, 1, 2, 3]
    assert insight.shift_images(row, -2)[0, 0, :, 0].tolist() == [2, 3, 4, 5, 4, 3]


@pytest.mark.parametrize("dx, dy", [(1.5, 0), (6, 0), (0, -1)])
def test_shift_refuses_fractional_or_too_large_shifts(dx, dy):
    with pytest.raises(ValueError):
        insight.shift_images(np.zeros((1, 1, 6, 1)), dx, dy)


# --- localisation scores ---

BOXES = np.array([[0, 0, 16, 16], [16, 16, 32, 32]], dtype=float)  # top-left and bottom-right quarters


def corner_maps(hot_cells) -> np.ndarray:
    maps = np.zeros((len(hot_cells), 4, 4))
    for index, (row, column) in enumerate(hot_cells):
        maps[index, row, column] = 1.0
    return maps


def test_pointing_game_hits_and_misses():
    perfect = corner_maps([(0, 0), (3, 3)])
    adversarial = corner_maps([(3, 3), (0, 0)])
    assert insight.pointing_game(perfect, BOXES, 32).tolist() == [1.0, 1.0]
    assert insight.pointing_game(adversarial, BOXES, 32).tolist() == [0.0, 0.0]
    assert insight.pointing_game(np.ones((2, 4, 4)), BOXES, 32).tolist() == [0.0, 0.0]  # flat: points nowhere
    fine = insight.upsample_map(perfect, 32)  # any resolution works
    assert insight.pointing_game(fine, BOXES, 32).tolist() == [1.0, 1.0]


def test_energy_in_box_and_its_uniform_baseline():
    inside = np.zeros((2, 8, 8))
    inside[0, 1:3, 1:3] = 1.0  # well inside the top-left quarter even after bilinear upsampling
    inside[1, 5:7, 5:7] = 1.0
    np.testing.assert_allclose(insight.energy_in_box(inside, BOXES, 32), [1.0, 1.0])
    np.testing.assert_allclose(insight.uniform_baseline(BOXES, 32), [0.25, 0.25])
    np.testing.assert_allclose(insight.uniform_baseline([[0, 0, 8, 32]], 32), [0.25])
    np.testing.assert_allclose(insight.energy_in_box(np.ones((2, 3, 3)), BOXES, 32), [0.25, 0.25])
    np.testing.assert_allclose(insight.energy_in_box(-np.ones((2, 3, 3)), BOXES, 32), [0.0, 0.0])


def test_upsample_map_matches_tf_bilinear_resize():
    small = np.random.default_rng(1).random((3, 5))
    expected = tf.image.resize(small[None, :, :, None], (12, 20), method="bilinear").numpy()[0, :, :, 0]
    np.testing.assert_allclose(insight.upsample_map(small, (12, 20)), expected, atol=1e-6)
    assert insight.upsample_map(small, 7).shape == (7, 7)


def test_overlay_heatmap_blends_a_colour_map_over_the_image():
    image = np.full((20, 30, 3), 100, np.uint8)
    heat = np.array([[0.0, 1.0], [0.0, 0.0]])
    overlay = insight.overlay_heatmap(image, heat)
    assert overlay.shape == (20, 30, 3) and overlay.dtype == np.uint8
    assert overlay[2, 27, 0] > overlay[2, 27, 2]  # hot corner is red
    assert overlay[18, 2, 2] > overlay[18, 2, 0]  # cold corner is blue
    assert np.array_equal(insight.overlay_heatmap(image, heat, alpha=0.0), image)
    with pytest.raises(ValueError):
        insight.overlay_heatmap(image, heat, alpha=1.5)


def test_classify_image_gives_each_models_own_answer_on_the_prepared_photo():
    from gapdemo.data.decode import resize_bilinear

    models = {backend: build_model(backend, IMAGE_SIZE) for backend in ("fc", "fc_dropout", "gap")}
    models["fc"].get_layer(classifier_layer_name("fc")).bias.assign([-4.0])  # sure it is a cat
    models["gap"].get_layer(classifier_layer_name("gap")).bias.assign([4.0])  # sure it is a dog
    photo = np.random.default_rng(2).integers(0, 256, (300, 450, 3), dtype=np.uint8)
    results = insight.classify_image(models, photo, IMAGE_SIZE)
    assert list(results) == list(models)
    seen = resize_bilinear(photo, IMAGE_SIZE)[np.newaxis].astype(np.float32) / 255.0  # as training fed it
    for backend, result in results.items():
        p_dog = float(models[backend](seen, training=False).numpy()[0, 0])  # the whole model, not a branch of it
        assert result["p_dog"] == pytest.approx(p_dog, abs=1e-6), backend
        assert result["p_cat"] == pytest.approx(1.0 - p_dog, abs=1e-6), backend
        assert result["method"] == ("CAM" if backend == "gap" else "Grad-CAM")
        assert result["map"].shape == (2, 2)
        assert result["overlay"].shape == (149, 224, 3) and result["overlay"].dtype == np.uint8
    assert (results["fc"]["label"], results["gap"]["label"]) == ("cat", "dog")
    assert results["fc"]["p_cat"] > 0.9 and results["gap"]["p_dog"] > 0.9
