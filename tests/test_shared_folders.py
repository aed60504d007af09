"""What a shared runs or data folder must not let through: links out of a run in its zip, image formats
beyond the listed ones, and `gapdemo data` reading past GAPDEMO_DATA_ROOTS."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

from gapdemo.data.decode import DATASET_FORMATS, decode_image_file
from gapdemo.runs import list_run_files, read_run_files, symbolic_links_in, write_config

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_with_a_link_out(tmp_path):
    """A run folder whose models/ holds a symbolic link to a file outside the run."""
    secret = tmp_path / "secret.txt"
    secret.write_text("not for visitors")
    run_dir = tmp_path / "runs" / "r1"
    (run_dir / "models").mkdir(parents=True)
    write_config(run_dir, {"model": {"backends": ["gap"]}})
    try:
        os.symlink(secret, run_dir / "models" / "gap.keras")
    except OSError as error:  # Windows without the right to make links
        pytest.skip(f"cannot make a symbolic link here: {error}")
    return run_dir


def test_run_files_skip_symbolic_links(run_with_a_link_out):
    assert symbolic_links_in(run_with_a_link_out) == [os.path.join("models", "gap.keras")]
    assert list_run_files(run_with_a_link_out) == ["config.json"]
    files = read_run_files(run_with_a_link_out, ["config.json", "models/gap.keras"])
    assert list(files) == ["config.json"] and b"not for visitors" not in b"".join(files.values())


def test_the_run_zip_refuses_a_run_with_links(run_with_a_link_out, tmp_path):
    from gapdemo.export.bundle import run_zip

    with pytest.raises(ValueError, match="^Run r1 holds symbolic links .*it is not packaged"):
        run_zip(run_with_a_link_out, tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()
    (run_with_a_link_out / "models" / "gap.keras").unlink()
    data = run_zip(run_with_a_link_out, tmp_path / "out.zip", include_parameters=False)
    assert "config.json" in zipfile.ZipFile(tmp_path / "out.zip").namelist() and data


@pytest.mark.parametrize("format_name", ["TIFF", "PPM", "ICO"])
def test_the_data_set_decoder_opens_only_the_listed_formats(tmp_path, format_name):
    """Pillow opens these, but a data set's files may only be JPEG, PNG, BMP, GIF or WebP, whatever their name."""
    picture = Image.fromarray(np.full((16, 16, 3), 200, np.uint8))
    path = tmp_path / "cat.jpg"
    picture.save(path, format=format_name)
    with Image.open(path) as opened:  # Pillow alone would read it
        assert opened.format == format_name and format_name not in DATASET_FORMATS
    with pytest.raises(UnidentifiedImageError):
        decode_image_file(path, 8)
    picture.save(path, format="PNG")  # a PNG named .jpg, as PetImages has, still decodes
    assert decode_image_file(path, 8).shape == (8, 8, 3)


def test_gapdemo_data_is_held_to_the_data_roots_like_train(tmp_path):
    outside = tmp_path / "outside"
    for name in ("cat", "dog"):
        (outside / name).mkdir(parents=True)
        for index in range(10):  # the fewest per class that give every split an image
            Image.fromarray(np.full((16, 16, 3), 9 * index, np.uint8)).save(outside / name / f"{index}.png")
    environment = {**os.environ, "GAPDEMO_DATA_ROOTS": str(tmp_path / "roots"),
                   "GAPDEMO_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "gapdemo", "data", "--dataset", "folder", "--data-dir", str(outside), "--json"]
    refused = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT, env=environment, timeout=120)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip() == f"error: The folder {outside} does not exist."
    environment["GAPDEMO_DATA_ROOTS"] = str(tmp_path)
    allowed = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT, env=environment, timeout=120)
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["class_names"] == ["cat", "dog"]
