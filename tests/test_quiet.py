"""TensorFlow's start-up lines stay off the CLI's stderr unless asked for; the CLI's own output stays."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gapdemo.quiet import startup_lines_filtered, without_startup_lines

REPO = Path(__file__).resolve().parents[1]
STARTUP_WORDS = ("oneDNN", "cuda", "cuInit", "absl", "cpu_feature_guard", "rebuild TensorFlow")


def gapdemo_cli(*arguments, **environment):
    env = {key: value for key, value in os.environ.items() if key not in ("GAPDEMO_TF_LOGS", "TF_CPP_MIN_LOG_LEVEL")}
    return subprocess.run([sys.executable, "-m", "gapdemo", *arguments], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**env, **environment})


def test_startup_lines_are_removed_and_everything_else_kept():
    text = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1795783654.447712   22044 port.cc:153] oneDNN custom operations are on.\n"
        "\repoch 1/10 [###   ] 120 img/s E0000 00:00:1795783657.567569   22044 cuda_platform.cc:52] failed call to cuInit\n"
        "2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not find cuda drivers\n"
        "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow.\n"
        "Traceback (most recent call last):\n"
        "\rloading data: drawing"
    )
    assert without_startup_lines(text) == (
        "\repoch 1/10 [###   ] 120 img/s \nTraceback (most recent call last):\n\rloading data: drawing")


def test_native_writes_inside_the_filter_come_back_except_startup_lines(capfd):
    with startup_lines_filtered():
        os.write(2, b"I0000 00:00:1795783654.447712   22044 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"a real native error\n")
        print("python says hello", file=sys.stderr)
    assert capfd.readouterr().err.splitlines() == ["python says hello", "a real native error"]


@pytest.mark.parametrize("verbose, environment", [(False, {}), (True, {}), (False, {"GAPDEMO_TF_LOGS": "false"})],
                         ids=["quiet", "verbose", "tf-logs-false"])
def test_the_cli_keeps_tensorflows_startup_lines_off_stderr_unless_asked(verbose, environment):
    """GAPDEMO_TF_LOGS=false once turned the lines on (any value but 0 did)."""
    completed = gapdemo_cli(*(["--verbose"] if verbose else []), "params", "--backends", "gap", "--image-size", "32",
                            **environment)
    assert completed.returncode == 0, completed.stderr
    shown = [word for word in STARTUP_WORDS if word in completed.stderr]
    if verbose:
        assert shown, completed.stderr  # asked for: TensorFlow's own lines are there
    else:
        assert not shown and completed.stderr.strip() == "", completed.stderr


# What a piped run may print on stderr: its phases, each finished epoch (100% and its rate) with its
# rows, a heartbeat in a phase over a minute long (a slow machine), and how the run ended.
PIPED_LINE = re.compile(
    r"loading data|compiling the training step \(a few seconds\)"
    r"|epoch [12]/2: 100% \(4/4 batches, \d+ img/s\)|  epoch [12] gap: acc \d\.\d{3} val_acc \d\.\d{3}"
    r"|epoch [12]/2: \d{1,2}% \(.+\)|loading data: .+|run finished after 2/2 epochs")


def test_a_piped_training_run_prints_each_phase_and_each_finished_epoch_on_lines_of_their_own(tmp_path):
    completed = gapdemo_cli("train", "--image-size", "32", "--train-size", "64", "--epochs", "2", "--batch-size", "16",
                            "--backends", "gap", "--runs-dir", str(tmp_path))
    assert completed.returncode == 0, completed.stderr
    assert not [word for word in STARTUP_WORDS if word in completed.stderr], completed.stderr
    lines = completed.stderr.splitlines()
    assert "\r" not in completed.stderr and all(lines), completed.stderr  # nothing redrawn, no empty line
    assert [line for line in lines if not PIPED_LINE.fullmatch(line)] == [], completed.stderr  # no fragments
    assert lines.count("loading data") == 1, completed.stderr
    assert lines.count("compiling the training step (a few seconds)") == 1, completed.stderr
    for epoch in (1, 2):  # however short the epoch: from its own record, not from a lucky poll
        assert len([line for line in lines if line.startswith(f"epoch {epoch}/2: 100% (4/4 batches, ")]) == 1
    assert lines[-1] == "run finished after 2/2 epochs", completed.stderr
    assert completed.stdout.startswith("run ") and "img/s" not in completed.stdout  # results apart from progress
