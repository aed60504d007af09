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

Every whole-file write goes through one atomic writer (atomic.py: temp file, fsync, os.replace, fsync of
the folder), and CSV rows are appended and flushed as they happen, so a killed process loses at most the
step in flight.

The runs folder may be shared by a class, so what is read back is untrusted: run ids have one pattern
(ids.py), ids read from files must name folders inside the runs folder and JSON and CSV reads stop at a
size cap (trust.py: RunFileError, one sentence), the listing passes planted folders by (history.py), and
stored settings are asked as a new run's before they build anything (stored.py). The folder's size cap,
GAPDEMO_RUNS_MAX_BYTES, is a bound on new work like the memory budget: gapdemo.budget.disk.
"""

from gapdemo.runs.artifacts import (
    UnsafeModelError,
    clear_run_folder,
    load_models,
    load_probes,
    models_signature,
    pack_run_folder,
    run_file_signatures,
    save_model_atomic,
    save_models_atomic,
    save_probes,
    unpack_run_folder,
)
from gapdemo.runs.atomic import REPLACE_ATTEMPTS, atomic_target, write_atomically, write_bytes_atomic
from gapdemo.runs.files import (
    BATCH_FIELDS,
    EPOCH_FIELDS,
    METRIC_FILES,
    adopt_status,
    append_batch_rows,
    append_csv_rows,
    append_epoch_rows,
    append_log,
    create_run_folder,
    has_models,
    holds_only_run_files,
    list_run_files,
    models_dir,
    read_batch_metrics,
    read_config,
    read_elapsed_seconds,
    read_epoch_metrics,
    read_json,
    read_run_files,
    read_status,
    read_stored_status,
    symbolic_links_in,
    update_config,
    write_config,
    write_json_atomic,
    write_status,
)
from gapdemo.runs.history import (
    choose_classifier_run,
    describe_training_data,
    list_runs,
    resolve_run,
    scan_runs,
)
from gapdemo.runs.ids import RUN_ID_PATTERN, is_run_id, new_run_id, run_id_problems
from gapdemo.runs.liveness import (
    process_token,
    token_is_alive,
    writer_is_alive,
)
from gapdemo.runs.stored import parse_stored_config
from gapdemo.runs.trust import MAX_CSV_BYTES, MAX_JSON_BYTES, RunFileError, is_link, run_folder

__all__ = [
    "write_config",
    "update_config",
    "read_stored_status",
    "symbolic_links_in",
    "adopt_status",
    "append_epoch_rows",
    "append_batch_rows",
    "models_dir",
    "has_models",
    "holds_only_run_files",
    "create_run_folder",
    "BATCH_FIELDS",
    "METRIC_FILES",
    "EPOCH_FIELDS",
    "REPLACE_ATTEMPTS",
    "append_csv_rows",
    "append_log",
    "choose_classifier_run",
    "clear_run_folder",
    "describe_training_data",
    "list_run_files",
    "list_runs",
    "load_models",
    "UnsafeModelError",
    "load_probes",
    "models_signature",
    "new_run_id",
    "pack_run_folder",
    "run_file_signatures",
    "process_token",
    "read_batch_metrics",
    "read_config",
    "read_elapsed_seconds",
    "read_epoch_metrics",
    "read_json",
    "read_run_files",
    "read_status",
    "resolve_run",
    "scan_runs",
    "save_model_atomic",
    "save_models_atomic",
    "save_probes",
    "token_is_alive",
    "unpack_run_folder",
    "write_bytes_atomic",
    "write_atomically",
    "atomic_target",
    "write_json_atomic",
    "write_status",
    "writer_is_alive",
    "RUN_ID_PATTERN",
    "is_run_id",
    "run_id_problems",
    "MAX_CSV_BYTES",
    "MAX_JSON_BYTES",
    "RunFileError",
    "is_link",
    "run_folder",
    "parse_stored_config",
]
