"""Models, probes and whole run folders: saved atomically, loaded back, sent to another machine."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gapdemo.model.backends import BACKENDS
from gapdemo.runs.atomic import atomic_target, fsync_folder, replace_file, write_bytes_atomic
from gapdemo.runs.files import (
    CONFIG_FILE,
    PROBE_KEYS,
    is_plain_file,
    is_run_folder,
    json_bytes,
    models_dir,
    read_config,
    write_config,
)
from gapdemo.runs.trust import RunFileError, is_link, shown_name


def save_model_atomic(model, path: Path) -> None:
    """Save a Keras model through the atomic writer (gapdemo.runs.atomic); a failed save (a full disk)
    leaves the previous file whole and no temp file."""
    with atomic_target(path, suffix=".keras") as temporary:  # Keras insists on the .keras suffix
        model.save(temporary)

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
    fsync_folder(models_dir)  # the renames, durable together

def save_npz_atomic(path: Path, arrays: dict) -> None:
    """np.savez_compressed through the atomic writer; a failed write leaves no temp file."""
    with atomic_target(path, suffix=".npz") as temporary:  # np.savez adds .npz unless it is there
        np.savez_compressed(temporary, **arrays)

def models_signature(run_dir: Path) -> tuple:
    """((name, mtime), ...) of the run's saved models: changes whenever a new epoch's models land.
    Links are not followed (a dangling one would raise): load_models refuses them."""
    return tuple((path.name, path.lstat().st_mtime) for path in sorted(models_dir(run_dir).glob("*.keras"))
                 if not path.name.startswith("."))


class UnsafeModelError(ValueError):
    """A model file that would run code when loaded (a Lambda layer, say); str() is one sentence."""


def load_models(run_dir: Path) -> dict:
    """backend -> keras.Model from models/*.keras, in the run's back-end order.

    Raises:
        UnsafeModelError for a file that carries code, RunFileError for a models folder or file that is a
        symbolic link or a file named after no back-end: the runs folder is shared by every visitor of a
        served page, so a file placed there must never run anything, nor lead a tab out of the folder.
    """
    run_dir = Path(run_dir)
    paths = model_files(run_dir)  # refused before Keras is imported
    if not paths:
        raise FileNotFoundError(f"run {run_dir.name} has no saved models yet")
    # deferred: imports Keras (seconds); registers the dropout layer that saved models name
    import gapdemo.model.variable_dropout  # noqa: F401

    model = read_config(run_dir).get("model")
    order = model.get("backends") if isinstance(model, dict) and isinstance(model.get("backends"), list) else []
    ordered = [b for b in order if b in paths] + sorted(set(paths) - set(order))
    return {backend: load_model_file(paths[backend]) for backend in ordered}


def model_files(run_dir: Path) -> dict[str, Path]:
    """backend -> models/<backend>.keras of the run (hidden temp files left out); RunFileError (one sentence)
    when the models folder or a file is a symbolic link, or a file's name is no back-end of gapdemo's."""
    run_dir, folder = Path(run_dir), models_dir(run_dir)
    if is_link(folder):
        raise RunFileError(f"The models folder of run {run_dir.name} is a symbolic link; it was refused and "
                           "not followed.")
    paths = {path.stem: path for path in folder.glob("*.keras") if not path.name.startswith(".")}
    for backend, path in paths.items():
        if is_link(path):
            raise RunFileError(f"The model file {path.name} of run {run_dir.name} is a symbolic link; it was "
                               "refused and not followed.")
        if backend not in BACKENDS:
            raise RunFileError(f"The model file {shown_name(path.name)} of run {run_dir.name} is named after no "
                               "back-end of gapdemo; it was refused.")
    return paths


def load_model_file(path: Path):
    """One .keras file with Keras' safe mode on, written out (keras>=3.11.3 closes its known bypasses)."""
    import keras  # deferred: seconds to import, and most readers of a run folder load no model

    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except ValueError as error:
        if "safe_mode" not in str(error):  # another problem (a damaged file): Keras' own sentence
            raise
        raise UnsafeModelError(f"The model file {Path(path).name} of run {Path(path).parent.parent.name} carries "
                               "code (a Lambda layer or similar) and was refused: gapdemo loads only plain "
                               "layers, so nothing in the runs folder runs code here.") from None

def load_probes(run_dir: Path, epoch: int | None = None) -> tuple[int, dict]:
    """(epoch, {backend: probe dict}) for the given or the latest stored epoch; (-1, {}) if none."""
    probe_dir = Path(run_dir) / "probes"
    # Links are passed by as if absent: a file planted in a shared runs folder never leads a tab out of it.
    files = [] if is_link(probe_dir) else sorted(path for path in probe_dir.glob("epoch_*.npz")
                                                       if not is_link(path))
    if epoch is not None:
        files = [path for path in files if path.stem == f"epoch_{epoch:03d}"]
    if not files or not is_plain_file(run_dir, "probes/images.npz"):
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

def run_file_signatures(run_dir: Path) -> dict[str, tuple[int, int, int]]:
    """{relative path: (inode, size, mtime_ns)} of every file (temp files left out).

    Atomic writes replace the inode and appends change the size, so a file whose signature is unchanged
    since the last pack need not be sent again.
    """
    run_dir = Path(run_dir)
    signatures = {}
    for path in sorted(run_dir.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            stat = path.stat()
            signatures[path.relative_to(run_dir).as_posix()] = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    return signatures


def pack_run_folder(run_dir: Path, only=None) -> dict[str, bytes]:
    """The run folder's files as {relative path: bytes}, to send to another machine (temp files left out).

    only: the relative paths to pack (for example those whose run_file_signatures changed); None = all.
    """
    run_dir = Path(run_dir)
    wanted = run_file_signatures(run_dir) if only is None else only
    return {relative: (run_dir / relative).read_bytes() for relative in wanted if (run_dir / relative).is_file()}

def unpack_run_folder(run_dir: Path, files: dict[str, bytes], config_changes: Callable[[dict], dict] | None = None
                      ) -> None:
    """Write pack_run_folder's files into run_dir, each atomically; paths may not leave run_dir.

    config_changes: config.json's values -> the values to store (a sweep's tags, this node's runs folder). The
    config.json sent is changed as it is written, and first, so it never lands without them; when none is
    sent, the one on disk is changed after the other files.
    """
    run_dir = Path(run_dir).resolve()
    files = dict(files)
    sent_config = files.pop(CONFIG_FILE, None)
    if sent_config is not None and config_changes is not None:
        sent_config = json_bytes(config_changes(json.loads(sent_config)))
    for relative, data in ([(CONFIG_FILE, sent_config)] if sent_config is not None else []) + list(files.items()):
        target = (run_dir / relative).resolve()
        if run_dir not in target.parents:
            raise ValueError(f"refusing to write {relative!r} outside the run folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(target, data)
    if sent_config is None and config_changes is not None and is_run_folder(run_dir):
        write_config(run_dir, config_changes(read_config(run_dir)))

def clear_run_folder(run_dir: Path) -> None:
    """Remove a run folder that is about to be written again from scratch (a retried sweep trial)."""
    shutil.rmtree(Path(run_dir), ignore_errors=True)
