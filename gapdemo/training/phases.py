"""A run's phase in words: the one place that says what a training run is doing, for the CLI and the page.

The trainer and the jobs publish progress dicts whose "phase" is a short key (gapdemo.training.events,
gapdemo.jobs); phase_text turns one into the same words wherever it is shown.
"""

from __future__ import annotations

PHASE_WORDS = {
    "queued": "queued",
    "waiting": "waiting for the cluster's resources",  # a cluster run, until Ray has the CPUs it asks for
    "starting": "starting on the cluster",
    "starting worker": "starting the training process",  # the page's worker, TensorFlow loaded once per worker
    "loading data": "loading data",
    "compiling": "compiling the training step (a few seconds)",  # epoch 1's first call traces the step
    "training": "training",
    "validating": "validating",
    "saving": "saving the models",
    "finished": "finished",
    "stopped": "stopped",
    "failed": "failed",
}


def phase_words(phase: str | None) -> str:
    """What a run in this phase is doing, in a few lower-case words; an unknown phase as it is."""
    return PHASE_WORDS.get(phase, phase or "")


def phase_text(progress: dict, capitalized: bool = False) -> str:
    """progress's phase in words, with the data loader's step when it gives one.

    Args:
        progress: a progress dict ({"phase": ..., "message": ...}, as gapdemo.training.events describes).
        capitalized: start with a capital letter (a sentence on the page).

    Returns:
        e.g. "compiling the training step (a few seconds)" or "loading data: Decoding images 120/2000".
    """
    text = phase_words(progress.get("phase"))
    if progress.get("phase") == "loading data" and progress.get("message"):
        text = f"{text}: {progress['message']}"
    return text[:1].upper() + text[1:] if capitalized else text
