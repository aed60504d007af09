"""A run's batches as they train: each call's own values per back-end, the rate and the time left.

After every call into TensorFlow (TrainConfig.steps_per_execution batches) Keras reports the last
batch's index and the running means since the epoch began. BatchStream turns them into the call's
own values (gapdemo.training.curves.BatchValues), appends them to batch_metrics.csv and tells the
events; StreamingCallback is its Keras side, which also ends fit or evaluate when the events ask.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np

from gapdemo import runs
from gapdemo.config import RunConfig
from gapdemo.training.curves import BatchValues
from gapdemo.training.events import TrainingEvents
from gapdemo.training.fitter import metric_key

VALIDATION_SURCHARGE = 1.15  # validation costs about a third of a training step per image; the estimate counts it


class StreamingCallback(keras.callbacks.Callback):
    """Hands every call's logs to a BatchStream, and stops training or validation there when asked."""

    def __init__(self, stream: BatchStream, events: TrainingEvents):
        super().__init__()
        self.stream, self.events = stream, events
        self.epoch_index = 0

    def on_train_batch_end(self, batch, logs=None):
        self.stream.record_batch(self.epoch_index, batch, logs or {})
        if self.events.should_stop():
            self.model.stop_training = True

    def on_test_batch_end(self, batch, logs=None):
        if self.events.should_stop():
            self.model.stop_evaluating = True


class BatchStream:
    """Each call's rows, to batch_metrics.csv and to the events, with the progress they come with."""

    def __init__(self, config: RunConfig, run_dir: Path, events: TrainingEvents):
        self.run_dir, self.events = Path(run_dir), events
        self.batch_size, self.epochs = config.train.batch_size, config.train.epochs
        self.backends = list(config.model.backends)
        self.batches_per_epoch = 1
        self.train_images = None  # images per epoch, when the data say (the last batch may be smaller)
        self.images_per_second = 0.0
        self.rate_origin = (-1, 0, 0.0)  # (epoch index, batches done, time.time()) after its first call
        self.batch_values, self.values_epoch = BatchValues(), -1

    def start(self, batches_per_epoch: int, train_images: int | None) -> None:
        """The epochs' size, known once the data are loaded (gapdemo.training.feeder.epoch_size)."""
        self.batches_per_epoch, self.train_images = batches_per_epoch, train_images

    def progress(self, phase: str, epoch: int, batch: int) -> dict:
        """What gapdemo.training.events.TrainingEvents.on_progress receives: phase, position, rate, time left."""
        remaining_batches = (self.epochs - epoch) * self.batches_per_epoch + (self.batches_per_epoch - batch)
        rate = self.images_per_second / self.batch_size if self.images_per_second else 0.0
        eta = remaining_batches / rate * VALIDATION_SURCHARGE if rate else None
        return {"phase": phase, "epoch": epoch, "epochs": self.epochs, "batch": batch,
                "batches_per_epoch": self.batches_per_epoch, "images_per_second": self.images_per_second,
                "eta_seconds": eta}

    def record_batch(self, epoch_index: int, batch: int, logs: dict) -> None:
        """Publish the call that ended with batch (counted from 0) of epoch epoch_index, given Keras' logs."""
        # Keras reports a call's last batch as first + steps_per_execution - 1, even when the epoch
        # ran out of batches before that: count no more batches than the epoch has.
        done = min(batch + 1, self.batches_per_epoch)
        self.update_rate(epoch_index, done, time.time())
        if self.values_epoch != epoch_index:  # every epoch's fit starts Keras' means afresh
            self.batch_values, self.values_epoch = BatchValues(), epoch_index
        values = self.batch_values.update(*self.running_means(logs, done))
        step = round(epoch_index + done / self.batches_per_epoch, 5)
        rows = [{"backend": b, "epoch": epoch_index + 1, "batch": done, "step": step,
                 "loss": values.get(metric_key(self.backends, b, "loss"), np.nan),
                 "accuracy": values.get(metric_key(self.backends, b, "accuracy"), np.nan)}
                for b in self.backends]
        runs.append_batch_rows(self.run_dir, rows)
        self.events.on_batch(rows, self.progress("training", epoch_index + 1, done))

    def update_rate(self, epoch_index: int, done: int, now: float) -> None:
        """Images per second since the end of the epoch's first call, done batches into the epoch at now.

        The rate counts from the end of each epoch's first call: that call also pays the iterator's
        start-up and, in epoch 1, seconds of tracing, which made the first time-left estimate hours.
        """
        if self.rate_origin[0] != epoch_index:
            self.rate_origin = (epoch_index, done, now)
        elif done > self.rate_origin[1] and now > self.rate_origin[2]:
            self.images_per_second = (done - self.rate_origin[1]) * self.batch_size / (now - self.rate_origin[2])

    def running_means(self, logs: dict, batches_done: int) -> tuple[dict, dict]:
        """Keras' means since the epoch began, and how many items each averages, for BatchValues.

        Accuracies, and a single output's loss, are means over images. A multi-output model's
        per-output losses are means over batches: Keras weights each by its static batch size,
        which the pipelines leave unknown (the last batch may be smaller).
        """
        images = batches_done * self.batch_size
        if self.train_images:
            images = min(images, self.train_images)
        means, counts = {}, {}
        for backend in self.backends:
            for name in ("loss", "accuracy"):
                key = metric_key(self.backends, backend, name)
                if key in logs:
                    means[key] = float(logs[key])
                    counts[key] = batches_done if name == "loss" and len(self.backends) > 1 else images
        return means, counts
