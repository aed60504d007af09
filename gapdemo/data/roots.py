"""Which folders a data source may read when the page is served to other machines.

Served on a network, the data-source paths typed into the page would let any visitor probe the
server's file system: "does not exist" for one path and a class-folder complaint for another tells
what is there. So when roots apply, a path must resolve (symbolic links and ``..`` followed) to a
folder under one of them, and a path outside every root is refused with exactly the sentence of a
missing folder. The roots come from GAPDEMO_DATA_ROOTS (os.pathsep-separated); without it, a local
page and the commands read anywhere (only their own user can reach them) and a served page reads no
folder at all: it offers the built-in synthetic set until the operator lists data folders. A path
that cannot be resolved (a symbolic-link loop, a NUL byte) reads like a missing folder too. Nothing
here knows about streamlit: the page passes down whether it is served.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from gapdemo import settings

ROOTS_VARIABLE = settings.DATA_ROOTS.name
DEFAULT_TFDS_DIR = "~/tensorflow_datasets"  # where tensorflow_datasets looks when no data dir is given
FOLDER_OFF_SENTENCE = ("On a served page the folder data set is off until the operator lists data folders in "
                       f"{ROOTS_VARIABLE}.")


def allowed_roots(served: bool, environ: Mapping[str, str] | None = None) -> tuple[Path, ...] | None:
    """The resolved data roots, or None for no restriction; () when nothing may be read.

    Args:
        served: the page is reachable from other machines (False for the CLI and a loopback-bound page).
        environ: where GAPDEMO_DATA_ROOTS is read; os.environ by default.
    """
    entries = settings.data_roots(environ)
    if entries:
        # An entry that cannot be resolved (a link loop) holds nothing readable: it opens nothing.
        return tuple(root for root in map(resolved_or_none, entries) if root is not None)
    return () if served else None


def resolve_path(path: str | os.PathLike) -> Path:
    """Absolute path with ~ expanded and every symbolic link and '..' followed (missing parts allowed).

    Raises:
        RuntimeError or OSError for a symbolic-link loop, ValueError for a NUL byte (resolved_or_none
        answers None instead).
    """
    return Path(os.path.expanduser(os.fspath(path))).resolve(strict=False)


def resolved_or_none(path: str | os.PathLike) -> Path | None:
    """resolve_path(path), or None when it cannot be resolved (a symbolic-link loop, a NUL byte):
    no folder can be read there, so callers treat it as a missing one."""
    try:
        return resolve_path(path)
    except (RuntimeError, OSError, ValueError):
        return None


def is_under_roots(path: str | os.PathLike, roots: Sequence[Path] | None) -> bool:
    """True when path, resolved, is one of roots or lies inside one; always True without roots
    (None), never with an empty tuple of them, nor for a path that cannot be resolved."""
    if roots is None:
        return True
    resolved = resolved_or_none(path)
    return resolved is not None and any(resolved == root or resolved.is_relative_to(root) for root in roots)


def is_readable_folder(path: str | os.PathLike, roots: Sequence[Path] | None) -> bool:
    """True when path is an existing folder under roots. Outside the roots it is False whether or
    not the folder exists, and the existence test runs on the resolved path only after the roots
    test, so the answer tells nothing about folders outside them."""
    if not is_under_roots(path, roots):
        return False
    resolved = resolved_or_none(path)
    return resolved is not None and resolved.is_dir()


def folder_path_problem(data_dir: str | None, roots: Sequence[Path] | None) -> str | None:
    """The sentence for a folder source whose path cannot be read under roots, or None when it can.

    A path outside the roots gets the sentence of a missing folder, so the answer never tells whether
    something exists outside them; with no roots at all (a served page without GAPDEMO_DATA_ROOTS),
    the sentence says how the operator opens the folder source.
    """
    if roots is not None and not roots:
        return FOLDER_OFF_SENTENCE
    if not data_dir:
        return "The folder data set needs a folder path."
    if not is_readable_folder(data_dir, roots):
        return f"The folder {data_dir} does not exist."
    return None
