"""The run folder: live and dead writers on every platform, the history's order, half-written CSV lines."""

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from gapdemo import runs
from gapdemo.cli import main
from gapdemo.config import tiny_config

REPO_ROOT = Path(__file__).resolve().parents[1]
# Another process writing a run: its status names itself, then it lives on as a trainer would.
WRITER = """
import sys, time
from pathlib import Path
from gapdemo import runs
runs.write_status(Path(sys.argv[1]), "running", epochs_completed=1)
print("written", flush=True)
time.sleep(300)
"""


def make_run(runs_dir, run_id, state=None, message="", epochs_completed=0, models=False) -> Path:
    """A run folder written by hand: config.json, and status.json (this process as its writer) when state is given."""
    run_dir = Path(runs_dir) / run_id
    run_dir.mkdir(parents=True)
    runs.write_json_atomic(run_dir / "config.json", tiny_config(str(runs_dir)).to_dict())
    if state is not None:
        runs.write_status(run_dir, state, message, epochs_completed)
    if models:
        (run_dir / "models").mkdir()
        (run_dir / "models" / "gap.keras").write_bytes(b"a model")
    return run_dir


@pytest.fixture
def writer(runs_dir):
    """(run folder, process) of a run that another live Python process is writing."""
    run_dir = make_run(runs_dir, "20260101-000000-aaaa")
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(run_dir)], cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "written"
        yield run_dir, process
    finally:
        process.kill()
        process.wait(30)


def test_a_run_written_by_another_live_process_is_running_until_that_process_dies(writer, runs_dir):
    run_dir, process = writer
    assert runs.read_json(run_dir / "status.json")["process"].startswith(f"{process.pid}@")
    (summary,) = runs.list_runs(runs_dir)
    assert summary.state == "running" and summary.message == ""
    process.kill()
    process.wait(30)
    (summary,) = runs.list_runs(runs_dir)
    assert summary.state == "interrupted" and "ended before it finished" in summary.message
    assert summary.epochs_completed == 1


@pytest.mark.posix
def test_a_killed_writer_not_yet_reaped_is_dead(writer, runs_dir):
    """A killed child stays a zombie until its parent waits for it; it writes nothing more."""
    run_dir, process = writer
    process.kill()
    deadline = time.monotonic() + 30
    while psutil.Process(process.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert runs.read_status(run_dir)["state"] == "interrupted"


def test_a_run_of_this_process_is_running_without_reading_proc(runs_dir, monkeypatch):
    """macOS and Windows have no /proc: the writer check must not need it."""
    real_open = open

    def open_without_proc(path, *args, **kwargs):
        if str(path).startswith("/proc"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(runs.liveness, "open", open_without_proc, raising=False)  # runs' own reads only, not psutil's
    make_run(runs_dir, "20260101-000000-bbbb", "running")
    assert runs.process_token() is not None
    assert [summary.state for summary in runs.list_runs(runs_dir)] == ["running"]


def test_a_reused_pid_is_caught_by_its_start_time(runs_dir):
    started = psutil.Process().create_time()
    pid = os.getpid()
    assert runs.token_is_alive(f"{pid}@{started:.2f}")
    assert runs.token_is_alive(f"{pid}@{started + 0.5:.2f}")  # two readings of the same start time
    assert not runs.token_is_alive(f"{pid}@{started - 600:.2f}")  # the writer started 10 minutes earlier
    run_dir = make_run(runs_dir, "20260101-000000-cccc", "running")
    status = runs.read_json(run_dir / "status.json")
    runs.write_json_atomic(run_dir / "status.json", {**status, "process": f"{pid}@{started - 600:.2f}"})
    assert runs.read_status(run_dir)["state"] == "interrupted"


@pytest.mark.parametrize("token", [None, "", "garbage", "12@", "@12.5", "x@1.0", "-1@5.0", "99999999@1.0", 42])
def test_malformed_or_missing_tokens_are_dead_writers(token):
    assert runs.writer_is_alive({"process": token}) is False


def test_a_run_whose_token_predates_psutil_reads_as_interrupted(runs_dir):
    """'pid:ticks' tokens (written before psutil) name no writer any more, even this live process."""
    run_dir = make_run(runs_dir, "20260101-000000-eeee", "running")
    status = runs.read_json(run_dir / "status.json")
    runs.write_json_atomic(run_dir / "status.json", {**status, "process": f"{os.getpid()}:12345"})
    assert runs.read_status(run_dir)["state"] == "interrupted"


def test_finished_failed_and_stopped_runs_keep_their_state_whoever_wrote_them(runs_dir):
    for index, state in enumerate(("finished", "failed", "stopped")):
        run_dir = make_run(runs_dir, f"20260101-00000{index}-dddd", state, message=f"{state} message")
        status = runs.read_json(run_dir / "status.json")
        runs.write_json_atomic(run_dir / "status.json", {**status, "process": "1@1.00"})  # long gone
    assert sorted(summary.state for summary in runs.list_runs(runs_dir)) == ["failed", "finished", "stopped"]


def test_history_lists_the_newest_run_first(runs_dir):
    for run_id in ("20260102-090000-0001", "20251231-235959-ffff", "20260102-100000-0000", "20260101-120000-abcd"):
        make_run(runs_dir, run_id, "finished")
    (runs_dir / "not-a-run").mkdir()  # no config.json: left out
    assert [summary.run_id for summary in runs.list_runs(runs_dir)] == [
        "20260102-100000-0000", "20260102-090000-0001", "20260101-120000-abcd", "20251231-235959-ffff"]


def test_a_run_without_models_is_never_the_default_run(runs_dir):
    older = make_run(runs_dir, "20260101-000000-0001", "finished", models=True)
    make_run(runs_dir, "20260102-000000-0002", "running")  # newer, but no models saved yet
    assert runs.resolve_run(None, runs_dir) == older
    newest = make_run(runs_dir, "20260103-000000-0003", "stopped", models=True)
    assert runs.resolve_run(None, runs_dir) == newest
    with pytest.raises(FileNotFoundError, match="train one first"):
        runs.resolve_run(None, runs_dir / "empty")


def write_metrics(run_dir, epochs):
    rows = [{"backend": backend, "epoch": epoch, "loss": 0.5, "accuracy": 0.75, "val_loss": 0.61,
             "val_accuracy": 0.7} for epoch in range(1, epochs + 1) for backend in ("fc", "gap")]
    runs.append_csv_rows(run_dir / "metrics.csv", runs.EPOCH_FIELDS, rows)
    return (run_dir / "metrics.csv").read_bytes()


def test_every_cut_of_a_half_written_last_line_reads_as_the_complete_rows(tmp_path):
    """A kill mid-append stops anywhere in the last row: the reader keeps exactly the rows before it."""
    data = write_metrics(tmp_path, 2)
    last_line = data.rstrip(b"\r\n").rfind(b"\n") + 1
    for cut in range(last_line, len(data)):  # from nothing of the last row to all of it but the line break
        (tmp_path / "metrics.csv").write_bytes(data[:cut])
        frame = runs.read_epoch_metrics(tmp_path)
        assert len(frame) == 3, data[last_line:cut]
        assert frame.val_accuracy.tolist() == [0.7] * 3 and frame.val_accuracy.dtype.kind == "f"
    (tmp_path / "metrics.csv").write_bytes(data)
    assert len(runs.read_epoch_metrics(tmp_path)) == 4


@pytest.mark.parametrize("content", [b"", b"backend,epo", b"backend,epoch,loss,accuracy,val_loss,val_accuracy\r\n"])
def test_a_csv_killed_before_its_first_row_is_empty_with_its_columns(tmp_path, content):
    (tmp_path / "metrics.csv").write_bytes(content)
    frame = runs.read_epoch_metrics(tmp_path)
    assert frame.empty and list(frame.columns) == list(runs.EPOCH_FIELDS)


def test_runs_command_explains_failed_and_interrupted_runs(runs_dir, capsys):
    make_run(runs_dir, "20260101-000000-0001", "failed", message="The folder /x does not exist.")
    interrupted = make_run(runs_dir, "20260101-000000-0002", "running", epochs_completed=1)
    status = runs.read_json(interrupted / "status.json")
    runs.write_json_atomic(interrupted / "status.json", {**status, "process": "1@1.00"})
    make_run(runs_dir, "20260101-000000-0003", "finished")
    assert main(["runs", "--runs-dir", str(runs_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines if line.startswith("2026")] == [
        "20260101-000000-0003", "20260101-000000-0002", "20260101-000000-0001"]
    failed_line = next(i for i, line in enumerate(lines) if line.startswith("20260101-000000-0001"))
    assert "failed" in lines[failed_line] and lines[failed_line + 1].strip() == "The folder /x does not exist."
    interrupted_line = next(i for i, line in enumerate(lines) if line.startswith("20260101-000000-0002"))
    assert "interrupted" in lines[interrupted_line] and "1/1" in lines[interrupted_line]
    assert "ended before it finished" in lines[interrupted_line + 1]


def test_a_replace_refused_while_a_reader_holds_the_file_is_tried_again(tmp_path, monkeypatch):
    """Windows refuses os.replace onto a file another process holds open; the writer waits for the reader."""
    monkeypatch.setattr(runs.atomic, "REPLACE_ATTEMPTS", 20)  # as on Windows
    monkeypatch.setattr(runs.atomic, "REPLACE_PAUSE_S", 0.001)
    real_replace, refusals = os.replace, []

    def held_open(times):
        def replace(source, target):
            if len(refusals) < times:
                refusals.append(target)
                raise PermissionError(13, "The process cannot access the file: it is being used by another process")
            return real_replace(source, target)
        return replace

    monkeypatch.setattr(os, "replace", held_open(2))
    runs.write_json_atomic(tmp_path / "status.json", {"state": "running"})
    assert runs.read_json(tmp_path / "status.json") == {"state": "running"} and len(refusals) == 2
    refusals.clear()
    monkeypatch.setattr(os, "replace", held_open(100))  # a reader that never lets go
    with pytest.raises(PermissionError):
        runs.write_json_atomic(tmp_path / "status.json", {"state": "finished"})
    assert len(refusals) == 20 and runs.read_json(tmp_path / "status.json") == {"state": "running"}
    assert [path.name for path in tmp_path.iterdir()] == ["status.json"]  # no temp file left behind


def test_a_write_failing_half_way_leaves_the_old_file_whole_and_no_temp_file(tmp_path):
    runs.write_json_atomic(tmp_path / "status.json", {"state": "running"})

    def half_then_full(handle):
        handle.write(b'{"state": "fin')
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        runs.write_atomically(tmp_path / "status.json", half_then_full)
    assert runs.read_json(tmp_path / "status.json") == {"state": "running"}
    assert [path.name for path in tmp_path.iterdir()] == ["status.json"]


def test_a_runs_status_and_config_are_fsynced_file_and_folder(tmp_path, monkeypatch):
    """What a run needs after a power cut is on disk: the file's bytes, then the rename (the folder)."""
    synced, real_fsync = [], os.fsync

    def recording_fsync(descriptor):
        synced.append("folder" if stat.S_ISDIR(os.fstat(descriptor).st_mode) else "file")
        return real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    run_dir = runs.create_run_folder(tmp_path)
    runs.write_config(run_dir, {"train": {"epochs": 1}})
    runs.write_status(run_dir, "running")
    expected = ["file"] * 2 if os.name == "nt" else ["file", "folder"] * 2
    assert synced == expected


@pytest.mark.skipif(os.name == "nt", reason="Windows cannot replace a file that is open; see the test above")
def test_a_file_open_for_reading_is_replaced_under_its_reader(tmp_path):
    runs.write_json_atomic(tmp_path / "status.json", {"state": "running"})
    with open(tmp_path / "status.json", encoding="utf-8") as reader:
        runs.write_json_atomic(tmp_path / "status.json", {"state": "finished"})
        assert '"running"' in reader.read()  # the reader keeps the file it opened
    assert runs.read_json(tmp_path / "status.json") == {"state": "finished"}
    assert runs.REPLACE_ATTEMPTS == 1  # here a refusal is final: no second of retries


LOCALE_WRITER = """
import sys
from pathlib import Path
from gapdemo import runs
run_dir = Path(sys.argv[1])
runs.append_log(run_dir, "Folder /photos/K\\u00e4tzchen \\u2014 \\u732b not found\\n")
runs.append_csv_rows(run_dir / "metrics.csv", ["backend", "note"], [{"backend": "gap", "note": "\\u732b"}])
runs.write_json_atomic(run_dir / "status.json", {"message": "\\u732b"})
print(runs.read_json(run_dir / "status.json")["message"] == "\\u732b")
"""


@pytest.mark.skipif(os.name == "nt", reason="sets POSIX's C locale; Windows' code pages are the case it stands for")
def test_run_files_are_utf8_whatever_the_locale(tmp_path):
    """Under an ASCII locale (as under a Windows code page) a cat's name in a path must still be written."""
    environment = {**os.environ, "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    done = subprocess.run([sys.executable, "-c", LOCALE_WRITER, str(tmp_path)], cwd=REPO_ROOT, env=environment,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr[-2000:]
    assert (tmp_path / "log.txt").read_bytes() == "Folder /photos/Kätzchen — 猫 not found\n".encode()
    assert (tmp_path / "metrics.csv").read_bytes() == "backend,note\r\ngap,猫\r\n".encode()


def test_only_files_changed_since_the_last_pack_are_sent_and_they_rebuild_the_folder(tmp_path):
    """A sweep trial sends each epoch's new and changed files; appended and replaced files both count."""
    worker, home = tmp_path / "worker", tmp_path / "home"
    for folder in ("models", "probes"):
        (worker / folder).mkdir(parents=True)
    runs.write_json_atomic(worker / "config.json", {"epochs": 2})
    runs.write_bytes_atomic(worker / "models" / "gap.keras", b"epoch 1 weights")
    (worker / "metrics.csv").write_text("backend,epoch\ngap,1\n")
    (worker / ".status.json.123.tmp").write_text("half")  # a temp file is never sent
    first = runs.run_file_signatures(worker)
    assert set(first) == {"config.json", "models/gap.keras", "metrics.csv"}
    runs.unpack_run_folder(home, runs.pack_run_folder(worker))

    runs.write_bytes_atomic(worker / "models" / "gap.keras", b"epoch 2 weights")  # same size, new file
    with open(worker / "metrics.csv", "a") as csv_file:
        csv_file.write("gap,2\n")
    runs.write_bytes_atomic(worker / "probes" / "epoch_002.npz", b"probes")
    second = runs.run_file_signatures(worker)
    changed = [path for path, signature in second.items() if first.get(path) != signature]
    assert sorted(changed) == ["metrics.csv", "models/gap.keras", "probes/epoch_002.npz"]
    runs.unpack_run_folder(home, runs.pack_run_folder(worker, only=changed))
    assert runs.run_file_signatures(home).keys() == second.keys()
    for path in second:
        assert (home / path).read_bytes() == (worker / path).read_bytes()
