"""What the training loop tells the world: one object of hooks, in the spirit of Keras callbacks.

gapdemo.training.trainer.Trainer calls these as it goes; a TrainingJob turns them into its live snapshot, a
sweep trial into reports to Ray, the CLI into a progress bar. Every hook is a no-op here, so a
subclass overrides only what it needs. Hooks run in the training thread: keep them quick, and
never call streamlit from one.
"""

from __future__ import annotations


class StopRequested(Exception):
    """Raised inside the trainer when should_stop() turns true between phases."""


class TrainingEvents:
    """Hooks of one training run; rows follow gapdemo.runs.BATCH_FIELDS and EPOCH_FIELDS."""

    def should_stop(self) -> bool:
        """Polled after every call into TensorFlow and between phases; True ends the run early."""
        return False

    def on_progress(self, progress: dict) -> None:
        """phase (loading data, compiling, training, validating, saving), epoch, batch, images/s, eta."""

    def on_dataset(self, info: dict) -> None:
        """The data set's description (gapdemo.data.sources.DatasetInfo.to_dict()) once it is loaded."""

    def on_batch(self, rows: list[dict], progress: dict) -> None:
        """One row per back-end after each call into TensorFlow, already appended to batch_metrics.csv."""

    def on_epoch(self, rows: list[dict], epochs_completed: int) -> None:
        """One row per back-end after each finished epoch, once its models and metrics are on disk."""

    def on_probes(self, epoch: int, probes: dict) -> None:
        """backend -> probe arrays (feature averages, dense weights, CAMs) after epoch (0 = before training)."""
