"""A run on disk: runs/<run_id>/ with config, status, metrics, models, probes and TensorBoard logs.

Layout of one run directory:
    config.json          RunConfig.to_dict() plus the data set's info
    status.json          state, message, epochs completed, the run's elapsed seconds, the writing process
    metrics.csv          backend, epoch, loss, accuracy, val_loss, val_accuracy (appended per epoch)
    batch_metrics.csv    backend, epoch, batch, step, loss, accuracy (appended per call into TensorFlow):
                         the raw values of the call's own batch (the mean of its batches when a call
                         trains several), not Keras' running mean since the epoch began; step = epoch
                         index + fraction of the epoch done. Runs written before 2026-11-27 hold the
                         running means there.
    models/<b>.keras     each back-end, saved after every epoch
    probes/images.npz    the probe images and labels; probes/epoch_NNN.npz per epoch
    tensorboard/<b>/     scalars per epoch (tensorboard --logdir runs)
    log.txt              what went wrong, with the traceback, when a run failed

Every whole-file write goes through a temp file + os.replace, and CSV rows are appended and
flushed as they happen, so a killed process loses at most the step in flight.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

# What a copy of a run (a zip bundle) takes from the folder when present; tensorboard/ stays out:
# it duplicates metrics.csv and grows with every epoch.
RUN_FILES = ("config.json", "status.json", "metrics.csv", "batch_metrics.csv", "log.txt")
RUN_FILE_PATTERNS = ("probes/*.npz", "models/*.keras")
METRIC_FILES = ("metrics.csv", "batch_metrics.csv")
EPOCH_FIELDS = ("backend", "epoch", "loss", "accuracy", "val_loss", "val_accuracy")
BATCH_FIELDS = ("backend", "epoch", "batch", "step", "loss", "accuracy")
ACTIVE_STATES = ("queued", "running", "stopping")
PROBE_KEYS = ("feature_averages", "dense_weights", "cams")


def new_run_id() -> str:
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


# Windows refuses to replace a file that another process holds open (the page reading status.json,
# the Classify tab loading a model); such a reader lets go within milliseconds, so there the writer
# tries again for up to a second. Elsewhere a file is replaced under its readers, and a refusal
# (a read-only folder) is final.
REPLACE_ATTEMPTS = 20 if os.name == "nt" else 1
REPLACE_PAUSE_S = 0.05


def replace_file(source: Path, target: Path) -> None:
    """os.replace(source, target), retried while the target is held open (Windows; see REPLACE_ATTEMPTS)."""
    for attempt in range(1, REPLACE_ATTEMPTS + 1):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if attempt == REPLACE_ATTEMPTS:
                raise
            time.sleep(REPLACE_PAUSE_S)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write data to path through a hidden temp file + replace_file; a failed write leaves no temp file."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        replace_file(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, values: dict) -> None:
    write_bytes_atomic(path, json.dumps(values, indent=2, default=str).encode())


def write_status(run_dir: Path, state: str, message: str = "", epochs_completed: int = 0,
                 elapsed_seconds: float = 0.0) -> None:
    """Write status.json atomically.

    elapsed_seconds is one run-level figure: every back-end trains in the same lockstep model, so
    a per-back-end time would repeat the same number.
    """
    run_dir = Path(run_dir)
    write_json_atomic(run_dir / "status.json", {
        "state": state, "message": message, "epochs_completed": int(epochs_completed),
        "elapsed_seconds": round(float(elapsed_seconds), 2),
        "process": process_token(), "updated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "created": run_dir.name[:15],
    })


def append_log(run_dir: Path, text: str) -> None:
    """Append text (a traceback, say) to the run's log.txt, creating the run folder if needed."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "log.txt", "a", encoding="utf-8") as handle:
        handle.write(text)


def append_csv_rows(path: Path, fields, rows) -> None:
    """Append rows (dicts) to a CSV, writing the header when the file is new."""
    path = Path(path)
    is_new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields), extrasaction="ignore")
        if is_new:
            writer.writeheader()
        writer.writerows(rows)
        handle.flush()


def save_model_atomic(model, path: Path) -> None:
    """Save a Keras model through a hidden temp file + os.replace; a failed save (a full disk) leaves
    the previous file whole and no temp file."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.tmp.keras")  # Keras insists on the .keras suffix
    try:
        model.save(temporary)
        replace_file(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def save_models_atomic(models: dict, models_dir: Path) -> None:
    """Save {backend: model} as models_dir/<backend>.keras, every back-end or none.

    Each model is first saved whole under a hidden name; only when all are written are they renamed
    into place (a rename takes no space), so a full disk mid-way leaves every back-end at the same,
    previous epoch instead of a mix of epochs.
    """
    models_dir = Path(models_dir)
    staged = {backend: models_dir / f".{backend}.staged.keras" for backend in models}
    try:
        for backend, model in models.items():
            save_model_atomic(model, staged[backend])
    except BaseException:
        for path in staged.values():
            path.unlink(missing_ok=True)
        raise
    for backend, path in staged.items():
        replace_file(path, models_dir / f"{backend}.keras")


def save_npz_atomic(path: Path, arrays: dict) -> None:
    """np.savez_compressed through a hidden temp file + os.replace; a failed write leaves no temp file."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.tmp.npz")
    try:
        np.savez_compressed(temporary, **arrays)
        replace_file(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# Two readings of one process's start time may differ a little: on Linux psutil adds the start ticks
# to a boot time read in whole seconds, which NTP can move by one. A pid reused by another process
# starts after the writer lived its life (minutes for a run), far more than this apart.
START_TIME_TOLERANCE_S = 2.0
PROC_ROOT = "/proc"  # where tokens written before psutil can be checked (Linux only)


def process_token(pid: int | None = None) -> str | None:
    """'<pid>@<start time>' of pid (default: this process), so a reused pid is not mistaken for the writer.

    The start time (seconds since the epoch) comes from psutil, on Linux, macOS and Windows alike.
    None when no such process exists or it may not be inspected.
    """
    pid = os.getpid() if pid is None else pid
    try:
        started = psutil.Process(pid).create_time()
    except (psutil.Error, ValueError, OverflowError):  # gone, a zombie, access denied, not a pid
        return None
    return f"{pid}@{started:.2f}"


def token_is_alive(token) -> bool:
    """True when the process that wrote token still runs (not a zombie, not a reused pid).

    Tokens written before gapdemo used psutil read 'pid:ticks' (field 22 of /proc/<pid>/stat). Such a
    token was only ever written on Linux (elsewhere the old code wrote none), so it is checked against
    /proc where /proc exists, and counts as dead elsewhere: a folder copied from Linux has no writer here.
    """
    if not isinstance(token, str):
        return False
    if "@" not in token:
        return _legacy_token_is_alive(token)
    pid, _, recorded = token.partition("@")
    try:
        process = psutil.Process(int(pid))
        if process.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped: it writes nothing more
            return False
        return abs(process.create_time() - float(recorded)) <= START_TIME_TOLERANCE_S
    except (psutil.Error, ValueError, OverflowError):
        return False


def _legacy_token_is_alive(token: str) -> bool:
    pid, _, ticks = token.partition(":")
    if not pid.isdigit() or not ticks.isdigit():
        return False
    try:
        with open(f"{PROC_ROOT}/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    except OSError:
        return False
    return len(fields) > 19 and fields[0] != "Z" and fields[19] == ticks


def writer_is_alive(status: dict) -> bool:
    """True when the process named in a status dict's "process" token still runs."""
    return token_is_alive(status.get("process"))


@dataclass
class RunSummary:
    """One row of the run listing."""

    run_id: str
    run_dir: Path
    state: str  # a training.JobState value; 'interrupted' when the writer died mid-run
    message: str
    dataset: str
    backends: list[str]
    epochs_completed: int
    epochs: int
    best_val_accuracy: dict[str, float] = field(default_factory=dict)
    created: str = ""

    def to_dict(self) -> dict:
        values = dict(self.__dict__)
        values["run_dir"] = str(self.run_dir)
        return values


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def read_config(run_dir: Path) -> dict:
    """config.json as a dict (RunConfig.to_dict() plus dataset_info); {} when missing or unreadable."""
    return read_json(Path(run_dir) / "config.json")


def read_status(run_dir: Path) -> dict:
    """status.json, with a dead writer's active state turned into 'interrupted'."""
    status = read_json(Path(run_dir) / "status.json")
    if status.get("state") in ACTIVE_STATES and not writer_is_alive(status):
        status["state"] = "interrupted"
        status["message"] = status.get("message") or (
            "The process training this run ended before it finished; completed epochs are kept."
        )
    return status


def read_elapsed_seconds(status: dict) -> float | None:
    """The run's training time from a status dict; None when it was never recorded.

    Runs written before elapsed_seconds stored a "durations" dict with the same lockstep time
    for every back-end, so any one of its values is the run's time.
    """
    if "elapsed_seconds" in status:
        return float(status["elapsed_seconds"])
    durations = status.get("durations")
    if isinstance(durations, dict) and durations:
        return float(next(iter(durations.values())))
    return None


def read_epoch_metrics(run_dir: Path):
    """metrics.csv as a DataFrame (empty with the right columns when missing)."""
    return _read_csv(Path(run_dir) / "metrics.csv", EPOCH_FIELDS)


def read_batch_metrics(run_dir: Path):
    return _read_csv(Path(run_dir) / "batch_metrics.csv", BATCH_FIELDS)


def _read_csv(path: Path, fields):
    import pandas as pd

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    # Every row is written with its line break. A process killed mid-append (or a reader that comes
    # while a row is being written) leaves a last line without one, which may even parse, with a
    # wrong number ("0.75" cut to "0."): keep only what ends with a line break.
    data = data[:data.rfind(b"\n") + 1]
    frame = pd.read_csv(io.BytesIO(data), on_bad_lines="skip") if data.strip() else None
    if frame is None or not set(fields) <= set(frame.columns):  # nothing yet, or only part of the header
        return pd.DataFrame(columns=list(fields))
    return frame.dropna().reset_index(drop=True)


def list_run_files(run_dir: Path) -> list[str]:
    """Paths, relative to run_dir, of the run's files worth copying (RUN_FILES, RUN_FILE_PATTERNS)."""
    run_dir = Path(run_dir)
    names = [name for name in RUN_FILES if (run_dir / name).is_file()]
    for pattern in RUN_FILE_PATTERNS:  # skip the hidden temp files of atomic writes in flight
        names += sorted(str(p.relative_to(run_dir)) for p in run_dir.glob(pattern) if not p.name.startswith("."))
    return names


def read_run_files(run_dir: Path, names=None) -> dict[str, bytes]:
    """{relative path: bytes} of names (default: list_run_files); names that are not files are skipped."""
    run_dir = Path(run_dir)
    names = list_run_files(run_dir) if names is None else names
    return {name: (run_dir / name).read_bytes() for name in names if (run_dir / name).is_file()}


def summarize_run(run_dir: Path) -> RunSummary | None:
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if not config:
        return None
    status = read_status(run_dir)
    metrics = read_epoch_metrics(run_dir)
    best = {}
    if len(metrics):
        best = {b: float(v) for b, v in metrics.groupby("backend")["val_accuracy"].max().items()}
    return RunSummary(
        run_id=run_dir.name, run_dir=run_dir, state=status.get("state", "unknown"),
        message=status.get("message", ""), dataset=config.get("data", {}).get("dataset", "?"),
        backends=list(config.get("model", {}).get("backends", [])),
        epochs_completed=int(status.get("epochs_completed", 0)),
        epochs=int(config.get("train", {}).get("epochs", 0)), best_val_accuracy=best,
        created=status.get("created", ""),
    )


def list_runs(runs_dir) -> list[RunSummary]:
    """Every run under runs_dir, newest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    summaries = [summarize_run(path) for path in runs_dir.iterdir() if path.is_dir()]
    return sorted((s for s in summaries if s), key=lambda s: s.run_id, reverse=True)


def resolve_run(run_id_or_dir: str | None, runs_dir="runs") -> Path:
    """A run id under runs_dir, or a path to a run directory; None -> the newest run with models."""
    if run_id_or_dir is None:
        for summary in list_runs(runs_dir):
            if list((summary.run_dir / "models").glob("*.keras")):
                return summary.run_dir
        raise FileNotFoundError(f"no run with saved models in {runs_dir}; train one first")
    for candidate in (Path(run_id_or_dir), Path(runs_dir) / str(run_id_or_dir)):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(f"no run {run_id_or_dir!r} (looked in {runs_dir})")


REAL_PHOTO_DATASETS = ("folder", "cats_vs_dogs")  # sources of photographs; synthetic draws cartoons


def choose_classifier_run(runs_dir) -> tuple[RunSummary, str] | None:
    """The run a photo is classified with unless the user picks one, and one sentence saying which and why.

    The newest finished run trained on real photos (a folder or Cats vs Dogs) when there is one: models
    that only saw synthetic cartoons call a real cat "dog" as readily as "cat". Else the newest run with
    saved models. None when no run has models.
    """
    with_models = [summary for summary in list_runs(runs_dir)
                   if any(not path.name.startswith(".") for path in (summary.run_dir / "models").glob("*.keras"))]
    if not with_models:
        return None
    real = [summary for summary in with_models
            if summary.state == "finished" and summary.dataset in REAL_PHOTO_DATASETS]
    chosen = (real or with_models)[0]
    trained_on = describe_training_data(read_config(chosen.run_dir))
    if real:
        return chosen, f"Using run {chosen.run_id}, the newest finished run trained on real photos ({trained_on})."
    return chosen, (f"Using run {chosen.run_id}, the newest run with models, trained on {trained_on}: no finished "
                    "run was trained on real photos (a folder or Cats vs Dogs).")


def describe_training_data(config: dict) -> str:
    """What a run's models learned from, from its config.json: 'the folder /x/PetImages, 18,610 training images'."""
    data = config.get("data", {})
    dataset = data.get("dataset", "?")
    train_count = config.get("dataset_info", {}).get("splits", {}).get("train")
    count = f", {train_count:,} training images" if isinstance(train_count, int) else ""
    if dataset == "folder":
        return f"the folder {data.get('data_dir')}{count}"
    if dataset == "cats_vs_dogs":
        return f"Cats vs Dogs{count}"
    if dataset == "synthetic":
        return f"synthetic cartoon pets{count}"
    return f"{dataset}{count}"


def load_models(run_dir: Path) -> dict:
    """backend -> keras.Model from models/*.keras, in the run's back-end order."""
    import keras

    run_dir = Path(run_dir)
    order = read_config(run_dir).get("model", {}).get("backends", [])
    paths = {path.stem: path for path in (run_dir / "models").glob("*.keras") if not path.name.startswith(".")}
    if not paths:
        raise FileNotFoundError(f"run {run_dir.name} has no saved models yet")
    ordered = [b for b in order if b in paths] + sorted(set(paths) - set(order))
    return {backend: keras.models.load_model(paths[backend], compile=False) for backend in ordered}


def load_probes(run_dir: Path, epoch: int | None = None) -> tuple[int, dict]:
    """(epoch, {backend: probe dict}) for the given or the latest stored epoch; (-1, {}) if none."""
    probe_dir = Path(run_dir) / "probes"
    files = sorted(probe_dir.glob("epoch_*.npz"))
    if epoch is not None:
        files = [path for path in files if path.stem == f"epoch_{epoch:03d}"]
    if not files or not (probe_dir / "images.npz").exists():
        return -1, {}
    with np.load(probe_dir / "images.npz") as stored:
        images, labels = stored["images"], stored["labels"]
    with np.load(files[-1]) as stored:
        arrays = {key: stored[key] for key in stored.files}
    backends = sorted({key.split("__")[0] for key in arrays})
    probes = {b: {"images": images, "labels": labels,
                  **{k: arrays.get(f"{b}__{k}") for k in PROBE_KEYS}} for b in backends}
    return int(files[-1].stem.split("_")[1]), probes


def save_probes(run_dir: Path, epoch: int, probes: dict) -> None:
    """Store one epoch's probes; the shared images and labels are written once."""
    probe_dir = Path(run_dir) / "probes"
    probe_dir.mkdir(exist_ok=True)
    first = next(iter(probes.values()))
    if not (probe_dir / "images.npz").exists():
        save_npz_atomic(probe_dir / "images.npz", {"images": first["images"], "labels": first["labels"]})
    arrays = {f"{b}__{k}": values[k] for b, values in probes.items() for k in PROBE_KEYS if values.get(k) is not None}
    save_npz_atomic(probe_dir / f"epoch_{epoch:03d}.npz", arrays)


def pack_run_folder(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run folder as {relative path: bytes}, to send to another machine (temp files left out)."""
    run_dir = Path(run_dir)
    return {path.relative_to(run_dir).as_posix(): path.read_bytes()
            for path in sorted(run_dir.rglob("*")) if path.is_file() and not path.name.startswith(".")}


def unpack_run_folder(run_dir: Path, files: dict[str, bytes]) -> None:
    """Write pack_run_folder's files into run_dir, each atomically; paths may not leave run_dir."""
    run_dir = Path(run_dir).resolve()
    for relative, data in files.items():
        target = (run_dir / relative).resolve()
        if run_dir not in target.parents:
            raise ValueError(f"refusing to write {relative!r} outside the run folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(target, data)


def clear_run_folder(run_dir: Path) -> None:
    """Remove a run folder that is about to be written again from scratch (a retried sweep trial)."""
    import shutil

    shutil.rmtree(Path(run_dir), ignore_errors=True)
