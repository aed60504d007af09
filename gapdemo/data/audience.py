"""Who reads what the data layer says: the operator alone, or every visitor of a served page.

A served page's visitors read a failed run's message, and may download its log.txt and config.json.
So in work done for them, a data error shows its public sentence, which names no file, sub-folder or
server path (gapdemo.data.checks.DataError), and Cats vs Dogs is read only if the operator prepared it,
never downloaded. Work is served when GAPDEMO_SERVED=1 says the whole process is (a served page's
claims jobs, sweeps and cluster runs, and the commands the operator marks so), or inside
serving_visitors(True), which a process that trains for visitors and the operator alike (the page's
training worker) sets around one run. The details stay where the operator reads them: the same
command on the server, run by the operator, prints them (operator_hint).
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar

from gapdemo.serving import operator_says_served

# Set around one piece of work (a run in a worker thread); None: the process's own word (GAPDEMO_SERVED).
_served_work: ContextVar[bool | None] = ContextVar("gapdemo_served_work", default=None)


def work_is_served() -> bool:
    """True when what is being done now is for a served page's visitor, whose messages must be public."""
    told = _served_work.get()
    return operator_says_served() if told is None else told


@contextlib.contextmanager
def serving_visitors(served: bool):
    """Within the block (this thread and context only), work is served or not as served says,
    whatever GAPDEMO_SERVED says for the process."""
    token = _served_work.set(bool(served))
    try:
        yield
    finally:
        _served_work.reset(token)


def operator_hint(dataset: str) -> str:
    """Where the operator finds what a public sentence leaves out: the data command, run on the server."""
    option = "--data-dir PATH" if dataset == "folder" else "--data-dir DIR"
    return f"the operator sees the details with `python -m gapdemo data --dataset {dataset} {option}` on the server"


def hidden_in_served_work(cause: BaseException) -> BaseException | None:
    """cause, for `raise DataError(...) from hidden_in_served_work(error)`: None in served work, so a
    traceback in log.txt does not print the cause's text (TensorFlow's and TFDS's name files and paths)."""
    return None if work_is_served() else cause
