"""gapdemo: see and measure why Global Average Pooling beats a fully connected classifier."""

import importlib.metadata
import pathlib
import re

# No side effects on import: a Ray worker or a library user that imports gapdemo keeps its own environment.
# The command line and the page quiet TensorFlow's start-up as they start (gapdemo.quiet.install_hook).


def read_version() -> str:
    """The version pyproject.toml declares: from the installed package's metadata, or, run from a
    checkout that was never installed (`pip install -r requirements.txt`), from pyproject.toml itself."""
    try:
        return importlib.metadata.version("gapdemo")
    except importlib.metadata.PackageNotFoundError:
        pyproject = pathlib.Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            found = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(), flags=re.M)
        except OSError:
            found = None
        return found.group(1) if found else "unknown"


def __getattr__(name: str):
    # __version__ is read when asked for (--version), not by every process that imports gapdemo
    if name == "__version__":
        return read_version()
    raise AttributeError(f"module 'gapdemo' has no attribute {name!r}")
