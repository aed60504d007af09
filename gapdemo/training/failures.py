"""A failed run in one sentence for the page, the CLI and a sweep's table; the details go to log.txt.

Apart from gapdemo.training.job because a sweep's trials end the same way without a job.
"""

from __future__ import annotations

import errno
import re
import traceback

from gapdemo.data.audience import work_is_served

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(error: Exception) -> bool:
    """True for a write refused for lack of space, also when TensorFlow wrapped the OSError in its own error."""
    if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
        return True
    return any(text in str(error) for text in ("No space left on device", "Disk quota exceeded"))


def readable_error(error: Exception, epochs_completed: int = 0) -> str:
    """One sentence for the page: data errors (ValueError, missing files) speak for themselves.

    epochs_completed: epochs whose models are on disk, for the sentence of a full disk.
    """
    if is_disk_full(error):
        kept = (f"the models of epoch {epochs_completed} are kept" if epochs_completed
                else "no epoch had been saved yet")
        return f"The disk is full: the run stopped in epoch {epochs_completed + 1}, and {kept}."
    if isinstance(error, (ValueError, FileNotFoundError)):
        return str(error)
    text = str(error).strip()
    # A Python error inside the tf.data pipeline arrives wrapped in a TensorFlow error whose
    # text embeds the original "SomeError: message" line; that line is what the user needs.
    inner = re.findall(r"^(\w+(?:Error|Exception)): (.+)$", text, flags=re.MULTILINE)
    if inner:
        return f"Training failed ({inner[-1][0]}: {inner[-1][1].strip()}). Details are in log.txt."
    first_line = text.splitlines()[0] if text else ""
    return f"Training failed ({type(error).__name__}{': ' + first_line if first_line else ''}). Details are in log.txt."


def failure_log_text(error: BaseException) -> str:
    """What a failed run's log.txt keeps: the whole traceback, or in served work only the error's type and
    sentence, since any visitor may download log.txt and a traceback names the server's folders."""
    if not work_is_served():
        return "".join(traceback.format_exception(error))
    return ("".join(traceback.format_exception_only(error)) + "(The traceback is not kept on a served page; "
            "the operator sees it by running the same settings with `python -m gapdemo train` on the server.)\n")
