"""What a run leaves in its folder as it trains: config and status, and after every epoch its probes,
TensorBoard scalars, models and metrics, all written through gapdemo.runs (atomic files, rows appended).

The probes are a fixed handful of validation images whose feature averages, dense weights and class
activation maps are kept after every epoch (epoch 0 = before training), so epochs are comparable.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from gapdemo import runs
from gapdemo.config import RunConfig
from gapdemo.insight.maps import class_activation_maps, feature_averages
from gapdemo.model.backends import BACKENDS, LockstepModels, classifier_layer_name
from gapdemo.training.events import TrainingEvents

TENSORBOARD_SCALARS = ("loss", "accuracy", "val_loss", "val_accuracy")


class RunWriter:
    """Writes one run's folder (gapdemo.runs documents its layout) and tells the events of its probes."""

    def __init__(self, config: RunConfig, run_dir: Path, events: TrainingEvents):
        self.config, self.run_dir, self.events = config, Path(run_dir), events
        self.backends = list(config.model.backends)
        self.started = time.time()
        self.probe_images = self.probe_labels = None
        self.tensorboard_writers = {}  # backend -> tf.summary writer, opened at its first epoch

    def prepare(self) -> None:
        """The folder, its models folder, the config and a "running" status."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        runs.models_dir(self.run_dir).mkdir(exist_ok=True)
        runs.write_config(self.run_dir, self.config.to_dict())
        self.write_status(0)

    def write_status(self, epochs_completed: int) -> None:
        runs.write_status(self.run_dir, "running", "", epochs_completed, time.time() - self.started)

    def write_dataset_info(self, info: dict) -> None:
        """The config again, with the loaded data set's description (DatasetInfo.to_dict())."""
        runs.write_config(self.run_dir, {**self.config.to_dict(), "dataset_info": info})

    def choose_probes(self, images: np.ndarray, labels: np.ndarray) -> None:
        """Probe with pick_probes of these validation images from now on."""
        self.probe_images, self.probe_labels = pick_probes(images, labels)

    def save_epoch(self, epoch: int, rows: list[dict], models: LockstepModels) -> None:
        """Save probes, TensorBoard scalars and models, then the metrics rows and the status.

        The models go before the metrics, all back-ends or none (runs.save_models_atomic): a save that fails
        (a full disk) leaves every back-end's model of the previous epoch whole, matching metrics.csv.
        """
        self.record_probes(epoch, models)
        self.write_tensorboard(epoch, rows)
        runs.save_models_atomic(models.backend_models, runs.models_dir(self.run_dir))
        runs.append_epoch_rows(self.run_dir, rows)
        self.write_status(epoch)

    def record_probes(self, epoch: int, models: LockstepModels) -> None:
        """Save the probes of models (float32) after epoch, then tell the events."""
        outputs = models.probe_model(self.probe_images.astype("float32") / 255.0, training=False)
        probes = {}
        for backend in self.backends:
            feature_maps = np.asarray(outputs[backend])  # (probes, s, s, 64)
            probe = {"images": self.probe_images, "labels": self.probe_labels,
                     "feature_averages": feature_averages(feature_maps), "dense_weights": None, "cams": None}
            if BACKENDS[backend].uses_cam:
                dense = models.training_model.get_layer(classifier_layer_name(backend))
                kernel, bias = (np.asarray(w) for w in dense.weights)
                probe["dense_weights"] = kernel[:, 0]
                probe["cams"] = class_activation_maps(feature_maps, kernel, bias)
            probes[backend] = probe
        runs.save_probes(self.run_dir, epoch, probes)
        self.events.on_probes(epoch, probes)

    def write_tensorboard(self, epoch: int, rows: list[dict]) -> None:
        for row in rows:
            backend = row["backend"]
            if backend not in self.tensorboard_writers:
                self.tensorboard_writers[backend] = tf.summary.create_file_writer(
                    str(self.run_dir / "tensorboard" / backend))
            with self.tensorboard_writers[backend].as_default(step=epoch):
                for name in TENSORBOARD_SCALARS:
                    tf.summary.scalar(name, row[name])
            self.tensorboard_writers[backend].flush()

    def close(self) -> None:
        for writer in self.tensorboard_writers.values():
            writer.close()


def pick_probes(images: np.ndarray, labels: np.ndarray, per_class: int = 4):
    """The first per_class validation images of each class (fixed, so epochs are comparable)."""
    labels = np.asarray(labels).astype(int)
    chosen = np.concatenate([np.flatnonzero(labels == label)[:per_class] for label in (0, 1)])
    if len(chosen) == 0:
        chosen = np.arange(min(len(labels), 2 * per_class))
    return images[chosen], labels[chosen]
