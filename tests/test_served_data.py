"""Served data: no roots means no folder at all, failed runs name nothing inside a data folder, Cats vs Dogs is
never downloaded for a visitor, and a path no folder can have (a link loop, a NUL byte) reads as missing."""

import contextlib
import json
import pickle

import pytest
from PIL import Image

from gapdemo import runs
from gapdemo.config import tiny_config
from gapdemo.data.audience import serving_visitors, work_is_served
from gapdemo.data.checks import DataError
from gapdemo.data.roots import FOLDER_OFF_SENTENCE, ROOTS_VARIABLE
from gapdemo.data.tfds_folder import CATS_VS_DOGS_OFF_SENTENCE, TFDS_NAME, not_prepared_sentence
from gapdemo.validation import validate_run_config

SECRET_NAMES = ("alpha_secrets", "beta_diary", "gamma_tax", "holiday_photo")  # in the folders below, never in a message


def config_for(dataset, data_dir, runs_dir="runs"):
    config = tiny_config(str(runs_dir), ("gap",))
    config.data.dataset, config.data.data_dir = dataset, None if data_dir is None else str(data_dir)
    return config


def write_photos(folder, count=6, prefix="holiday_photo"):
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.new("RGB", (40, 40), (index * 30, 90, 160)).save(folder / f"{prefix}_{index}.jpg")


@pytest.fixture
def served_process(monkeypatch):
    """This process is served by the operator's word (GAPDEMO_SERVED=1), as a served page's child processes are."""
    monkeypatch.setenv("GAPDEMO_SERVED", "1")


# ----- no roots: the synthetic set alone -----
def test_a_served_gate_without_roots_refuses_a_folder_under_home_in_one_sentence(tmp_path, monkeypatch):
    monkeypatch.delenv(ROOTS_VARIABLE, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    write_photos(tmp_path / "pets" / "cat")
    write_photos(tmp_path / "pets" / "dog")
    for typed in ("~/pets", tmp_path / "pets"):
        assert validate_run_config(config_for("folder", typed), served=True) == [FOLDER_OFF_SENTENCE]
        assert validate_run_config(config_for("folder", typed), served=False) == []  # a local page reads it
    (tmp_path / "tensorflow_datasets").mkdir()
    assert validate_run_config(config_for("cats_vs_dogs", None), served=True) == [CATS_VS_DOGS_OFF_SENTENCE]
    assert CATS_VS_DOGS_OFF_SENTENCE == ("On a served page the Cats vs Dogs data set is off until the operator lists "
                                         "data folders in GAPDEMO_DATA_ROOTS and prepares it in one.")
    assert validate_run_config(config_for("synthetic", None), served=True) == []


# ----- a path no folder can have -----
@pytest.fixture
def link_loop(tmp_path):
    """tmp/roots/loop -> tmp/roots/back -> tmp/roots/loop."""
    (tmp_path / "roots").mkdir()
    (tmp_path / "roots" / "loop").symlink_to(tmp_path / "roots" / "back")
    (tmp_path / "roots" / "back").symlink_to(tmp_path / "roots" / "loop")
    return tmp_path / "roots" / "loop"


@pytest.mark.parametrize("roots", ["none", "set"])
def test_a_link_loop_or_a_nul_byte_reads_as_a_missing_folder(link_loop, tmp_path, monkeypatch, roots):
    if roots == "set":
        monkeypatch.setenv(ROOTS_VARIABLE, str(tmp_path / "roots"))
    else:
        monkeypatch.delenv(ROOTS_VARIABLE, raising=False)
    for typed in (str(link_loop), str(link_loop / "inside"), str(tmp_path / "roots" / "pets\0cat")):
        assert validate_run_config(config_for("folder", typed), served=False) == [f"The folder {typed} does not exist."]
        tfds_problems = validate_run_config(config_for("cats_vs_dogs", typed), served=False)
        assert tfds_problems == [f"The TFDS data directory {typed} does not exist."]
        if roots == "set":
            assert validate_run_config(config_for("folder", typed), served=True) == [
                f"The folder {typed} does not exist."]


def test_the_folder_loader_says_missing_for_a_link_loop_and_a_nul_byte(link_loop, tmp_path):
    from gapdemo.data.folder import scan_folder

    for typed in (str(link_loop), str(tmp_path / "pets\0cat")):
        with pytest.raises(DataError, match="does not exist"):
            scan_folder(typed)


def test_a_root_that_loops_opens_nothing(link_loop, tmp_path, monkeypatch):
    from gapdemo.data.roots import allowed_roots

    monkeypatch.setenv(ROOTS_VARIABLE, str(link_loop))
    assert allowed_roots(served=True) == ()
    assert validate_run_config(config_for("folder", link_loop), served=True) == [FOLDER_OFF_SENTENCE]


# ----- Cats vs Dogs: a served visitor reads only a prepared copy -----
def prepared_copy(tfds_dir):
    """What TFDS's is_prepared asks for: <data dir>/cats_vs_dogs/<its version>/dataset_info.json."""
    import tensorflow_datasets as tfds

    version_folder = tfds_dir / TFDS_NAME / str(tfds.builder_cls(TFDS_NAME).VERSION)
    version_folder.mkdir(parents=True)
    (version_folder / "dataset_info.json").write_text("{}")


def test_a_served_gate_reads_cats_vs_dogs_only_where_it_is_prepared(tmp_path, monkeypatch):
    monkeypatch.setenv(ROOTS_VARIABLE, str(tmp_path / "roots"))
    tfds_dir = tmp_path / "roots" / "tfds"
    tfds_dir.mkdir(parents=True)
    config = config_for("cats_vs_dogs", tfds_dir)
    assert validate_run_config(config, served=True) == [not_prepared_sentence(str(tfds_dir))]
    assert validate_run_config(config, served=False) == []  # the operator's own page may prepare it
    assert not_prepared_sentence("~/data") == (
        "Cats vs Dogs is not prepared in ~/data, and a served page never downloads a data set: the operator "
        "prepares it once with `python -m gapdemo data --dataset cats_vs_dogs --data-dir ~/data` on the server.")
    prepared_copy(tfds_dir)
    assert validate_run_config(config, served=True) == []


@pytest.mark.parametrize("how", ["GAPDEMO_SERVED=1", "a served run in a shared worker"])
def test_a_served_cats_vs_dogs_load_never_downloads(tmp_path, monkeypatch, how):
    import tensorflow_datasets as tfds

    from gapdemo.data import cats_vs_dogs
    from gapdemo.data.sources import load_splits

    def no_download(*args, **kwargs):
        raise AssertionError("a served load tried to download or prepare Cats vs Dogs")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_download)
    monkeypatch.setattr(cats_vs_dogs, "host_reachable", no_download)
    monkeypatch.setattr(cats_vs_dogs, "prepare", no_download)
    config = config_for("cats_vs_dogs", tmp_path / "tfds").data
    monkeypatch.setenv("GAPDEMO_SERVED", "1" if how == "GAPDEMO_SERVED=1" else "0")
    with serving_visitors(True) if how != "GAPDEMO_SERVED=1" else contextlib.nullcontext():
        with pytest.raises(DataError) as refused:
            load_splits(config)
    assert str(refused.value) == not_prepared_sentence(str(tmp_path / "tfds"))
    assert not (tmp_path / "tfds" / "downloads").exists()


# ----- failed folder runs name nothing inside the folder -----
def three_class_folders(folder):
    for name in SECRET_NAMES[:3]:
        write_photos(folder / name, count=2)


def undecodable_images(folder):
    for name in SECRET_NAMES[:2]:
        (folder / name).mkdir(parents=True)
        for index in range(3):
            (folder / name / f"holiday_photo_{index}.jpg").write_bytes(b"not a photo at all")


def an_empty_class_folder(folder):
    write_photos(folder / SECRET_NAMES[0], count=2)
    (folder / SECRET_NAMES[1]).mkdir()
    (folder / SECRET_NAMES[1] / "holiday_photo_notes.txt").write_text("no images here")


def class_names_differing_in_case(folder):
    write_photos(folder / "alpha_secrets", count=2)
    write_photos(folder / "ALPHA_SECRETS", count=2)


@pytest.mark.parametrize("process_word", ["1", "0"], ids=["served process", "page's worker"])
@pytest.mark.parametrize("arrange", [three_class_folders, undecodable_images, an_empty_class_folder,
                                     class_names_differing_in_case], ids=lambda arrange: arrange.__name__)
def test_a_failed_folder_run_in_a_served_process_names_no_file_or_sub_folder(arrange, process_word, tmp_path,
                                                                              monkeypatch):
    """Trained as the page's training worker trains (TrainingJob.run), on a folder the gate lets through: in a
    served page's child process (GAPDEMO_SERVED=1) and in the page's worker, which trains for the operator
    too (GAPDEMO_SERVED=0) and is told per run."""
    from gapdemo.training.job import TrainingJob

    monkeypatch.setenv("GAPDEMO_SERVED", process_word)

    folder = tmp_path / "roots" / "class_photos"
    arrange(folder)
    monkeypatch.setenv(ROOTS_VARIABLE, str(tmp_path / "roots"))
    monkeypatch.setenv("GAPDEMO_CACHE_DIR", str(tmp_path / "cache"))
    job = TrainingJob(config_for("folder", folder, tmp_path / "runs"), served=True)
    assert job.run() == "failed"
    message = runs.read_status(job.run_dir)["message"]
    written = {name: (job.run_dir / name).read_text() for name in ("status.json", "log.txt", "config.json")}
    assert "the operator sees the details with `python -m gapdemo data --dataset folder" in message
    assert message in json.loads(written["status.json"])["message"] and message in written["log.txt"]
    assert "Traceback" not in written["log.txt"] and str(tmp_path) not in written["log.txt"]  # no server path
    for name in (*SECRET_NAMES, "ALPHA_SECRETS"):
        assert all(name not in text for text in written.values()), name
    assert job.snapshot().message == message


def test_the_same_failure_names_the_folders_for_the_operator(served_process, tmp_path, monkeypatch):
    from gapdemo.data.folder import scan_folder

    three_class_folders(tmp_path / "photos")
    monkeypatch.setenv("GAPDEMO_SERVED", "0")
    with pytest.raises(DataError) as refused:
        scan_folder(str(tmp_path / "photos"))
    assert all(name in str(refused.value) for name in SECRET_NAMES[:3])
    with serving_visitors(True):  # the page's worker around a served visitor's run
        assert work_is_served()
        assert not any(name in str(refused.value) for name in SECRET_NAMES[:3])
    assert not work_is_served()
    assert pickle.loads(pickle.dumps(refused.value)).public == refused.value.public  # a Ray task's error keeps both


def test_skipped_files_go_unnamed_in_served_work(tmp_path):
    from gapdemo.data.sources import load_splits

    for name in ("cat", "dog"):
        write_photos(tmp_path / "photos" / name, count=10, prefix=f"{name}_ok")
        (tmp_path / "photos" / name / "holiday_photo_broken.jpg").write_bytes(b"\xff\xd8 broken")
    config = config_for("folder", tmp_path / "photos").data
    config.train_size, config.cache_dir = None, str(tmp_path / "cache")
    _, operator_info = load_splits(config)
    assert {entry["path"].rsplit("/", 1)[-1] for entry in operator_info.skipped} == {"holiday_photo_broken.jpg"}
    with serving_visitors(True):
        _, visitor_info = load_splits(config)  # from the cache entry, whose meta.json keeps the names
    assert len(visitor_info.skipped) == 2 and "holiday_photo" not in json.dumps(visitor_info.to_dict())


def test_a_clusters_workers_learn_that_the_work_is_served(monkeypatch):
    """A cluster's workers do not inherit the driver's environment: the runtime environment carries the word."""
    from gapdemo.cluster.connection import cluster_runtime_env

    monkeypatch.setenv("GAPDEMO_SERVED", "1")
    assert cluster_runtime_env()["env_vars"]["GAPDEMO_SERVED"] == "1"
    monkeypatch.delenv("GAPDEMO_SERVED")
    assert "GAPDEMO_SERVED" not in cluster_runtime_env()["env_vars"]
