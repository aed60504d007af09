"""The operator's way in, as Jupyter's token: a random token in a link that only the server's user learns.

The page makes one token per server process. The link goes to the terminal that started the server
when that is a terminal, and always to a file only its user can read (GAPDEMO_OPERATOR_DIR, else
~/.gapdemo/operator-<port>.txt); a server whose output goes to a log file names only that file, so
the token never lands in a log. Whoever opens the link is the operator of that server in that tab:
the page takes the token out of the address at once and remembers the operator in the tab's session
only, so an address shown to a class makes nobody else the operator. Nothing here imports streamlit.
"""

from __future__ import annotations

import hmac
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

from gapdemo import settings
from gapdemo.runs.atomic import write_text_atomic

OPERATOR_PARAMETER = "operator"  # the link's query parameter
OPERATOR_DIR_VARIABLE = settings.OPERATOR_DIR.name
DEFAULT_OPERATOR_DIR = settings.OPERATOR_DIR.default
TOKEN_BYTES = 32  # 256 random bits, as url-safe text of 43 characters


class OperatorAccess:
    """One server's token."""

    def __init__(self, token: str | None = None):
        self.token = token or secrets.token_urlsafe(TOKEN_BYTES)

    def admits(self, candidate: str) -> bool:
        """True when candidate is this server's token; compared in constant time, so its timing tells nothing."""
        return hmac.compare_digest(candidate.encode("utf-8", "replace"), self.token.encode())

    def link(self, base_url: str) -> str:
        """base_url (the page's address, e.g. 'http://localhost:8501/') with the token as a query parameter."""
        return f"{base_url.rstrip('/')}/?{OPERATOR_PARAMETER}={self.token}"


def operator_file(port: int, environ: Mapping[str, str] | None = None) -> Path:
    """Where the link of the server on port is written: GAPDEMO_OPERATOR_DIR, else ~/.gapdemo."""
    folder = settings.operator_dir(environ)
    return Path(os.path.expanduser(folder)) / f"operator-{port}.txt"


def write_private_file(path: Path, text: str) -> None:
    """Write text to path so that only this user can read it (mode 0600 from its creation, never wider).

    On Windows the mode sets only the read-only flag; the file lies in the user's own profile folder,
    which other users cannot read.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_text_atomic(path, text, mode=0o600)


def announce(access: OperatorAccess, base_url: str, port: int, stream=None) -> Path:
    """Write the operator link to its file and tell the terminal: the link itself only when stream is a
    terminal (output sent to a file is a log, and the token stays out of logs), else where the file is."""
    stream = sys.stderr if stream is None else stream
    path = operator_file(port)
    interactive = hasattr(stream, "isatty") and stream.isatty()
    try:
        write_private_file(path, access.link(base_url) + "\n")
        shown = access.link(base_url) if interactive else f"in {path} (readable by you alone)"
    except OSError as error:  # a read-only home folder: the page must still draw
        shown = (access.link(base_url) if interactive else
                 f"nowhere: {path} could not be written ({error.strerror or error}); set {OPERATOR_DIR_VARIABLE}")
    print(f"\n  gapdemo operator link (stop any job, clear the cache, lift a class's bounds): {shown}\n",
          file=stream, flush=True)
    return path
