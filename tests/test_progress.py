"""The CLI's progress line: a bar rewritten in place, with the rate and the time left (train and claims)."""

import pytest

from gapdemo.commands import progress as cli_progress


def test_time_left_reads_like_the_page():
    assert cli_progress.format_time_left(None) == ""
    assert cli_progress.format_time_left(42.4) == "42 s left"
    assert cli_progress.format_time_left(125) == "2 min 05 s left"
    assert cli_progress.bar(0.5, 10) == "[#####     ]" and cli_progress.bar(2.0, 4) == "[####]"


def test_a_shorter_text_pads_over_the_longer_one_before_it(capsys):
    line = cli_progress.ProgressLine()
    line.show("epoch 1/10 [##   ] 120 img/s 2 min 05 s left")
    line.show("epoch 1/10 [###  ] 121 img/s")
    line.end()
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("\n") == 1
    assert err.split("\r")[-1].rstrip("\n") == "epoch 1/10 [###  ] 121 img/s".ljust(len("epoch 1/10 [##   ] 120 img/s 2 min 05 s left"))


def test_time_left_waits_for_a_few_percent_then_extrapolates(monkeypatch):
    clock = iter([100.0, 101.0, 110.0, 110.0])
    monkeypatch.setattr(cli_progress.time, "monotonic", lambda: next(clock))
    estimate = cli_progress.TimeLeft()  # started at 100 s
    assert estimate.seconds(0.5) is None  # 1 s in: too early to say
    assert estimate.seconds(0.25) == pytest.approx(30.0)  # 10 s for a quarter: 30 s for the rest
    assert estimate.seconds(1.0) is None


def test_claims_show_one_bar_with_epoch_rate_and_time_left(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    from gapdemo.claims.run import _epoch_text
    from gapdemo.commands.claims import _ProgressBar

    clock = iter([0.0, 30.0, 60.0])
    monkeypatch.setattr(cli_progress.time, "monotonic", lambda: next(clock))
    snapshot = {"a": {"state": "running", "progress": {"epoch": 3, "epochs": 10, "images_per_second": 90.0}},
                "b": {"state": "running", "progress": {"epoch": 4, "epochs": 10, "images_per_second": 85.0}}}
    assert _epoch_text(snapshot) == " (epoch 3/10, 175 images/s)"
    progress = _ProgressBar()
    progress("training 2 runs on Ray: 2 running, 0 finished" + _epoch_text(snapshot), 0.25)
    progress("training 2 runs on Ray: 2 running, 0 finished" + _epoch_text(snapshot), 0.5)
    progress.end()
    shown = capsys.readouterr().err.split("\r")[-1]
    assert shown.startswith("[##########          ]  50% · 1 min 00 s left · training 2 runs")
    assert "(epoch 3/10, 175 images/s)" in shown
