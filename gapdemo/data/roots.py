"""Which folders a data source may read when the page is served to other machines.

Served on a network, the data-source paths typed into the page would let any visitor probe the
server's file system: "does not exist" for one path and a class-folder complaint for another tells
what is there. So when roots apply, a path must resolve (symbolic links and ``..`` followed) to a
folder under one of them, and a path outside every root is refused with exactly the sentence of a
missing folder. The roots come from GAPDEMO_DATA_ROOTS (os.pathsep-separated); without it, a page
bound to the loopback interface reads anywhere (only its own user can reach it) and a page served
to others reads under the user's home. Nothing here knows about streamlit: the page passes down
whether it is served.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOTS_VARIABLE = "GAPDEMO_DATA_ROOTS"
DEFAULT_TFDS_DIR = "~/tensorflow_datasets"  # where tensorflow_datasets looks when no data dir is given


def is_loopback_address(address: str | None) -> bool:
    """True when a server bound to address is reachable from this machine only.

    None or "" is how streamlit says "every interface"; "localhost" and 127.0.0.0/8 and ::1 are loopback.
    """
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve to any interface
        return False


def allowed_roots(served: bool, environ: Mapping[str, str] | None = None) -> tuple[Path, ...] | None:
    """The resolved data roots, or None for no restriction.

    Args:
        served: the page is reachable from other machines (False for the CLI and a loopback-bound page).
        environ: where GAPDEMO_DATA_ROOTS is read; os.environ by default.
    """
    environ = os.environ if environ is None else environ
    entries = [entry.strip() for entry in environ.get(ROOTS_VARIABLE, "").split(os.pathsep) if entry.strip()]
    if entries:
        return tuple(resolve_path(entry) for entry in entries)
    return (resolve_path("~"),) if served else None


def resolve_path(path: str | os.PathLike) -> Path:
    """Absolute path with ~ expanded and every symbolic link and '..' followed (missing parts allowed)."""
    return Path(os.path.expanduser(os.fspath(path))).resolve(strict=False)


def is_under_roots(path: str | os.PathLike, roots: Sequence[Path] | None) -> bool:
    """True when path, resolved, is one of roots or lies inside one; always True without roots."""
    if roots is None:
        return True
    resolved = resolve_path(path)
    return any(resolved == root or resolved.is_relative_to(root) for root in roots)


def is_readable_folder(path: str | os.PathLike, roots: Sequence[Path] | None) -> bool:
    """True when path is an existing folder under roots. Outside the roots it is False whether or
    not the folder exists, and the existence test runs on the resolved path only after the roots
    test, so the answer tells nothing about folders outside them."""
    if not is_under_roots(path, roots):
        return False
    return resolve_path(path).is_dir()


def folder_path_problem(data_dir: str | None, roots: Sequence[Path] | None) -> str | None:
    """The sentence for a folder source whose path cannot be read under roots, or None when it can.

    A path outside the roots gets the sentence of a missing folder, so the answer never tells whether
    something exists outside them.
    """
    if not data_dir:
        return "The folder data set needs a folder path."
    if not is_readable_folder(data_dir, roots):
        return f"The folder {data_dir} does not exist."
    return None
