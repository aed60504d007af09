"""Every GAPDEMO_* variable by one rule (gapdemo.settings): the same words for booleans, one sentence for a bad
value, checked as the command line and the page start; the CLI and the page share GAPDEMO_RUNS_DIR; and
`import gapdemo` changes nothing in the importing process."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from gapdemo import quiet, settings
from gapdemo.cli import main

REPO = Path(__file__).resolve().parents[1]
BOOLEANS = [setting for setting in settings.SETTINGS if setting.parse is settings.parse_boolean]
# A value each rule refuses.
BAD_VALUES = {"GAPDEMO_SERVED": "maybe", "GAPDEMO_RUNS_DIR": "a\0b", "GAPDEMO_MAX_TRAINING": "0",
              "GAPDEMO_MAX_QUEUED": "many", "GAPDEMO_MAX_TRIALS": "-1", "GAPDEMO_WARM_WORKER": "2",
              "GAPDEMO_MAX_RUN_MEMORY": "lots", "GAPDEMO_RUNS_MAX_BYTES": "20 GB please",
              "GAPDEMO_MAX_RUN_MINUTES": "soon", "GAPDEMO_TRAINING_RATE": "0", "GAPDEMO_CPUS_PER_RUN": "0",
              "GAPDEMO_GPUS_PER_RUN": "-1", "GAPDEMO_RAY_ADDRESS": "nowhere", "GAPDEMO_CACHE_DIR": "a\0b",
              "GAPDEMO_CACHE_MAX_BYTES": "abc", "GAPDEMO_DATA_ROOTS": "a\0b", "GAPDEMO_OPERATOR_DIR": "a\0b",
              "GAPDEMO_TF_LOGS": "verbose", "GAPDEMO_CHROMIUM": "a\0b"}


@pytest.mark.parametrize("setting", BOOLEANS, ids=lambda setting: setting.name)
def test_every_boolean_takes_the_same_words(setting):
    for words, expected in ((settings.TRUE_WORDS, True), (settings.FALSE_WORDS, False)):
        for word in words:
            for text in (word, word.upper(), f" {word.capitalize()} "):
                assert setting.read({setting.name: text}) is expected
    assert setting.read({}) == setting.read({setting.name: "  "}) == setting.default


@pytest.mark.parametrize("setting", settings.SETTINGS, ids=lambda setting: setting.name)
def test_a_bad_value_is_one_sentence_naming_the_variable_and_the_value(setting):
    bad = BAD_VALUES[setting.name]
    with pytest.raises(settings.SettingsError) as refused:
        setting.read({setting.name: bad})
    sentence = str(refused.value)
    assert isinstance(refused.value, ValueError)
    assert sentence.startswith(f"{setting.name} must be ") and sentence.endswith(f", got {bad!r}.")
    assert setting.read({}) == setting.default  # unset: the default


def test_the_table_names_every_variable_once_with_its_meaning():
    names = [setting.name for setting in settings.SETTINGS]
    assert len(names) == len(set(names)) and set(names) == set(BAD_VALUES)
    assert all(setting.name.startswith("GAPDEMO_") and setting.meaning for setting in settings.SETTINGS)


def test_sizes_counts_and_addresses():
    assert settings.cache_max_bytes({"GAPDEMO_CACHE_MAX_BYTES": "2e10"}) == 2 * 10**10
    assert settings.cache_max_bytes({"GAPDEMO_CACHE_MAX_BYTES": "512M"}) == 512 * 2**20
    assert settings.max_training({}) is None and settings.max_training({"GAPDEMO_MAX_TRAINING": "3"}) == 3
    assert settings.data_roots({"GAPDEMO_DATA_ROOTS": f"/a{os.pathsep} {os.pathsep}/b"}) == ("/a", "/b")
    for address in ("10.0.0.5:6379", "ray://head:10001", "auto", "[::1]:6379"):
        assert settings.ray_address({"GAPDEMO_RAY_ADDRESS": address}) == address


def test_check_all_stops_at_the_first_bad_variable(monkeypatch):
    monkeypatch.setenv("GAPDEMO_CACHE_MAX_BYTES", "abc")  # once silently the default
    with pytest.raises(settings.SettingsError, match=r"^GAPDEMO_CACHE_MAX_BYTES must be a size .*, got 'abc'\.$"):
        settings.check_all()
    monkeypatch.delenv("GAPDEMO_CACHE_MAX_BYTES")
    settings.check_all()


@pytest.mark.parametrize("text, wanted", [("false", False), ("0", False), ("off", False), ("", False),
                                          ("1", True), ("yes", True), ("TRUE", True)])
def test_tensorflow_logs_are_shown_only_when_asked(monkeypatch, text, wanted):
    """GAPDEMO_TF_LOGS=false once turned the logs on (anything but 0 did)."""
    monkeypatch.setenv("GAPDEMO_TF_LOGS", text)
    assert quiet.tensorflow_logs_wanted() is wanted


def test_the_cli_stops_at_start_with_one_line_naming_the_variable(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("GAPDEMO_CACHE_MAX_BYTES", "abc")
    assert main(["runs", "--runs-dir", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("error: GAPDEMO_CACHE_MAX_BYTES must be a size such as 20GB, 8G or 512M, got 'abc'.\n")


def test_the_cli_and_the_page_read_runs_from_gapdemo_runs_dir(monkeypatch, capsys, tmp_path):
    """The page read GAPDEMO_RUNS_DIR, while the CLI's --runs-dir defaulted to runs: they could see different runs."""
    from test_runs import make_run

    from dashboard.common import runs_dir
    from gapdemo.cli import build_parser

    elsewhere = tmp_path / "elsewhere"
    make_run(elsewhere, "20260101-000000-0001", "finished")
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(elsewhere))
    assert main(["runs", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["runs_dir"] == str(elsewhere) == runs_dir()
    assert [row["run_id"] for row in listing["runs"]] == ["20260101-000000-0001"]
    for command in (["evaluate", "x"], ["classify", "photo.jpg"], ["export", "--to", "out"], ["train"], ["claims"],
                    ["sweep"]):
        assert build_parser().parse_args(command).runs_dir == str(elsewhere), command


def test_importing_gapdemo_changes_nothing_in_the_process():
    """No import hook and no TF_CPP_MIN_LOG_LEVEL for whoever imports gapdemo (a Ray worker, a notebook); the
    command line sets both as it starts."""
    script = ("import json, os, sys\n"
              "before = list(sys.meta_path)\n"
              "import gapdemo, gapdemo.cli, gapdemo.quiet, gapdemo.settings\n"
              "imported = {'level': os.environ.get('TF_CPP_MIN_LOG_LEVEL'), 'hooks': len(sys.meta_path) - len(before)}\n"
              "gapdemo.cli.main(['runs', '--runs-dir', sys.argv[1]])\n"
              "started = {'level': os.environ.get('TF_CPP_MIN_LOG_LEVEL'),\n"
              "           'hook': any(type(h).__module__ == 'gapdemo.quiet' for h in sys.meta_path)}\n"
              "print(json.dumps([imported, started]))\n")
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("TF_CPP_MIN_LOG_LEVEL", "GAPDEMO_TF_LOGS")}
    completed = subprocess.run([sys.executable, "-c", script, str(REPO / "no-runs-here")], cwd=REPO,
                               capture_output=True, text=True, timeout=120, env=environment)
    assert completed.returncode == 0, completed.stderr
    imported, started = json.loads(completed.stdout.splitlines()[-1])
    assert imported == {"level": None, "hooks": 0}
    assert started == {"level": "2", "hook": True}


def readme_variables() -> list[str]:
    """The names in README.md's table of variables: rows that start with | `GAPDEMO_...` |."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^\| `(GAPDEMO_[A-Z_]+)` \|", text, flags=re.M)


def test_the_readme_table_lists_every_variable_and_no_other():
    listed = readme_variables()
    assert len(listed) == len(set(listed))
    assert set(listed) == {setting.name for setting in settings.SETTINGS}


def test_the_page_stops_at_start_with_the_sentence_and_no_exception(monkeypatch, tmp_path):
    monkeypatch.setenv("GAPDEMO_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("GAPDEMO_CACHE_MAX_BYTES", "abc")
    st.cache_resource.clear()
    page = AppTest.from_file("../app.py", default_timeout=120)
    page.run()
    assert not page.exception
    assert [error.value for error in page.error] == [
        "GAPDEMO_CACHE_MAX_BYTES must be a size such as 20GB, 8G or 512M, got 'abc'."]
    assert not page.tabs  # stopped before anything else was drawn
