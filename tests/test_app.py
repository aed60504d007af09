"""The dashboard's logic through Streamlit's AppTest: defaults, parameters, a tiny run, stop, errors, upload, downloads,
sessions and the queue, the Runs tab's messages."""

import io
import json
import re
import threading
import time

import numpy as np
import pytest
import streamlit as st
from in_thread import use_in_thread_runs
from PIL import Image
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from conftest import close_page_scheduler

APP = "../app.py"


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(tmp_path / "runs"))
    st.cache_resource.clear()  # a fresh job manager per test
    app_test = AppTest.from_file(APP, default_timeout=120)
    app_test.run()
    assert not app_test.exception
    yield app_test
    close_page_scheduler()  # a failed test must not leave training running


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


def test_the_feature_maps_tab_runs_only_while_open(app):
    """Closed, the tab neither polls nor has its heatmaps redrawn by the browser while a run trains."""
    from dashboard.insight_panel import CAPTION

    assert not any(caption.value == CAPTION for caption in app.caption)
    app.session_state["main_tab"] = ":material/grid_view: Feature maps"
    app.run()
    assert not app.exception
    assert any(caption.value == CAPTION for caption in app.caption)
    assert any("Feature-map averages appear here" in info.value for info in app.info)


def test_the_live_view_polls_quickly_until_its_first_point_and_estimate_then_slower_then_quickly_near_the_end():
    from dashboard.common import POLL_SECONDS, QUICK_POLL_SECONDS
    from dashboard.training_panel import poll_interval

    long_run, ending = {"phase": "training", "eta_seconds": 120.0}, {"phase": "training", "eta_seconds": 3.0}
    assert poll_interval(True, False, long_run) == QUICK_POLL_SECONDS < POLL_SECONDS  # no point yet
    assert poll_interval(True, True, {"phase": "training", "eta_seconds": None}) == QUICK_POLL_SECONDS  # no estimate
    assert poll_interval(True, True, long_run) == POLL_SECONDS
    assert poll_interval(True, True, ending) == QUICK_POLL_SECONDS  # the results follow in seconds
    assert poll_interval(False, True, long_run) is None


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
    check_downloads(app, download_data, job_manager_of_page().latest().run_dir)


def job_manager_of_page():
    from dashboard.common import job_manager

    return job_manager()


def downloads(app, download_data) -> dict[str, bytes]:
    """{download button key: the bytes a click hands the browser}; PNGs (Chromium) are left out: test_export."""
    found = {}
    for button in app.get("download_button"):
        key = button.proto.id.rsplit("-", 1)[-1]  # AppTest keeps a keyed element's key at the end of its id
        source = download_data[button.proto.url or button.proto.deferred_file_id]
        if not key.endswith("_png"):
            found[key] = source() if callable(source) else source
    return found


def check_downloads(app, download_data, run_dir):
    """Each download holds what its button promises: this run's numbers, a whole chart, the whole run."""
    import zipfile

    import pandas as pd

    from gapdemo import runs

    files = downloads(app, download_data)
    for key in ("live_accuracy", "live_loss", "history_accuracy", "history_loss"):
        epochs = pd.read_csv(io.BytesIO(files[f"export_{key}_csv"]))
        pd.testing.assert_frame_equal(epochs, runs.read_epoch_metrics(run_dir), check_dtype=False)
    results = pd.read_csv(io.BytesIO(files["export_results_csv"])).set_index("key")
    best = runs.read_epoch_metrics(run_dir).groupby("backend")["val_accuracy"].max()
    assert list(results.index) == ["fc", "fc_dropout", "gap"]
    assert results["Best val accuracy"].to_dict() == pytest.approx(best.to_dict())
    parameters = pd.read_csv(io.BytesIO(files["export_parameters_csv"])).set_index("key")
    assert parameters.loc["gap", "Back-end params"] == 65  # the sidebar's 32 px: a 2x2 map, 64 weights + bias
    html = {key: data.decode("utf-8") for key, data in files.items() if key.endswith("_html")}
    assert {"export_live_accuracy_html", "export_results_html", "export_history_loss_html"} <= set(html)
    for key, page in html.items():
        assert "<html>" in page[:200].lower() and page.rstrip().endswith("</html>") and "Plotly.newPlot" in page, key
        assert len(page) > 1_000_000, key  # plotly.js inlined: it opens offline
    for key in ("export_live_accuracy_html", "export_history_loss_html"):  # a trace per back-end and split
        assert all(re.search(rf'"name":\s*"{name}', html[key]) for name in ("FC", "FC \\+ dropout", "GAP")), key
    assert re.search(r'"x":\s*\["FC",\s*"FC \+ dropout",\s*"GAP"\]', html["export_results_html"])
    with zipfile.ZipFile(io.BytesIO(files["export_run_zip"])) as bundle:
        assert bundle.read("metrics.csv") == (run_dir / "metrics.csv").read_bytes()
        assert bundle.read("config.json") == (run_dir / "config.json").read_bytes()
        assert {"models/fc.keras", "models/gap.keras", "MANIFEST.txt"} <= set(bundle.namelist())


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
    (chart,) = [chart for chart in app.get("plotly_chart") if chart.proto.id.endswith("-classification_chart")]
    bars = {trace["name"]: trace for trace in json.loads(chart.proto.spec)["data"]}
    assert list(bars) == ["P(cat)", "P(dog)"]
    from gapdemo import runs
    from gapdemo.images import load_image, prepare_for_model

    models = runs.load_models(job_manager_of_page().latest().run_dir)
    seen = prepare_for_model(load_image(photo()), 32)
    p_dog = {backend: float(model(seen, training=False).numpy()[0, 0]) for backend, model in models.items()}
    assert bars["P(dog)"]["y"] == pytest.approx([p_dog[b] for b in ("fc", "fc_dropout", "gap")], abs=1e-5)
    assert bars["P(cat)"]["y"] == pytest.approx([1 - p_dog[b] for b in ("fc", "fc_dropout", "gap")], abs=1e-5)
    labels = ["dog" if p_dog[b] >= 0.5 else "cat" for b in ("fc", "fc_dropout", "gap")]
    assert bars["P(dog)"]["x"] == [f"{name}<br>→ {label}" for name, label in zip(
        ("FC", "FC + dropout", "GAP"), labels, strict=True)]
    captions = [caption for image in app.image for caption in image.captions]
    assert [caption.split(":")[1].split()[0] for caption in captions] == labels
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

    from dashboard import training_panel

    set_tiny_settings(app, epochs=1)
    app.button(key="start").click().run()
    assert "finished" in wait_until(app, ["finished", "failed"])
    app.run()
    assert app.slider(key="live_smoothing").value == 0.6
    assert any(caption.value.endswith("Trained in float32.") for caption in app.caption)

    def live_splits():
        specs = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
        return [[trace["meta"]["split"] for trace in spec["data"]] for spec in specs
                if spec["layout"].get("uirevision") == "curves"]

    assert all("train_raw" in splits for splits in live_splits()[:2])  # the live pair comes first
    live_builds = []
    original = training_panel.curves_figure

    def counting(epochs, batches=None, *args, **kwargs):
        live_builds.append(isinstance(batches, dict))
        return original(epochs, batches, *args, **kwargs)

    monkeypatch.setattr(training_panel, "curves_figure", counting)  # the live figures' builder
    app.run()
    app.run()
    assert not any(live_builds)  # nothing new arrived: the cached live figures are sent again
    app.slider(key="live_smoothing").set_value(0.0).run()
    assert sum(live_builds) == 2  # accuracy and loss, once each
    assert all("train_raw" not in splits for splits in live_splits()[:2])


@pytest.fixture
def held_local_page(tmp_path, monkeypatch):
    """A page bound to 127.0.0.1 (one user: Stop acts on any run) whose runs wait in 'loading data' until
    released one at a time; yields (the seed of each run as it starts loading, the release)."""
    from streamlit import config

    import gapdemo.data.sources

    started, release = [], threading.Semaphore(0)

    def held_load_data(data_config, batch_size, progress=None):
        started.append(data_config.seed)
        release.acquire(timeout=120)
        raise ValueError("released by the test")

    monkeypatch.setattr(gapdemo.data.sources, "load_data", held_load_data)
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(tmp_path / "runs"))
    use_in_thread_runs(monkeypatch)  # a worker process cannot be held by a patched loader
    previous = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")
    st.cache_resource.clear()  # a fresh job manager
    yield started, release
    for _ in range(10):
        release.release()
    close_page_scheduler()
    config.set_option("server.address", previous)


def open_session(seed: int) -> AppTest:
    """A new browser session (a new tab, or a refresh) on the page, its runs marked by their seed."""
    session = AppTest.from_file(APP, default_timeout=120)
    session.run()
    session.number_input(key="seed").set_value(seed).run()
    assert not session.exception and not session.sidebar.error
    return session


def press(session: AppTest, key: str) -> list[str]:
    """Click a sidebar button; the toasts the page then shows."""
    session.button(key=key).click().run()
    assert not session.exception, session.exception
    return [toast.value for toast in session.toast]


def until(condition, timeout=180):  # generous: a loaded CI machine is slow, a hang still fails
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def shown_run(session: AppTest) -> str:
    session.run()
    assert not session.exception, session.exception
    return run_status(session)


def queue_line(session: AppTest) -> list[str]:
    return [caption.value for caption in session.caption if caption.value.startswith("Waiting in the queue")]


def test_sessions_share_one_queue_that_runs_in_order_and_stop_acts_on_the_running_run(held_local_page):
    started, release = held_local_page
    alice = open_session(seed=1)
    [toast] = press(alice, "start")
    manager = job_manager_of_page()
    first = manager.jobs()[0]
    assert toast == f"Run {first.run_id} started."
    until(lambda: started == [1])
    alice.number_input(key="seed").set_value(2).run()
    assert press(alice, "start") == [f"Run {manager.jobs()[0].run_id} queued behind 1 other run(s)."]
    bob = open_session(seed=3)  # a second tab: it sees alice's running run, and may queue behind it
    assert shown_run(bob).startswith(f"**Run `{first.run_id}`** — :blue[training]")
    assert press(bob, "start") == [f"Run {manager.jobs()[0].run_id} queued behind 2 other run(s)."]
    third, second = manager.jobs()[:2]
    refreshed = open_session(seed=1)  # alice reloads the page: a new session, the same runs
    assert shown_run(refreshed).startswith(f"**Run `{first.run_id}`** — :blue[training]")
    assert queue_line(refreshed) == [
        f"Waiting in the queue: run `{second.run_id}`, 1st in line; run `{third.run_id}`, 2nd in line"]

    press(bob, "stop")  # on a local page Stop acts on the running run, whoever started it
    assert (first.state, second.state, third.state) == ("stopping", "queued", "queued")
    release.release()  # the first run ends; the queue's head starts, in the order the runs came
    until(lambda: started == [1, 2])
    assert shown_run(bob).startswith(f"**Run `{second.run_id}`**")
    assert queue_line(bob) == [f"Waiting in the queue: run `{third.run_id}`, 1st in line"]
    assert first.is_done() and first.state != "finished"
    release.release()
    until(lambda: started == [1, 2, 3])
    assert shown_run(alice).startswith(f"**Run `{third.run_id}`**") and queue_line(alice) == []
    release.release()
    assert all(job.wait(60) for job in manager.jobs())
    assert alice.run().button(key="stop").disabled


def runs_tab_page(runs_dir):
    from dashboard.runs_panel import runs_panel

    runs_panel(runs_dir)


def test_runs_tab_explains_failed_and_interrupted_runs(runs_dir):
    from gapdemo import runs
    from gapdemo.config import tiny_config

    def make(run_id, state, message=""):
        run_dir = runs_dir / run_id
        run_dir.mkdir()
        runs.write_json_atomic(run_dir / "config.json", tiny_config(str(runs_dir)).to_dict())
        runs.write_status(run_dir, state, message)
        status = runs.read_json(run_dir / "status.json")
        runs.write_json_atomic(run_dir / "status.json", {**status, "process": "1@1.00"})  # a writer long gone

    make("20260101-000000-0001", "failed", "The folder /photos does not exist.")
    make("20260101-000000-0002", "running")  # its process died mid-run
    make("20260101-000000-0003", "finished")
    page = AppTest.from_function(runs_tab_page, args=(str(runs_dir),), default_timeout=60).run()
    assert not page.exception
    table = page.dataframe[0].value
    assert list(table["run"]) == ["20260101-000000-0003", "20260101-000000-0002", "20260101-000000-0001"]
    assert list(table["state"]) == ["finished", "interrupted", "failed"]
    assert not page.error and not page.warning  # the newest, finished, is shown first
    page.selectbox(key="view_run").select_index(1).run()
    assert [w.value for w in page.warning] == [
        "The process training this run ended before it finished; completed epochs are kept."]
    page.selectbox(key="view_run").select_index(2).run()
    assert [e.value for e in page.error] == ["This run failed: The folder /photos does not exist."]


def test_precision_is_offered_where_the_processor_has_bfloat16(app):
    from gapdemo.model.precision import bfloat16_support

    supported, sentence = bfloat16_support()
    radio = app.radio(key="precision")
    assert radio.value == "float32"
    if supported:
        assert list(radio.options) == ["float32", "mixed bfloat16"] and not radio.disabled
    else:
        assert radio.disabled and any(sentence in caption.value for caption in app.sidebar.caption)
