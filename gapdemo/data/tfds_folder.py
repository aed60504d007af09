"""The TFDS data directory of Cats vs Dogs: may it be read here, is the data set prepared in it, what to say when not.

Preparing Cats vs Dogs downloads about 0.8 GB and writes more, so a served page never prepares it:
it reads only a copy the operator prepared in a folder under the data roots, with the data command
on the server (prepare_command). The gate (gapdemo.validation) asks tfds_folder_problem before a run;
the loader (gapdemo.data.cats_vs_dogs) refuses to prepare in served work all the same, should the
copy go between the two. Reading the disk here needs no TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from gapdemo.data.roots import DEFAULT_TFDS_DIR, ROOTS_VARIABLE, is_readable_folder, resolved_or_none

TFDS_NAME = "cats_vs_dogs"
CATS_VS_DOGS_OFF_SENTENCE = ("On a served page the Cats vs Dogs data set is off until the operator lists data "
                             f"folders in {ROOTS_VARIABLE} and prepares it in one.")


def prepare_command(data_dir: str) -> str:
    """The command that prepares Cats vs Dogs in data_dir (it downloads, or reads the manual archive)."""
    return f"python -m gapdemo data --dataset {TFDS_NAME} --data-dir {data_dir}"


def not_prepared_sentence(data_dir: str) -> str:
    """Why a served page cannot read Cats vs Dogs from data_dir (as the visitor typed it) and who can fix it."""
    return (f"Cats vs Dogs is not prepared in {data_dir}, and a served page never downloads a data set: the "
            f"operator prepares it once with `{prepare_command(data_dir)}` on the server.")


def is_prepared(data_dir: str | os.PathLike) -> bool:
    """True when data_dir holds the version of Cats vs Dogs this TFDS reads, prepared: its dataset_info.json
    is there, which is what TFDS's own builder.is_prepared() asks. False for a path that cannot be resolved."""
    import tensorflow_datasets as tfds  # deferred: half a second (it leaves TensorFlow unimported); only this needs it

    folder = resolved_or_none(data_dir)
    if folder is None:
        return False
    version = str(tfds.builder_cls(TFDS_NAME).VERSION)
    return (Path(folder) / TFDS_NAME / version / "dataset_info.json").is_file()


def tfds_folder_problem(data_dir: str | None, roots: Sequence[Path] | None, *, served: bool) -> str | None:
    """The sentence for a TFDS data directory that may not be read here, or None when it may.

    Args:
        data_dir: as typed (None: DEFAULT_TFDS_DIR, where TFDS looks).
        roots: gapdemo.data.roots.allowed_roots' answer: None reads anywhere, () nothing.
        served: the run is a served visitor's, which reads only a prepared copy.
    """
    shown = data_dir or DEFAULT_TFDS_DIR
    missing = f"The TFDS data directory {shown} does not exist."
    if roots is not None and not roots:
        return CATS_VS_DOGS_OFF_SENTENCE
    if roots is None:
        # Without roots TFDS may create the directory; only a path no folder can have (a loop, a NUL byte) is refused.
        return missing if resolved_or_none(shown) is None else None
    if not is_readable_folder(shown, roots):  # outside the roots reads like missing, whether it exists or not
        return missing
    if served and not is_prepared(shown):
        return not_prepared_sentence(shown)
    return None
