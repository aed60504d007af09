"""TensorFlow's start-up lines kept off the terminal unless the user asks for them.

On import, TensorFlow 2.21 writes from C++ through absl, before any logging is set up: "oneDNN
custom operations are on", "Could not find cuda drivers", the CPU instructions it was not built
for, and on first use "failed call to cuInit". TF_CPP_MIN_LOG_LEVEL does not reach these. So the
first ``import tensorflow``, whoever imports it and in whichever thread, runs with file descriptor
2 pointed at a temporary file, and so does TensorFlow's first device query; afterwards everything
captured is written back to stderr except those start-up lines, so a real error still shows.
Python's own sys.stderr (the CLI's progress bar) keeps writing to the terminal meanwhile.

GAPDEMO_TF_LOGS=1 (or the CLI's --verbose) leaves TensorFlow's output alone. Nothing happens on import:
the command line (gapdemo.cli.main) and the page (app.py's main) call install_hook() as they start.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import io
import os
import re
import sys
import tempfile

from gapdemo import settings

ENVIRONMENT_VARIABLE = settings.TF_LOGS.name
# An absl/glog line ("I0000 00:00:1795783654.447712   22044 port.cc:153] ..."), TF's older dated
# format ("2025-09-17 14:44:05.157831: I external/..."), absl's own warning, and the second line of
# the CPU-instructions note. Matched anywhere in a line: a progress bar without a newline may precede it.
STARTUP_LINE = re.compile(
    r"(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\]"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] [\w./-]+:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: ).*$")


def tensorflow_logs_wanted() -> bool:
    """True when the user asked for TensorFlow's own log lines (GAPDEMO_TF_LOGS=1, true, yes or on)."""
    return settings.tf_logs()


def without_startup_lines(text: str) -> str:
    """text with every TensorFlow start-up line removed (a line's text before one is kept)."""
    kept = []
    for line in re.findall(r"[^\n]*\n|[^\n]+$", text):  # "\r" ends no line: a progress bar rewrites one
        cleaned = STARTUP_LINE.sub("", line.rstrip("\n"))
        if cleaned.strip("\r "):
            kept.append(cleaned + ("\n" if line.endswith("\n") else ""))
    return "".join(kept)


@contextlib.contextmanager
def startup_lines_filtered():
    """Capture file descriptor 2 for the block, then write back all but TensorFlow's start-up lines."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no usable stderr: nothing to keep clean
        yield
        return
    python_stderr = sys.stderr
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        if _writes_to_fd2(python_stderr):
            # Kept open for good: another thread may still hold it after the block.
            sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(saved), "wb", buffering=0), encoding="utf-8",
                                          errors="backslashreplace", write_through=True)
        try:
            yield
        finally:
            if sys.stderr is not python_stderr:
                sys.stderr.flush()
                sys.stderr = python_stderr
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            left = without_startup_lines(capture.read().decode("utf-8", "backslashreplace"))
            if left:
                python_stderr.write(left)
                python_stderr.flush()


def _writes_to_fd2(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False


class _QuietTensorFlowLoader(importlib.abc.Loader):
    """Runs TensorFlow's import and first device query inside startup_lines_filtered()."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        with startup_lines_filtered():
            self.loader.exec_module(module)
            module.config.list_physical_devices()  # CUDA's probe (cuInit) writes its error here
        module.__loader__ = module.__spec__.loader = self.loader

    def __getattr__(self, name):
        return getattr(self.loader, name)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds tensorflow as usual, the first time only, with a loader that keeps its start-up quiet."""

    set_log_level = False  # True once install_hook set TF_CPP_MIN_LOG_LEVEL (the user had not)

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        remove_hook()
        if tensorflow_logs_wanted():
            return None
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietTensorFlowLoader(spec.loader)
        return spec


_HOOK = _QuietTensorFlowFinder()


def install_hook() -> None:
    """Quiet TensorFlow's first import, unless it happened already or the user wants its logs."""
    if "tensorflow" in sys.modules or tensorflow_logs_wanted() or _HOOK in sys.meta_path:
        return
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:  # TensorFlow's C++ warnings after start-up, too
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        _HOOK.set_log_level = True
    sys.meta_path.insert(0, _HOOK)


def remove_hook() -> None:
    if _HOOK in sys.meta_path:
        sys.meta_path.remove(_HOOK)


def allow_tensorflow_logs() -> None:
    """Show TensorFlow's start-up and runtime logs from now on (before TensorFlow is imported)."""
    os.environ[ENVIRONMENT_VARIABLE] = "1"
    if _HOOK.set_log_level:
        os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
        _HOOK.set_log_level = False
    remove_hook()
