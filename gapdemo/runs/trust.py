"""What a shared runs folder may not make gapdemo do: follow an id out of the folder, or read a file of any size.

Every visitor of a served page may have written into the runs folder, so its files are read as untrusted:
an id read from a file (a sweep's trial, a claims result) must be a run id (gapdemo.runs.ids) and name a
folder inside the runs folder, reached through no symbolic link; JSON and CSV files are read only up to
a size cap. A refusal is a RunFileError whose str() is one sentence: the page and the commands show it
as they show any ValueError, and nothing the file names is followed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gapdemo.runs.ids import is_run_id
from gapdemo.units import format_bytes

# config.json and status.json take a few kilobytes, a sweep.json of 200 trials about 50 kB, a claims.json
# of 10 seeds under 1 MB: 4 MiB leaves room and keeps a planted file from filling the server's memory.
MAX_JSON_BYTES = 4 * 2**20
# A batch row takes about 60 bytes. The longest run a served page may start (100,000 training images in
# batches of 8, 5 back-ends, 50 epochs) writes 3.1 million rows, about 190 MB; a default run about 60 kB.
# Past this cap a metrics file is refused: parsing it whole would hold several times its size in memory.
MAX_CSV_BYTES = 256 * 2**20


class RunFileError(ValueError, OSError):
    """A file of the runs folder that gapdemo refuses to read or follow; str() is one sentence.

    Both a ValueError and an OSError: whoever already turns a bad value or a failed read or write into a
    sentence (the panels, the commands, the jobs writing a sweep's plan) shows this refusal the same way.
    """


def read_capped_bytes(path: Path, cap: int) -> bytes:
    """path's bytes; RunFileError when the file is larger than cap (FileNotFoundError passes on)."""
    path = Path(path)
    with open(path, "rb") as handle:
        data = handle.read(cap + 1)  # one byte past the cap tells "too large" without reading the rest
    if len(data) > cap:
        raise RunFileError(f"{describe_file(path)} is larger than the {format_bytes(cap)} gapdemo reads; "
                           "it was not read.")
    return data


def describe_file(path: Path) -> str:
    """'The file status.json in 20261207-153012-ab12': the file and its folder by name, never a server path."""
    path = Path(path)
    return f"The file {path.name} in {path.parent.name or 'the runs folder'}"


def run_folder(runs_dir, run_id, source: str, kind: str = "run") -> Path:
    """runs_dir/run_id for an id read from a file, checked: a run id, naming no symbolic link.

    Args:
        source: what named the id, for the sentence ("Sweep sweep-1a2b's trial 3").
        kind: what the id names, for the sentence: "run", "sweep", ...

    Raises:
        RunFileError when the id is no run id or its folder is a symbolic link (it could lead out of runs_dir).
    """
    if not is_run_id(run_id):
        raise RunFileError(f"{source} names the {kind} {shown_name(run_id)}, which is no {kind} id; it was refused "
                           "and not followed.")
    folder = Path(runs_dir) / run_id
    if is_link(folder):
        raise RunFileError(f"{source} names the {kind} {run_id}, whose folder is a symbolic link; it was refused "
                           "and not followed.")
    return folder


def is_link(path) -> bool:
    """True for a symbolic link, and on Windows for a junction too: a folder link any user may make, which
    is_symlink() does not see (its reparse-point attribute does)."""
    if os.path.islink(path):
        return True
    try:
        attributes = os.lstat(path).st_file_attributes  # Windows only; elsewhere AttributeError
    except (OSError, ValueError, AttributeError):
        return False
    return bool(attributes & stat.FILE_ATTRIBUTE_REPARSE_POINT)


def shown_name(value) -> str:
    """A name read from the runs folder, for a sentence: as it is when it is a run id, else its repr() (quoted,
    control characters escaped), cut to 60 characters."""
    text = value if is_run_id(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
