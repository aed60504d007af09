"""Export: offline HTML, PNG through one shared Chromium, CSV round trips, run zips and folders."""

import io
import json
import re
import struct
import sys
import time
import zipfile

import numpy as np
import pandas as pd
import pytest
from test_charts import make_batch_metrics, make_epoch_metrics

from gapdemo.charts.common import backend_color, backend_label
from gapdemo.charts.curves import curves_figure
from gapdemo.charts.parameters import parameter_figure
from gapdemo.charts.results import results_dataframe
from gapdemo.config import tiny_config
from gapdemo.export import bundle, formats, png

EXTERNAL_SCRIPT = re.compile(r"<script[^>]+src=[\"']https?:", re.IGNORECASE)
BACKENDS = ("fc", "gap")


@pytest.fixture
def run_dir(runs_dir):
    """A finished-looking run written by hand: config, status, metrics, probes and fake models."""
    path = runs_dir / "20250101-000000-abcd"
    (path / "models").mkdir(parents=True)
    (path / "probes").mkdir()
    config = tiny_config(str(runs_dir), backends=BACKENDS).to_dict()
    (path / "config.json").write_text(json.dumps(config))
    (path / "status.json").write_text(json.dumps({"state": "finished", "epochs_completed": 3}))
    make_epoch_metrics(BACKENDS).to_csv(path / "metrics.csv", index=False)
    make_batch_metrics(BACKENDS, batches=20).to_csv(path / "batch_metrics.csv", index=False)
    np.savez(path / "probes" / "images.npz", labels=np.array([0, 1]), images=np.zeros((2, 4, 4, 3), np.uint8))
    for backend in BACKENDS:
        (path / "models" / f"{backend}.keras").write_bytes(b"not really a model")
    (path / "models" / ".fc.tmp.keras").write_bytes(b"a save in flight")  # must stay out of bundles
    return path


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def test_html_is_self_contained_and_carries_every_backend():
    figure = curves_figure(make_epoch_metrics(("fc", "gap", "gmp")))
    html = formats.figure_to_html(figure).decode("utf-8")
    assert html.lstrip().lower().startswith("<html") or "<!doctype html" in html.lower()[:200]
    assert not EXTERNAL_SCRIPT.search(html)
    assert "plotly.js v" in html and len(html) > 1_000_000  # plotly.js inlined, not linked
    for backend in ("fc", "gap", "gmp"):
        assert f'"name":"{backend_label(backend)}"' in html
        assert backend_color(backend) in html


def test_dataframe_csv_round_trips_a_runs_metrics(run_dir):
    stored = pd.read_csv(run_dir / "metrics.csv")
    restored = pd.read_csv(io.BytesIO(formats.dataframe_to_csv(stored)))
    pd.testing.assert_frame_equal(restored, stored)
    results = results_dataframe(stored)
    assert pd.read_csv(io.BytesIO(formats.dataframe_to_csv(results)))["key"].tolist() == list(BACKENDS)


@pytest.mark.browser
def test_png_has_requested_size_and_the_second_one_is_fast():
    figure = curves_figure(make_epoch_metrics())
    started = time.perf_counter()
    first = png.figure_to_png(figure, scale=2, width=400, height=300)
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    second = png.figure_to_png(parameter_figure({"gap": {
        "head_params": 1, "backend_params": 2, "total_params": 3, "trainable_params": 3}}), scale=1.5,
        width=320, height=200)
    second_s = time.perf_counter() - started
    print(f"first PNG {first_s:.2f} s (starts Chromium), second PNG {second_s:.2f} s")
    assert png_size(first) == (800, 600)
    assert png_size(second) == (480, 300)
    assert second_s < 2.0


@pytest.mark.browser
def test_png_from_several_threads_shares_one_browser(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    png._EXPORT_BROWSER.close()  # an earlier test's browser must not hide a start
    opened = []  # one entry per Chromium started, by any ExportBrowser
    original_open = png.ExportBrowser._open_kaleido

    async def counting_open(self, path):
        browser = await original_open(self, path)
        opened.append(browser)
        return browser

    monkeypatch.setattr(png.ExportBrowser, "_open_kaleido", counting_open)
    figure = curves_figure(make_epoch_metrics(("gap",)))
    with ThreadPoolExecutor(3) as pool:
        images = list(pool.map(lambda width: png.figure_to_png(figure, scale=1, width=width, height=100),
                               (200, 210, 220, 230)))
    assert [png_size(image) for image in images] == [(200, 100), (210, 100), (220, 100), (230, 100)]
    assert len(opened) == 1  # one browser served all four


def test_png_rejects_bad_sizes():
    figure = curves_figure(make_epoch_metrics())
    with pytest.raises(ValueError, match="width"):
        png.figure_to_png(figure, width=0)
    with pytest.raises(ValueError, match="scale"):
        png.figure_to_png(figure, scale=-1)


def test_without_a_browser_png_is_unavailable_but_html_and_csv_export(run_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(png, "find_chromium", lambda: None)
    available, hint = png.png_export_available()
    assert not available and hint == png.PNG_HINT
    if sys.platform.startswith("linux"):
        assert hint == "PNG export needs Chromium: apt-get install chromium"
    with pytest.warns(RuntimeWarning, match=re.escape(png.PNG_HINT)):
        written = bundle.export_run(run_dir, tmp_path / "out", include_parameters=False)
    assert {path.suffix for path in written} == {".html", ".csv"}
    names = zipfile.ZipFile(io.BytesIO(bundle.run_zip(run_dir, include_parameters=False))).namelist()
    assert not any(name.endswith(".png") for name in names)


@pytest.mark.parametrize("variable", ["PROGRAMFILES", "LOCALAPPDATA"])
def test_chrome_is_found_where_windows_installs_it(tmp_path, monkeypatch, variable):
    chrome = tmp_path / "Google" / "Chrome" / "Application" / "chrome.exe"
    chrome.parent.mkdir(parents=True)
    chrome.write_bytes(b"")
    chrome.chmod(0o755)
    for name in ("GAPDEMO_CHROMIUM", "BROWSER_PATH", "PROGRAMFILES", "PROGRAMFILES(X86)", "LOCALAPPDATA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(png, "CHROMIUM_CANDIDATES", ())  # as on Windows: none of the Linux or macOS places
    monkeypatch.setattr(png.shutil, "which", lambda name: None)  # and not on the PATH
    assert png.find_chromium() is None
    monkeypatch.setenv(variable, str(tmp_path))
    assert png.find_chromium() == str(chrome)


def read_manifest(bundle: zipfile.ZipFile) -> list[str]:
    lines = bundle.read("MANIFEST.txt").decode("utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def test_run_zip_contains_exactly_what_its_manifest_lists(run_dir, tmp_path):
    target = tmp_path / "bundles" / "run.zip"
    data = bundle.run_zip(run_dir, target=target)  # include_parameters: builds the models (TensorFlow)
    assert target.read_bytes() == data
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = archive.namelist()
    assert sorted(read_manifest(archive)) == sorted(set(names) - {"MANIFEST.txt"})
    assert len(names) == len(set(names))
    for expected in ("config.json", "status.json", "metrics.csv", "batch_metrics.csv", "probes/images.npz",
                     "models/fc.keras", "models/gap.keras", "charts/curves_accuracy.html",
                     "charts/curves_loss.html", "charts/parameters.html", "tables/parameters.csv"):
        assert expected in names
    assert "models/.fc.tmp.keras" not in names
    assert archive.read("metrics.csv") == (run_dir / "metrics.csv").read_bytes()
    if png.png_export_available()[0]:
        assert png_size(archive.read("charts/parameters.png")) == (1800, 1000)
    parameters = pd.read_csv(io.BytesIO(archive.read("tables/parameters.csv")))
    assert parameters["key"].tolist() == list(BACKENDS)


def test_export_run_writes_the_files_it_returns(run_dir, tmp_path):
    target = tmp_path / "exported"
    written = bundle.export_run(run_dir, target, formats=("html", "csv"), include_parameters=False)
    assert sorted(path.name for path in written) == sorted([
        "curves_accuracy.html", "curves_loss.html", "metrics.csv", "batch_metrics.csv", "results.csv"])
    assert sorted(path.name for path in target.iterdir()) == sorted(path.name for path in written)
    assert all(path.stat().st_size > 0 for path in written)
    pd.testing.assert_frame_equal(pd.read_csv(target / "metrics.csv"), pd.read_csv(run_dir / "metrics.csv"))


@pytest.mark.browser
def test_export_run_writes_pngs(run_dir, tmp_path):
    written = bundle.export_run(run_dir, tmp_path / "png", formats=("png",), include_parameters=False)
    assert sorted(path.name for path in written) == ["curves_accuracy.png", "curves_loss.png"]
    assert all(png_size(path.read_bytes()) == (1800, 1000) for path in written)


def test_missing_run_and_unwritable_targets_raise_value_error(run_dir, tmp_path):
    with pytest.raises(ValueError, match="no run directory"):
        bundle.export_run(tmp_path / "nope", tmp_path / "out")
    with pytest.raises(ValueError, match="no run directory"):
        bundle.run_zip(tmp_path / "nope")
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        bundle.export_run(run_dir, a_file, include_parameters=False)
    with pytest.raises(ValueError, match="cannot create"):
        bundle.export_run(run_dir, a_file / "below", include_parameters=False)
    with pytest.raises(ValueError, match="unknown export format"):
        bundle.export_run(run_dir, tmp_path / "out", formats=("svg",))
