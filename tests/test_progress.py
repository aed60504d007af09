"""The CLI's progress on stderr (train, train --address, claims): tqdm bars on a terminal, plain lines when
piped, each finished epoch at 100% with its rate however short; and a phase in words, one function for
the CLI and the page."""

import io
import re

import pytest

from gapdemo.commands import progress as cli_progress
from gapdemo.training.phases import PHASE_WORDS, phase_text, phase_words


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr does in one (a UTF-8 one: tqdm draws blocks)."""

    encoding = "utf-8"

    def isatty(self):
        return True


class SizedTerminal(Terminal):
    def fileno(self):
        return 2


def epoch_progress(epoch, batch, phase="training", rate=800.0, epochs=2, batches=4, eta=3.0):
    return {"phase": phase, "epoch": epoch, "epochs": epochs, "batch": batch, "batches_per_epoch": batches,
            "images_per_second": rate, "eta_seconds": eta}


def epoch_rows(epoch, backends=("fc", "gap")):
    return [{"backend": b, "epoch": epoch, "loss": 0.6, "accuracy": 0.5, "val_loss": 0.7, "val_accuracy": 0.55}
            for b in backends]


def test_time_left_reads_like_the_page():
    assert cli_progress.format_time_left(None) == ""
    assert cli_progress.format_time_left(float("nan")) == ""
    assert cli_progress.format_time_left(42.4) == "42 s left"
    assert cli_progress.format_time_left(125) == "2 min 05 s left"


def test_bars_on_a_terminal_lines_anywhere_else(monkeypatch):
    closed = io.StringIO()
    closed.close()
    assert cli_progress.is_terminal(Terminal())
    assert not cli_progress.is_terminal(io.StringIO()) and not cli_progress.is_terminal(closed)
    assert not cli_progress.is_terminal(object())  # no isatty at all
    assert cli_progress.RunProgress(2, stream=Terminal()).live
    assert not cli_progress.RunProgress(2, stream=io.StringIO()).live
    assert cli_progress.StepProgress(stream=Terminal()).live and not cli_progress.StepProgress(stream=io.StringIO()).live
    # By default the choice follows whatever sys.stderr is when asked (gapdemo.quiet swaps it while TF loads).
    monkeypatch.setattr("sys.stderr", Terminal())
    assert cli_progress.RunProgress(2).live and cli_progress.is_terminal(cli_progress.STDERR)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not cli_progress.RunProgress(2).live


def test_a_terminal_that_reports_no_size_still_gets_a_bar(monkeypatch):
    monkeypatch.setattr(cli_progress.os, "get_terminal_size", lambda fd: (0, 0))  # a bare pseudo-terminal
    assert cli_progress.bar_size(SizedTerminal()) == {"ncols": 100, "nrows": 24}
    monkeypatch.setattr(cli_progress.os, "get_terminal_size", lambda fd: (120, 40))
    assert cli_progress.bar_size(SizedTerminal()) == {"dynamic_ncols": True}
    assert cli_progress.bar_size(Terminal()) == {"ncols": 100, "nrows": 24}  # no descriptor to ask


def test_piped_a_run_is_one_line_per_phase_and_per_finished_epoch():
    stream = io.StringIO()
    display = cli_progress.RunProgress(3, stream=stream)
    display.show({"phase": "loading data"})
    for done in range(1, 5):
        display.show({"phase": "loading data", "message": f"Drawing synthetic pets {done}/4", "fraction": done / 4})
    display.show(epoch_progress(1, 0, "compiling", rate=0.0, epochs=3))
    for batch in range(1, 5):
        display.show(epoch_progress(1, batch, epochs=3))
    display.show(epoch_progress(1, 4, "saving", rate=880.0, epochs=3))
    display.end_epoch(epoch_rows(1))
    display.show(epoch_progress(1, 4, "saving", epochs=3))  # late news of a finished epoch: nothing
    display.end_epoch(epoch_rows(2))  # an epoch no progress was seen for: 100% all the same
    display.finish("finished", "", 2)
    assert stream.getvalue().splitlines() == [
        "loading data",
        "compiling the training step (a few seconds)",
        "epoch 1/3: 100% (4/4 batches, 880 img/s)",
        "  epoch 1 fc: acc 0.500 val_acc 0.550",
        "  epoch 1 gap: acc 0.500 val_acc 0.550",
        "epoch 2/3: 100% (4/4 batches)",
        "  epoch 2 fc: acc 0.500 val_acc 0.550",
        "  epoch 2 gap: acc 0.500 val_acc 0.550",
        "run finished after 2/3 epochs",
    ]
    assert "\r" not in stream.getvalue()


def test_piped_a_long_phase_says_where_it_is_now_and_then(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(cli_progress.time, "monotonic", lambda: clock[0])
    stream = io.StringIO()
    display = cli_progress.RunProgress(2, stream=stream)
    display.show(epoch_progress(1, 0, "compiling", rate=0.0))
    clock[0] = 30.0
    display.show(epoch_progress(1, 1))  # too soon for another line
    clock[0] = 61.0
    display.show(epoch_progress(1, 2, rate=120.0, eta=125.0))
    assert stream.getvalue().splitlines() == [
        "compiling the training step (a few seconds)", "epoch 1/2: 50% (2/4 batches, 120 img/s, 2 min 05 s left)"]


@pytest.mark.parametrize("state, message, lines", [
    ("stopped", "Stopped by the user; completed epochs are kept.",
     ["run stopped after 1/2 epochs: Stopped by the user; completed epochs are kept."]),
    ("failed", "The disk is full.", ["run failed after 1/2 epochs", "error: The disk is full."]),
])
def test_the_run_says_how_it_ended(state, message, lines):
    stream = io.StringIO()
    display = cli_progress.RunProgress(2, stream=stream)
    display.show(epoch_progress(2, 1))
    display.finish(state, message, 1)
    assert stream.getvalue().splitlines() == lines


def test_on_a_terminal_each_epoch_is_a_bar_left_full_with_its_rate():
    stream = Terminal()
    display = cli_progress.RunProgress(2, stream=stream)
    display.show({"phase": "loading data", "message": "Data ready", "fraction": 1.0})
    display.show(epoch_progress(1, 0, "compiling", rate=0.0))
    display.show(epoch_progress(1, 2, rate=1500.0))
    display.show(epoch_progress(1, 4, "saving", rate=1591.0))
    display.end_epoch(epoch_rows(1, ("gap",)))
    display.end_epoch(epoch_rows(2, ("gap",)))  # ended before any progress of it was seen
    display.finish("finished", "", 2)
    screen = [part.split("\r")[-1].rstrip() for part in stream.getvalue().split("\n")]  # what stays on screen
    assert re.fullmatch(r"loading data 100%\|█+\| \[00:0\d, Data ready\]", screen[0]), screen
    assert re.fullmatch(r"epoch 1/2 100%\|█+\| 4/4 \[00:0\d, 1591 img/s\]", screen[1]), screen
    assert screen[2] == "  epoch 1 gap: acc 0.500 val_acc 0.550"
    assert re.fullmatch(r"epoch 2/2 100%\|█+\| 4/4 \[00:00\]", screen[3]), screen
    assert screen[4:] == ["  epoch 2 gap: acc 0.500 val_acc 0.550", "run finished after 2/2 epochs", ""]
    assert "compiling the training step" in stream.getvalue()  # shown in the bar while it lasted


def test_on_a_terminal_the_data_bar_ends_full_when_training_begins():
    stream = Terminal()
    display = cli_progress.RunProgress(1, stream=stream)
    display.show({"phase": "loading data", "message": "Decoding images 10/90", "fraction": 0.11})
    display.show(epoch_progress(1, 0, "compiling", rate=0.0, epochs=1))  # a poll missed the rest of the loading
    display.close()
    screen = [part.split("\r")[-1] for part in stream.getvalue().split("\n")]
    assert screen[0].startswith("loading data 100%|") and "Decoding" not in screen[0], screen


def test_a_polled_view_counts_an_epochs_last_progress_seen_with_its_rows():
    stream = io.StringIO()
    display = cli_progress.RunProgress(2, stream=stream)
    display.remember(epoch_progress(1, 4, "saving", rate=640.0))  # the same poll brings the epoch's rows
    display.end_epoch(epoch_rows(1, ("gap",)))
    display.restart("the run starts again from epoch 1 (attempt 2)")
    display.end_epoch(epoch_rows(1, ("gap",)))  # after a restart, epoch 1 is new again
    assert stream.getvalue().splitlines() == [
        "epoch 1/2: 100% (4/4 batches, 640 img/s)", "  epoch 1 gap: acc 0.500 val_acc 0.550",
        "the run starts again from epoch 1 (attempt 2)", "epoch 1/2: 100% (4/4 batches)", "  epoch 1 gap: acc 0.500 val_acc 0.550"]
    assert cli_progress.rows_by_epoch(epoch_rows(1) + epoch_rows(2)) == [epoch_rows(1), epoch_rows(2)]


def test_claims_piped_is_a_line_per_step_and_live_one_bar(monkeypatch):
    from gapdemo.claims.over_seeds import _epoch_text

    snapshot = {"a": {"state": "running", "progress": {"epoch": 3, "epochs": 10, "images_per_second": 90.0}},
                "b": {"state": "running", "progress": {"epoch": 4, "epochs": 10, "images_per_second": 85.0}}}
    assert _epoch_text(snapshot) == " (epoch 3/10, 175 images/s)"
    piped = io.StringIO()
    progress = cli_progress.StepProgress(stream=piped)
    progress("seed 1/1: timing one training step of fc", 0.0)
    progress("training 2 runs on Ray: 2 running, 0 finished" + _epoch_text(snapshot), 0.25)
    progress("training 2 runs on Ray: 2 running, 0 finished (epoch 4/10, 180 images/s)", 0.3)  # same step
    progress("training 2 runs on Ray: 1 running, 1 finished (epoch 9/10, 90 images/s)", 0.5)
    progress.end()
    assert piped.getvalue().splitlines() == [
        "  0% seed 1/1: timing one training step of fc",
        " 25% training 2 runs on Ray: 2 running, 0 finished (epoch 3/10, 175 images/s)",
        " 50% training 2 runs on Ray: 1 running, 1 finished (epoch 9/10, 90 images/s)"]
    terminal = Terminal()
    progress = cli_progress.StepProgress(stream=terminal)
    progress("training 2 runs on Ray" + _epoch_text(snapshot), 0.5)
    progress.end()
    shown = terminal.getvalue().rstrip("\n").split("\r")[-1]
    assert re.fullmatch(r" 50%\|█{10} {10}\| \[00:00<00:00, training 2 runs on Ray \(epoch 3/10, 175 images/s\)\]",
                        shown), shown


def test_a_phase_reads_the_same_on_the_cli_and_the_page():
    assert phase_text({"phase": "compiling"}) == "compiling the training step (a few seconds)"
    assert phase_text({"phase": "compiling"}, capitalized=True) == "Compiling the training step (a few seconds)"
    assert phase_text({"phase": "loading data", "message": "Decoding images 3/9"}) == "loading data: Decoding images 3/9"
    assert phase_text({"phase": "loading data"}) == phase_words("loading data") == "loading data"
    assert phase_words("something new") == "something new" and phase_words(None) == ""
    # every phase the trainer and the jobs publish has its words
    assert {"waiting", "starting", "loading data", "compiling", "training", "validating", "saving"} <= set(PHASE_WORDS)
