"""The run folder's files: names, fields, atomic writers, appenders and readers (see gapdemo.runs)."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

from gapdemo.runs.atomic import write_bytes_atomic
from gapdemo.runs.ids import new_run_id, run_id_problems
from gapdemo.runs.liveness import process_token, writer_is_alive
from gapdemo.runs.trust import MAX_CSV_BYTES, MAX_JSON_BYTES, RunFileError, is_link, read_capped_bytes

# What a copy of a run (a zip bundle) takes from the folder when present; tensorboard/ stays out:
# it duplicates metrics.csv and grows with every epoch.
CONFIG_FILE, STATUS_FILE, LOG_FILE = "config.json", "status.json", "log.txt"
EPOCH_METRICS_FILE, BATCH_METRICS_FILE = "metrics.csv", "batch_metrics.csv"
MODELS_FOLDER = "models"
CLAIMS_MEASURES_FILE = "claims_measures.json"  # the run's claims measures, once pooled (gapdemo.claims.measured)
RUN_FILES = (CONFIG_FILE, STATUS_FILE, EPOCH_METRICS_FILE, BATCH_METRICS_FILE, LOG_FILE, CLAIMS_MEASURES_FILE)

RUN_FILE_PATTERNS = ("probes/*.npz", "models/*.keras")
MAX_RUN_FILE_BYTES = MAX_CSV_BYTES  # any one file a zip of the run takes (a default run's largest: ~2 MB)

METRIC_FILES = (EPOCH_METRICS_FILE, BATCH_METRICS_FILE)

EPOCH_FIELDS = ("backend", "epoch", "loss", "accuracy", "val_loss", "val_accuracy")

BATCH_FIELDS = ("backend", "epoch", "batch", "step", "loss", "accuracy")

ACTIVE_STATES = ("queued", "running", "stopping")

PROBE_KEYS = ("feature_averages", "dense_weights", "cams")

RUN_FOLDER_ATTEMPTS = 20


def create_run_folder(runs_dir: Path, preferred_id: str | None = None) -> Path:
    """Make a new, empty run folder under runs_dir, never one that exists: preferred_id when free,
    else a fresh id. mkdir without exist_ok is atomic, so two runs can never share a folder.
    ValueError (one sentence) when preferred_id is no run id (gapdemo.runs.ids): it could lead out of runs_dir."""
    problems = run_id_problems(preferred_id)
    if problems:
        raise ValueError(problems[0])
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    run_id = preferred_id or new_run_id()
    for _ in range(RUN_FOLDER_ATTEMPTS):
        try:
            (Path(runs_dir) / run_id).mkdir()
            return Path(runs_dir) / run_id
        except FileExistsError:
            run_id = new_run_id()
    raise FileExistsError(f"could not find a free run id in {runs_dir} after {RUN_FOLDER_ATTEMPTS} tries")

def json_bytes(values: dict) -> bytes:
    """values as the run folder's JSON files hold them: indented, anything else written as its str()."""
    return json.dumps(values, indent=2, default=str).encode()


def write_json_atomic(path: Path, values: dict) -> None:
    write_bytes_atomic(path, json_bytes(values))

def write_status(run_dir: Path, state: str, message: str = "", epochs_completed: int = 0,
                 elapsed_seconds: float = 0.0) -> None:
    """Write status.json atomically.

    elapsed_seconds is one run-level figure: every back-end trains in the same lockstep model, so
    a per-back-end time would repeat the same number.
    """
    run_dir = Path(run_dir)
    write_json_atomic(run_dir / STATUS_FILE, {
        "state": state, "message": message, "epochs_completed": int(epochs_completed),
        "elapsed_seconds": round(float(elapsed_seconds), 2),
        "process": process_token(), "updated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "created": run_dir.name[:15],
    })

def append_log(run_dir: Path, text: str) -> None:
    """Append text (a traceback, say) to the run's log.txt, creating the run folder if needed."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOG_FILE, "a", encoding="utf-8") as handle:
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

def read_json(path: Path) -> dict:
    """The JSON object in path; {} when the file is missing, unreadable or holds no JSON object.

    Raises:
        RunFileError (gapdemo.runs.trust) when the file is larger than MAX_JSON_BYTES: it was not read.
    """
    try:
        data = read_capped_bytes(Path(path), MAX_JSON_BYTES)
    except RunFileError:
        raise
    except OSError:
        return {}
    try:
        values = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested too deep ("[[[[...")
        return {}
    return values if isinstance(values, dict) else {}

def read_config(run_dir: Path) -> dict:
    """config.json as a dict (RunConfig.to_dict() plus dataset_info); {} when missing or unreadable."""
    return read_json(Path(run_dir) / CONFIG_FILE)

def read_status(run_dir: Path) -> dict:
    """status.json, with a dead writer's active state turned into 'interrupted'."""
    status = read_json(Path(run_dir) / STATUS_FILE)
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
    return _read_csv(Path(run_dir) / EPOCH_METRICS_FILE, EPOCH_FIELDS)

def read_batch_metrics(run_dir: Path):
    return _read_csv(Path(run_dir) / BATCH_METRICS_FILE, BATCH_FIELDS)

def _read_csv(path: Path, fields):
    """The CSV as a DataFrame of fields; RunFileError (not read) when it is larger than MAX_CSV_BYTES."""
    import pandas as pd  # deferred: ~0.3 s; the status and config readers (and the CLI's start) do without

    try:
        data = read_capped_bytes(path, MAX_CSV_BYTES)
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
    """Paths, relative to run_dir, of the run's files worth copying (RUN_FILES, RUN_FILE_PATTERNS), written
    with "/" on every system: they name a zip's entries and its MANIFEST.txt lines."""
    run_dir = Path(run_dir)
    names = [name for name in RUN_FILES if is_plain_file(run_dir, name)]
    for pattern in RUN_FILE_PATTERNS:  # skip the hidden temp files of atomic writes in flight
        names += sorted(p.relative_to(run_dir).as_posix() for p in run_dir.glob(pattern)
                        if not p.name.startswith(".") and is_plain_file(run_dir, p.relative_to(run_dir)))
    return names

def is_plain_file(run_dir: Path, relative) -> bool:
    """A regular file reached from run_dir through no symbolic link: a link placed in a shared runs folder
    would otherwise bring any file of the server into a download or a copy."""
    path = Path(run_dir)
    for part in Path(relative).parts:
        path = path / part
        if part in ("..", "") or is_link(path):
            return False
    return path.is_file()

def symbolic_links_in(run_dir: Path) -> list[str]:
    """Paths, relative to run_dir, of every symbolic link inside it (links to folders are not entered)."""
    found = []
    for folder, sub_folders, names in os.walk(run_dir):
        found += [os.path.relpath(os.path.join(folder, name), run_dir) for name in sub_folders + names
                  if is_link(os.path.join(folder, name))]
    return sorted(found)

def read_run_files(run_dir: Path, names=None) -> dict[str, bytes]:
    """{relative path: bytes} of names (default: list_run_files); names that are not plain files are skipped.

    Raises:
        RunFileError (one sentence) for a file past MAX_RUN_FILE_BYTES: a planted one must not fill memory.
    """
    run_dir = Path(run_dir)
    names = list_run_files(run_dir) if names is None else names
    return {name: read_capped_bytes(run_dir / name, MAX_RUN_FILE_BYTES) for name in names
            if is_plain_file(run_dir, name)}


def write_config(run_dir: Path, values: dict) -> None:
    """config.json: RunConfig.to_dict(), plus dataset_info and any tags (a sweep's, a claims job's)."""
    write_json_atomic(Path(run_dir) / CONFIG_FILE, values)


def update_config(run_dir: Path, changes: dict) -> None:
    """Merge changes into config.json's top level."""
    write_config(run_dir, {**read_config(run_dir), **changes})


def read_stored_status(run_dir: Path) -> dict:
    """status.json exactly as written (read_status turns a dead writer's active state into 'interrupted')."""
    return read_json(Path(run_dir) / STATUS_FILE)


def adopt_status(run_dir: Path) -> None:
    """Name this process as the writer of a run that is still active (its files arrive from elsewhere)."""
    status = read_stored_status(run_dir)
    if status.get("state") in ACTIVE_STATES:
        write_json_atomic(Path(run_dir) / STATUS_FILE, {**status, "process": process_token()})


def append_epoch_rows(run_dir: Path, rows) -> None:
    append_csv_rows(Path(run_dir) / EPOCH_METRICS_FILE, EPOCH_FIELDS, rows)


def append_batch_rows(run_dir: Path, rows) -> None:
    append_csv_rows(Path(run_dir) / BATCH_METRICS_FILE, BATCH_FIELDS, rows)


def models_dir(run_dir: Path) -> Path:
    """Where a run's models/<backend>.keras live."""
    return Path(run_dir) / MODELS_FOLDER


def has_models(run_dir: Path) -> bool:
    """True when the run saved at least one model (hidden temporary files do not count)."""
    return any(not path.name.startswith(".") for path in models_dir(run_dir).glob("*.keras"))


def is_run_folder(path: Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()


RUN_SUBFOLDERS = (MODELS_FOLDER, "probes", "tensorboard")


def holds_only_run_files(path: Path) -> bool:
    """True when every entry of the folder path is a run's own file or subfolder (hidden temp files too):
    a run folder cut short as it arrived or was cleared, not some other folder (sweeps/, claims-<id>/)."""
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return all(name in RUN_FILES or name in RUN_SUBFOLDERS or name.startswith(".") for name in names)
