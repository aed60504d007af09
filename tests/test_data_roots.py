"""Data roots: paths typed into a served page are resolved and kept under the roots, refused like missing folders."""

import os
from pathlib import Path

import pytest

from gapdemo.config import tiny_config
from gapdemo.data.roots import (
    FOLDER_OFF_SENTENCE,
    ROOTS_VARIABLE,
    allowed_roots,
    is_readable_folder,
)
from gapdemo.serving import is_loopback_address
from gapdemo.validation import validate_run_config


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """tmp/root (the only data root) holding pets/, and tmp/outside/secret beside it."""
    (tmp_path / "root" / "pets").mkdir(parents=True)
    (tmp_path / "outside" / "secret").mkdir(parents=True)
    monkeypatch.setenv(ROOTS_VARIABLE, str(tmp_path / "root"))
    return tmp_path


def folder_problems(path, served=False) -> list[str]:
    config = tiny_config()
    config.data.dataset, config.data.data_dir = "folder", str(path)
    return validate_run_config(config, served=served)


@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.1.1", True),
    (None, False), ("", False), ("0.0.0.0", False), ("::", False), ("192.168.1.20", False), ("example.org", False),
])
def test_loopback_addresses(address, loopback):
    assert is_loopback_address(address) is loopback


def test_default_roots_none_when_local_and_no_folder_at_all_when_served(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert allowed_roots(served=False, environ={}) is None
    assert allowed_roots(served=True, environ={}) == ()  # not even the home folder
    two = f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}{os.pathsep}"
    assert allowed_roots(served=False, environ={ROOTS_VARIABLE: two}) == (tmp_path / "a", tmp_path / "b")


def test_folder_inside_root_is_accepted(tree):
    assert folder_problems(tree / "root" / "pets") == []
    assert folder_problems(tree / "root" / "pets" / ".." / "pets") == []


def test_dotdot_escape_reads_like_a_missing_folder(tree):
    escape = tree / "root" / ".." / "outside" / "secret"
    assert escape.is_dir()  # it exists: only the roots refuse it
    assert folder_problems(escape) == [f"The folder {escape} does not exist."]
    missing = tree / "root" / "no_such_folder"
    assert folder_problems(missing) == [f"The folder {missing} does not exist."]


def test_symbolic_link_out_of_a_root_reads_like_a_missing_folder(tree):
    link = tree / "root" / "link"
    link.symlink_to(tree / "outside" / "secret", target_is_directory=True)
    assert folder_problems(link) == [f"The folder {link} does not exist."]
    inner = tree / "root" / "inner_link"
    inner.symlink_to(tree / "root" / "pets", target_is_directory=True)
    assert folder_problems(inner) == []


def test_outside_answer_is_the_same_whether_or_not_it_exists(tree):
    outside = tree / "outside" / "secret"
    existing = folder_problems(outside)
    outside.rmdir()
    assert folder_problems(outside) == existing == [f"The folder {outside} does not exist."]


def test_cli_is_unrestricted_without_the_variable(tree, monkeypatch):
    monkeypatch.delenv(ROOTS_VARIABLE)
    assert folder_problems(tree / "outside" / "secret") == []
    assert folder_problems(tree / "outside" / "nothing") == [f"The folder {tree / 'outside' / 'nothing'} does not exist."]


def test_served_page_without_roots_reads_no_folder_not_even_under_home(tree, monkeypatch):
    monkeypatch.delenv(ROOTS_VARIABLE)
    monkeypatch.setenv("HOME", str(tree / "root"))
    for path in (tree / "root" / "pets", "~/pets", tree / "outside" / "secret", tree / "nothing", ""):
        assert folder_problems(path, served=True) == [FOLDER_OFF_SENTENCE]
    assert FOLDER_OFF_SENTENCE == ("On a served page the folder data set is off until the operator lists data "
                                   "folders in GAPDEMO_DATA_ROOTS.")
    assert folder_problems("~/pets", served=False) == []  # a local page still reads anywhere


def test_tfds_directory_must_be_under_a_root(tree):
    config = tiny_config()
    config.data.dataset = "cats_vs_dogs"
    config.data.data_dir = str(tree / "root" / "pets")
    assert validate_run_config(config, served=False) == []
    for refused in (tree / "outside" / "secret", tree / "root" / ".." / "outside" / "secret", tree / "root" / "nothing"):
        config.data.data_dir = str(refused)
        assert validate_run_config(config, served=False) == [f"The TFDS data directory {refused} does not exist."]


def test_readable_folder_refuses_files(tree):
    (tree / "root" / "notes.txt").write_text("not a folder")
    roots = (Path(tree / "root").resolve(),)
    assert not is_readable_folder(tree / "root" / "notes.txt", roots)
    assert is_readable_folder(tree / "root", roots)
