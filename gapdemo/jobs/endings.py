"""Why a job's process ended, in one sentence for the page: killed, over its memory budget, crashed, or silent.

The page never trains in its own process, so a run that runs out of memory or crashes inside
TensorFlow takes only its process down; what the page then knows is the process's exit code, the
last error line it printed, its peak resident memory as sampled, and how much memory the machine had
left at the last sample. One of these sentences is what a visitor reads next to the failed run.
"""

from __future__ import annotations

import signal

from gapdemo.units import format_bytes

KEPT = "finished epochs are kept"
LOW_MEMORY_FRACTION = 0.10  # the machine had less than this left at the last sample: an out-of-memory kill


def over_budget_sentence(peak_bytes: int, budget_bytes: int) -> str:
    return (f"The training process grew past the memory budget of a run ({format_bytes(budget_bytes)}, "
            f"at about {format_bytes(peak_bytes)}) and was stopped; {KEPT}.")


def signal_name(returncode: int) -> str | None:
    """'SIGKILL' for an exit code of -9 (POSIX: killed by a signal); None for an ordinary exit."""
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def ending_sentence(returncode: int | None, error_lines: list[str], *, peak_bytes: int = 0,
                    memory_was_low: bool = False, what: str = "training process") -> str:
    """One sentence on why the process ended before it reported its end.

    Args:
        returncode: the process's exit code (negative: the signal that ended it, on POSIX).
        error_lines: its last lines on stderr; a line "error: ..." is the command's own sentence.
        peak_bytes: its largest resident memory as sampled while it ran.
        memory_was_low: the machine had little memory left at the last sample (an out-of-memory kill).
        what: what the process was, in words ("training process", "claims job's process").
    """
    errors = [line.strip().removeprefix("error: ") for line in error_lines if line.startswith("error: ")]
    if errors:
        return errors[-1]
    name = signal_name(returncode)
    if name == "SIGKILL" and memory_was_low:
        return f"The {what} was killed (out of memory at about {format_bytes(peak_bytes)}?); {KEPT}."
    if name in ("SIGKILL", "SIGTERM"):
        return f"The {what} was killed ({name}); {KEPT}."
    if name is not None:
        return f"The {what} crashed ({name}); {KEPT}."
    return f"The {what} ended without a word (exit code {returncode}); {KEPT}."
