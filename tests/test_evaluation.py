"""Evaluation of a finished run: confusion maths on hand-made predictions, the mistakes filter, shift
consistency of hand-built predictors and Keras models, a tiny trained run end to end, the command's JSON."""

import json
import shutil

import keras
import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from gapdemo import runs
from gapdemo.cli import main as cli_main
from gapdemo.config import DataConfig, tiny_config
from gapdemo.data.sources import load_data
from gapdemo.insight import evaluation, predictions
from gapdemo.training.job import TrainingJob

LABELS = np.array([0, 0, 0, 1, 1, 1, 1])
# P(dog) of two back-ends on LABELS' images: fc wrong at 1, 2, 5; gap wrong at 2, 6
PROBABILITIES = {"fc": np.array([0.1, 0.9, 0.6, 0.8, 0.7, 0.3, 0.5]),
                 "gap": np.array([0.2, 0.4, 0.95, 0.6, 0.9, 0.8, 0.45])}


def test_confusion_counts_rows_true_columns_predicted():
    confusion = predictions.confusion_matrix(LABELS, predictions.predicted_classes(PROBABILITIES["fc"]))
    assert confusion.tolist() == [[1, 2], [1, 3]]  # P = 0.5 counts as dog, as gapdemo.insight.maps labels it
    assert predictions.per_class_accuracy(confusion) == pytest.approx([1 / 3, 3 / 4])
    assert predictions.precision(confusion) == pytest.approx([1 / 2, 3 / 5])


def test_a_class_without_images_gives_nan_and_json_null():
    confusion = predictions.confusion_matrix([0, 0], [0, 0])
    assert confusion.tolist() == [[2, 0], [0, 0]]
    assert np.isnan(predictions.per_class_accuracy(confusion)[1]) and np.isnan(predictions.precision(confusion)[1])
    labels, probabilities = np.array([0, 0]), {"gap": np.array([0.1, 0.2])}
    result = evaluation.RunEvaluation(
        "run", "finished", 1, ["cat", "dog"], np.zeros((2, 32, 32, 3), np.uint8), labels, probabilities,
        reports={"gap": predictions.backend_report(labels, probabilities["gap"], ["cat", "dog"])})
    as_json = result.to_dict()["backends"]["gap"]
    assert as_json["per_class_accuracy"] == {"cat": 1.0, "dog": None} and as_json["misclassified"] == []
    assert "recall" not in as_json  # per-class accuracy is recall; one name for one number
    json.dumps(as_json, allow_nan=False)


@pytest.mark.parametrize("labels, predicted, words", [
    ([0, 1], [0], "one prediction per label"), ([0, 2], [0, 1], "class indices 0..1"),
])
def test_bad_inputs_raise_value_error(labels, predicted, words):
    with pytest.raises(ValueError, match=words):
        predictions.confusion_matrix(labels, predicted)


def test_mistakes_ranked_by_confidence():
    assert predictions.misclassified_indices(LABELS, PROBABILITIES["fc"]).tolist() == [1, 5, 2]  # 0.9, 0.7, 0.6
    assert predictions.prediction_confidence([0.2, 0.7]) == pytest.approx([0.8, 0.7])


def test_filter_returns_exactly_the_asked_for_disagreement():
    predicted = {"fc": np.array([0, 1, 1, 1, 1, 0, 0]), "gap": np.array([0, 0, 1, 1, 1, 1, 0])}
    assert predictions.filter_mistakes(LABELS, predicted, "fc").tolist() == [1, 2, 5, 6]
    assert predictions.filter_mistakes(LABELS, predicted, "fc", right_backend="gap").tolist() == [1, 5]
    assert predictions.filter_mistakes(LABELS, predicted, "gap", right_backend="fc").tolist() == []
    assert predictions.filter_mistakes(LABELS, predicted, "fc", true_class=1).tolist() == [5, 6]
    assert predictions.filter_mistakes(LABELS, predicted, "fc", true_class=0, right_backend="gap").tolist() == [1]
    with pytest.raises(ValueError, match="no predictions for back-end 'gmp'"):
        predictions.filter_mistakes(LABELS, predicted, "fc", right_backend="gmp")


def random_images(count=40, size=32, seed=0):
    return (np.random.default_rng(seed).random((count, size, size, 3)) * 255).astype(np.uint8)


def test_shift_consistency_of_a_blind_and_a_one_pixel_predictor():
    images = random_images()
    predictors = {"blind": lambda batch: np.full(len(batch), 0.7),
                  "pixel": lambda batch: batch[:, 16, 16, 0] / 255.0}  # looks at one pixel only
    consistency = evaluation.shift_consistency(predictors, images, shifts=(1, 2, 8))
    assert consistency["blind"].tolist() == [1.0, 1.0, 1.0]
    assert consistency["pixel"].shape == (3,) and np.all(consistency["pixel"] < 0.9)


def one_pixel_model(size=32):
    """P(dog) = sigmoid(40 (red value at (16, 16) - 0.5)): keyed to one pixel position."""
    inputs = keras.Input((size, size, 3))
    pixel = keras.layers.Cropping2D(((16, size - 17), (16, size - 17)))(inputs)  # (batch, 1, 1, 3)
    dense = keras.layers.Dense(1, activation="sigmoid")
    outputs = dense(keras.layers.Flatten()(pixel))
    dense.set_weights([np.array([[40.0], [0.0], [0.0]]), np.array([-20.0])])
    return keras.Model(inputs, outputs)


def blind_model(size=32):
    """P(dog) = sigmoid(1) whatever the image: a zero kernel ignores the input."""
    inputs = keras.Input((size, size, 3))
    dense = keras.layers.Dense(1, activation="sigmoid")
    outputs = dense(keras.layers.GlobalAveragePooling2D()(inputs))
    dense.set_weights([np.zeros((3, 1)), np.array([1.0])])
    return keras.Model(inputs, outputs)


def test_shift_consistency_of_keras_models():
    predictors = {"blind": evaluation.model_predictor(blind_model(), batch_size=16),
                  "pixel": evaluation.model_predictor(one_pixel_model(), batch_size=16, compiled=True)}
    consistency = evaluation.shift_consistency(predictors, random_images(), evaluation.CONSISTENCY_SHIFTS)
    assert consistency["blind"] == pytest.approx(np.ones(16))
    assert consistency["pixel"].max() < 1.0


def test_shift_consistency_refuses_shifts_outside_the_image():
    with pytest.raises(ValueError, match="whole pixels from 1 to 31"):
        evaluation.shift_consistency({"blind": lambda batch: np.zeros(len(batch))}, random_images(4), shifts=(0, 32))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny finished run on synthetic pets: 32x32, 120 images (12 in the test split), fc and gap."""
    config = tiny_config(str(tmp_path_factory.mktemp("evaluation_runs")), ("fc", "gap"))
    config.data.synthetic_size = 120
    job = TrainingJob(config)
    assert job.run() == "finished", job.snapshot().message
    return job.run_dir


def test_confusion_matrices_match_the_models_called_directly(finished_run):
    result = evaluation.evaluate_run(finished_run, served=False)
    config = runs.read_json(finished_run / "config.json")
    data = load_data(DataConfig(**config["data"]), 16)
    assert np.array_equal(result.images, data.test_images) and result.class_names == ["cat", "dog"]
    for backend in ("fc", "gap"):
        model = keras.models.load_model(finished_run / "models" / f"{backend}.keras", compile=False)
        probabilities = model.predict(data.test_images.astype("float32") / 255.0, verbose=0).reshape(-1)
        expected = np.zeros((2, 2), dtype=int)
        for label, probability in zip(data.test_labels, probabilities, strict=True):
            expected[int(label), int(probability >= 0.5)] += 1
        report = result.reports[backend]
        assert report["confusion"].tolist() == expected.tolist()
        assert report["confusion"].sum() == len(data.test_labels) == 12
        assert result.probabilities[backend] == pytest.approx(probabilities, abs=1e-5)


def test_runs_still_training_or_without_models_are_refused(finished_run, tmp_path):
    running = tmp_path / "running"
    (running / "models").mkdir(parents=True)
    runs.write_status(running, "running")  # this process writes it, so it counts as alive
    with pytest.raises(ValueError, match="still training"):
        evaluation.check_evaluable(running)
    runs.write_status(running, "stopped")
    with pytest.raises(ValueError, match="has no saved models"):
        evaluation.check_evaluable(running)
    (running / "status.json").unlink()
    with pytest.raises(ValueError, match="has no readable status.json"):
        evaluation.check_evaluable(running)


def test_data_settings_of_another_version_are_refused_in_a_sentence(finished_run, tmp_path):
    copied = tmp_path / finished_run.name
    shutil.copytree(finished_run, copied)
    config = runs.read_json(copied / "config.json")
    config["data"]["pixels_per_inch"] = 72
    runs.write_json_atomic(copied / "config.json", config)
    with pytest.raises(ValueError, match="^The run.s config.json holds no settings this version of gapdemo reads.$"):
        evaluation.evaluate_run(copied, served=False)


def test_command_json_shape(finished_run, capsys):
    assert cli_main(["evaluate", finished_run.name, "--runs-dir", str(finished_run.parent), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["run_id"] == finished_run.name and result["class_names"] == ["cat", "dog"]
    assert result["test_size"] == 12 and set(result["backends"]) == {"fc", "gap"}
    for values in result["backends"].values():
        assert np.array(values["confusion"]).shape == (2, 2) and np.sum(values["confusion"]) == 12
        assert set(values["per_class_accuracy"]) == set(values["precision"]) == {"cat", "dog"}
        wrong = 12 - np.trace(values["confusion"])
        assert len(values["misclassified"]) == wrong
        for mistake in values["misclassified"]:
            assert mistake["true"] != mistake["predicted"] and 0.5 <= mistake["probability"] <= 1.0
        confidences = [mistake["probability"] for mistake in values["misclassified"]]
        assert confidences == sorted(confidences, reverse=True)


def test_command_text_and_consistency(finished_run, capsys):
    assert cli_main(["evaluate", str(finished_run), "--consistency"]) == 0
    text = capsys.readouterr().out
    assert "rows = true class" in text and "gap shift consistency: 1px" in text and "16px" in text


def test_command_errors_exit_2_with_one_line(tmp_path, capsys):
    stopped = tmp_path / "runs" / "early"
    stopped.mkdir(parents=True)
    runs.write_json_atomic(stopped / "config.json", tiny_config().to_dict())
    runs.write_status(stopped, "stopped")
    assert cli_main(["evaluate", "early", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err.strip() == "error: run early (stopped) has no saved models: it ended before its first epoch"
    assert cli_main(["evaluate", "nope", "--runs-dir", str(tmp_path / "runs")]) == 2


def panel_page(runs_dir):
    from dashboard.evaluation_panel import evaluation_panel

    evaluation_panel(runs_dir)


def panel(runs_dir) -> AppTest:
    st.cache_resource.clear()
    st.cache_data.clear()
    app = AppTest.from_function(panel_page, args=(str(runs_dir),), default_timeout=180)
    app.run()
    assert not app.exception
    return app


def test_panel_shows_confusion_matrices_and_the_gallery(finished_run):
    app = panel(finished_run.parent)  # opens on the newest finished run: nothing to choose
    assert not app.exception and not app.error
    assert app.selectbox(key="evaluation_run").value.startswith(finished_run.name)
    (chart,) = app.get("plotly_chart")
    figure = json.loads(chart.proto.spec)
    assert [trace["type"] for trace in figure["data"]] == ["heatmap", "heatmap"]
    result = evaluation.evaluate_run(finished_run, served=False)
    for trace, backend in zip(figure["data"], ("fc", "gap"), strict=True):
        counts = [[int(cell.split("<br>")[0]) for cell in row] for row in trace["text"]]
        assert counts == result.reports[backend]["confusion"].tolist() and np.sum(counts) == 12
    fc_mistakes = len(result.reports["fc"]["misclassified"])
    assert len(app.image) == min(fc_mistakes, 12)
    if fc_mistakes:
        assert all("true" in caption.value for caption in app.markdown if caption.value.startswith("**#"))
    for right in range(len(app.selectbox(key="mistakes_right").options)):
        for cell in range(3):
            app.selectbox(key="mistakes_right").select_index(right)
            app.selectbox(key="mistakes_cell").select_index(cell).run()
            assert not app.exception and not app.error
    expected = predictions.filter_mistakes(result.labels, result.predicted(), "fc", 1, "gap")
    assert len(app.image) == min(len(expected), 12)


def test_panel_opens_on_the_newest_finished_run_not_a_newer_stopped_one(finished_run, tmp_path):
    from dashboard.evaluation_panel import newest_finished_index

    older, newer = tmp_path / "runs" / finished_run.name, tmp_path / "runs" / f"{finished_run.name}-later"
    shutil.copytree(finished_run, older)
    shutil.copytree(finished_run, newer)
    runs.write_status(newer, "stopped")
    candidates = runs.list_runs(tmp_path / "runs")
    assert [summary.state for summary in candidates] == ["stopped", "finished"]
    assert newest_finished_index(candidates) == 1 and newest_finished_index(candidates[:1]) is None
    app = panel(tmp_path / "runs")
    assert app.selectbox(key="evaluation_run").value.startswith(f"{finished_run.name} ")
    assert app.get("plotly_chart")  # evaluated without a choice
    app.selectbox(key="evaluation_run").select_index(0).run()  # the stopped run, on request, with a warning
    assert not app.exception and any("was stopped" in warning.value for warning in app.warning)


def test_panel_explains_what_it_cannot_evaluate(finished_run, tmp_path):
    assert "No run with saved models" in panel(tmp_path / "empty").info[0].value
    moved = tmp_path / "runs" / finished_run.name
    shutil.copytree(finished_run, moved)
    config = runs.read_json(moved / "config.json")
    config["data"].update(dataset="folder", data_dir=str(tmp_path / "gone"))
    runs.write_json_atomic(moved / "config.json", config)
    app = panel(tmp_path / "runs")
    app.selectbox(key="evaluation_run").select_index(0).run()
    assert not app.exception
    (message,) = [error.value for error in app.error]
    assert "Cannot evaluate run" in message and "does not exist" in message and "Traceback" not in message
    runs.write_status(moved, "running")
    app.run()
    assert not app.exception and any("still training" in info.value for info in app.info)


def test_the_page_has_a_mistakes_tab(finished_run, monkeypatch):
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(finished_run.parent))
    st.cache_resource.clear()
    app = AppTest.from_file("../app.py", default_timeout=180)
    app.run()
    assert not app.exception
    assert any("Mistakes" in tab.label for tab in app.tabs)
    # closed, the tab evaluates nothing: the other tabs' first draw never waits for TensorFlow and the models
    assert not app.get("selectbox") or not any(box.key == "evaluation_run" for box in app.selectbox)
    app.session_state["main_tab"] = ":material/rule: Mistakes"
    app.run()  # opened, it shows the newest finished run at once
    assert not app.exception and not app.error
    assert app.selectbox(key="evaluation_run").value.startswith(finished_run.name)
    assert any(chart.proto.spec and '"heatmap"' in chart.proto.spec for chart in app.get("plotly_chart"))


def test_the_test_split_alone_is_the_one_the_run_was_tested_on():
    """Evaluation draws only the synthetic test split; it must equal the full load's test split."""
    from gapdemo.config import DataConfig
    from gapdemo.data.sources import load_data, load_test_split

    config = DataConfig(image_size=32, train_size=48, synthetic_size=80, seed=3)
    images, labels, class_names = load_test_split(config)
    full = load_data(config, batch_size=16)
    assert np.array_equal(images, full.test_images) and np.array_equal(labels, full.test_labels)
    assert class_names == list(full.info.class_names) and len(images) == full.info.splits["test"]
