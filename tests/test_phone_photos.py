"""Phone photos: HEIC (an iPhone's default) and AVIF are decoded, classified by the CLI and on the page."""

import io
import json
import subprocess
import sys

import numpy as np
import pillow_heif
import pytest
import streamlit as st
from PIL import Image, features
from streamlit.testing.v1 import AppTest

from gapdemo.config import tiny_config
from gapdemo.images import DISPLAY_NAMES, UPLOAD_EXTENSIONS, ImageError, load_image
from gapdemo.training.job import TrainingJob
from toy_data import toy_loader

AVIF_READABLE = "avif" in features.modules and features.check_module("avif")


def phone_photo(fmt="HEIF", size=(120, 90)) -> bytes:
    """A photo as a phone stores it, made here with pillow_heif (HEIF) or Pillow (AVIF)."""
    pillow_heif.register_heif_opener()
    pixels = (np.random.default_rng(3).random((size[1], size[0], 3)) * 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def trained_runs_dir(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("phone_runs")
    job = TrainingJob(tiny_config(str(runs_dir), ("fc", "gap")), data_loader=toy_loader())
    assert job.run() == "finished", job.snapshot().message
    return runs_dir


def test_heic_is_decoded_upright_and_listed():
    data = phone_photo("HEIF")
    assert data[4:12] == b"ftypheic"
    image = load_image(data)
    assert image.shape == (90, 120, 3) and image.dtype == np.uint8
    assert "HEIC" in DISPLAY_NAMES and {"heic", "heif"} <= set(UPLOAD_EXTENSIONS)
    with pytest.raises(ImageError, match="HEIC"):
        load_image(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 8)  # a HEIC header and nothing else


@pytest.mark.skipif(not AVIF_READABLE, reason="this Pillow is built without libavif")
def test_avif_is_decoded_and_listed():
    assert load_image(phone_photo("AVIF")).shape == (90, 120, 3)
    assert "AVIF" in DISPLAY_NAMES and "avif" in UPLOAD_EXTENSIONS


def test_cli_classifies_a_heic_photo(trained_runs_dir, tmp_path):
    photo = tmp_path / "IMG_0001.HEIC"
    photo.write_bytes(phone_photo("HEIF"))
    result = subprocess.run([sys.executable, "-m", "gapdemo", "classify", str(photo), "--runs-dir",
                             str(trained_runs_dir), "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout)
    assert set(answer["backends"]) == {"fc", "gap"}
    for values in answer["backends"].values():
        assert values["p_cat"] + values["p_dog"] == pytest.approx(1.0, abs=1e-5)
    help_text = subprocess.run([sys.executable, "-m", "gapdemo", "classify", "--help"], capture_output=True,
                               text=True, timeout=120).stdout
    assert "HEIC" in help_text and "AVIF" in help_text


def test_page_classifies_a_heic_upload(trained_runs_dir, monkeypatch):
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(trained_runs_dir))
    st.cache_resource.clear()
    app = AppTest.from_file("../app.py", default_timeout=120)
    app.run()
    assert not app.exception
    uploader = app.file_uploader(key="photo")
    assert "HEIC" in uploader.label
    app.file_uploader(key="photo").set_value(("IMG_0001.HEIC", phone_photo("HEIF"), "image/heic")).run()
    assert not app.exception and not app.error
    captions = [caption for image in app.image for caption in image.captions]
    assert len(captions) == 2 and all(("cat" in c or "dog" in c) for c in captions)
