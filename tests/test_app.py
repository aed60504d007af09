"""The dashboard's logic through Streamlit's AppTest: defaults, parameters, a tiny run, stop, errors, upload."""

import io
import time

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

APP = "../app.py"


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(tmp_path / "runs"))
    st.cache_resource.clear()  # a fresh job manager per test
    app_test = AppTest.from_file(APP, default_timeout=120)
    app_test.run()
    assert not app_test.exception
    yield app_test
    from dashboard.common import job_manager

    job_manager().stop_all()  # a failed test must not leave training running
    job_manager().wait_idle(60)


@pytest.fixture
def download_data(monkeypatch):
    """Collects what each download button would hand the browser: bytes, or the deferred callable."""
    collected = {}
    original_add, original_deferred = MediaFileManager.add, MediaFileManager.add_deferred

    def add(self, data, mimetype, coordinates, file_name=None, is_for_static_download=False):
        url = original_add(self, data, mimetype, coordinates, file_name, is_for_static_download)
        collected[url] = data
        return url

    def add_deferred(self, callable_, mimetype, coordinates, file_name=None, element_id=""):
        file_id = original_deferred(self, callable_, mimetype, coordinates, file_name=file_name, element_id=element_id)
        collected[file_id] = callable_
        return file_id

    monkeypatch.setattr(MediaFileManager, "add", add)
    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    return collected


def set_tiny_settings(app, epochs=2, train_size=48):
    app.slider(key="image_size").set_value(32)
    app.number_input(key="train_size").set_value(train_size)
    app.slider(key="epochs").set_value(epochs)
    app.select_slider(key="batch_size").set_value(16)
    app.run()
    assert not app.exception and not app.sidebar.error


def table_with(app, column):
    """The first table on the page that has column (AppTest does not keep dataframe keys)."""
    for frame in app.dataframe:
        if column in frame.value.columns:
            return frame.value
    raise AssertionError(f"no table with {column!r}")


def run_status(app) -> str:
    """The run's state line plus its progress bar text."""
    lines = [m.value for m in app.markdown if m.value.startswith("**Run `")]
    progress = [bar.proto.text for bar in app.get("progress")]
    return " ".join(lines[:1] + progress)


def wait_until(app, words, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        app.run()
        assert not app.exception, app.exception
        if any(word in run_status(app) for word in words):
            return run_status(app)
        time.sleep(0.5)
    raise AssertionError(f"status never showed {words}: {run_status(app)!r}")


def test_defaults_and_parameter_table(app):
    assert app.selectbox(key="dataset").value == "synthetic"
    assert app.multiselect(key="backends").value == ["fc", "fc_dropout", "gap"]
    assert app.slider(key="image_size").value == 100 and app.slider(key="epochs").value == 10
    assert app.slider(key="dropout_rate").value == 0.5 and app.select_slider(key="bn_momentum").value == 0.9
    assert app.select_slider(key="batch_size").value == 64 and app.number_input(key="train_size").value == 2000
    table = table_with(app, "Back-end params")
    assert table.loc["fc", "Back-end params"] == 676301 and table.loc["gap", "Back-end params"] == 65
    assert table.loc["gap", "Head params"] == 29152 and table.loc["gap", "Trainable params"] == 28961
    assert any("10,405×" in m.value for m in app.markdown)
    assert any("No run yet" in info.value for info in app.info)


def test_parameter_table_follows_settings(app):
    app.slider(key="image_size").set_value(64)
    app.multiselect(key="backends").set_value(["gap", "avgpool_flatten"]).run()
    table = table_with(app, "Back-end params")
    assert list(table.index) == ["gap", "avgpool_flatten"]
    assert table.loc["avgpool_flatten", "Back-end params"] == 3 * 3 * 64 + 1  # 64 px -> 6x6 map -> 3x3 pooled


def test_reruns_leave_the_keras_session_alone(app, monkeypatch):
    """Streamlit would clear Keras' session after every rerun, starving a job that trains meanwhile."""
    import keras

    clears = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *args, **kwargs: clears.append(args))
    app.run()
    app.run()
    assert not app.exception
    assert clears == []


def test_invalid_settings_explained_before_start(app):
    app.multiselect(key="backends").set_value([]).run()
    assert any("at least one back-end" in e.value for e in app.sidebar.error)
    assert app.button(key="start").disabled
    app.multiselect(key="backends").set_value(["gap"])
    app.selectbox(key="dataset").set_value("folder").run()
    app.text_input(key="folder_dir").set_value("/no/such/folder").run()
    assert any("does not exist" in e.value for e in app.sidebar.error)
    assert app.button(key="start").disabled


def test_tiny_run_finishes_with_results_and_downloads(app, download_data):
    set_tiny_settings(app)
    app.button(key="start").click().run()
    assert "finished" in wait_until(app, ["finished", "failed"])
    app.run()
    results = table_with(app, "Best val accuracy")
    assert list(results.index) == ["fc", "fc_dropout", "gap"] and set(results["Epochs"]) == {2}
    # the back-ends train in lockstep: their shared time is shown once, not as a column
    assert not any("time" in column.lower() for column in results.columns)
    run_time_captions = [caption.value for caption in app.caption if caption.value.startswith("Run time ")]
    results_tables = [frame for frame in app.dataframe if "Best val accuracy" in frame.value.columns]
    assert len(run_time_captions) == len(results_tables) >= 1  # the training and the runs tab, one each
    buttons = app.get("download_button")
    labels = [button.proto.label for button in buttons]
    assert labels.count("⬇ HTML") >= 4 and labels.count("⬇ CSV") >= 4
    for button in buttons:
        source = download_data[button.proto.url or button.proto.deferred_file_id]
        data = source() if callable(source) and "PNG" not in button.proto.label else source
        if callable(data):
            continue  # PNG: rendered by Chromium, covered in test_export
        assert len(data) > 100, button.proto.label


def test_stop_keeps_finished_epochs(app):
    set_tiny_settings(app, epochs=50, train_size=320)
    app.button(key="start").click().run()
    wait_until(app, ["Epoch 2/", "Epoch 3/"])
    app.button(key="stop").click().run()
    status = wait_until(app, ["stopped", "finished", "failed"])
    assert "stopped" in status
    assert any("completed epochs are kept" in w.value for w in app.warning)
    results = table_with(app, "Best val accuracy")
    assert 1 <= results["Epochs"].min() < 50


def test_failed_run_shows_its_message(app, tmp_path):
    (tmp_path / "photos" / "cat").mkdir(parents=True)  # one class only: loading must fail
    app.selectbox(key="dataset").set_value("folder").run()
    app.text_input(key="folder_dir").set_value(str(tmp_path / "photos")).run()
    app.button(key="start").click().run()
    assert "failed" in wait_until(app, ["failed", "finished"], timeout=60)
    messages = [e.value for e in app.error]
    assert messages and all("two class sub-folders" in m and "Traceback" not in m for m in messages)


def photo(fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((np.random.default_rng(1).random((90, 120, 3)) * 255).astype("uint8")).save(buffer, format=fmt)
    return buffer.getvalue()


def test_classify_an_uploaded_photo(app):
    set_tiny_settings(app, epochs=1)
    app.button(key="start").click().run()
    wait_until(app, ["finished"])
    app.run()
    assert any("synthetic cartoon pets" in info.value for info in app.info)
    app.file_uploader(key="photo").set_value(("pet.png", photo(), "image/png")).run()
    assert not app.exception and not app.error
    assert len(app.get("plotly_chart")) >= 3
    captions = [caption for image in app.image for caption in image.captions]
    assert len(captions) == 3 and all(("cat" in c or "dog" in c) for c in captions)
    app.file_uploader(key="photo").set_value(("broken.jpg", b"\xff\xd8\xff not really", "image/jpeg")).run()
    assert not app.exception
    assert [e.value for e in app.error] and "Traceback" not in app.error[0].value


def test_shipped_streamlit_configuration_takes_effect(monkeypatch):
    """.streamlit/config.toml, as `streamlit run app.py` from the project root reads it."""
    from pathlib import Path

    from streamlit import config

    from gapdemo.images import MAX_UPLOAD_BYTES

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    config.get_config_options(force_reparse=True)
    try:
        assert config.get_option("runner.postScriptGC") is False  # no 0.25 s gc.collect per refresh
        assert config.get_option("server.maxUploadSize") * 1024 * 1024 == MAX_UPLOAD_BYTES  # Streamlit counts MiB
    finally:
        monkeypatch.undo()
        config.get_config_options(force_reparse=True)


def test_status_explains_the_wait_before_the_first_batch():
    def page():
        from types import SimpleNamespace

        from dashboard.training_panel import status_panel

        progress = {"phase": "compiling", "epoch": 1, "epochs": 10, "batch": 0, "batches_per_epoch": 32,
                    "images_per_second": 0.0, "eta_seconds": None}
        status_panel(SimpleNamespace(run_id="r1", state="running", elapsed_seconds=6.0, progress=progress,
                                     message=""), [])

    app_test = AppTest.from_function(page)
    app_test.run()
    assert not app_test.exception
    text = run_status(app_test)
    assert "Compiling the training step" in text and "images/s" not in text


def test_live_curves_are_smoothed_on_request_and_built_once_per_new_data(app, monkeypatch):
    import json

    from gapdemo import charts

    set_tiny_settings(app, epochs=1)
    app.button(key="start").click().run()
    assert "finished" in wait_until(app, ["finished", "failed"])
    app.run()
    assert app.slider(key="live_smoothing").value == 0.6

    def live_splits():
        specs = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
        return [[trace["meta"]["split"] for trace in spec["data"]] for spec in specs
                if spec["layout"].get("uirevision") == "curves"]

    assert all("train_raw" in splits for splits in live_splits()[:2])  # the live pair comes first
    live_builds = []
    original = charts.curves_figure

    def counting(epochs, batches=None, *args, **kwargs):
        live_builds.append(isinstance(batches, dict))
        return original(epochs, batches, *args, **kwargs)

    monkeypatch.setattr(charts, "curves_figure", counting)
    app.run()
    app.run()
    assert not any(live_builds)  # nothing new arrived: the cached live figures are sent again
    app.slider(key="live_smoothing").set_value(0.0).run()
    assert sum(live_builds) == 2  # accuracy and loss, once each
    assert all("train_raw" not in splits for splits in live_splits()[:2])
