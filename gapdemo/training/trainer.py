"""The Keras loop: config, data loader, run directory and event hooks in; epochs on disk out.

Trainer knows no job, queue or page: it reports through a gapdemo.training.events.TrainingEvents object
(a TrainingJob's snapshot, a sweep trial's reports to Ray, the CLI's progress bar) and writes the
run folder through gapdemo.runs. One ``fit`` call per epoch followed by our own ``evaluate``: a
stop request ends ``fit`` after the call into TensorFlow in flight (TrainConfig.steps_per_execution
batches) and the loop then skips validation, so stopping never waits for a full pass.

Every epoch makes three tf.data iterators (training, batch-norm recalibration, validation). With
tf.data's autotuning on, deleting one waits for the tuner's thread to wake up: 0.8-1.4 s of idle
cores after every fit and evaluate at the defaults, about a fifth of a run. The trainer turns the
autotuning off on the pipelines it is given (fixed parallelism, ample for images already decoded in
memory), so the next phase starts within milliseconds (benchmarks/RESULTS.md, section 1-2).
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from gapdemo import runs
from gapdemo.config import RunConfig
from gapdemo.data.pipeline import without_autotuning
from gapdemo.insight.maps import class_activation_maps, feature_averages
from gapdemo.model import pool as model_pool
from gapdemo.model.backends import BACKENDS, build_lockstep_models, classifier_layer_name
from gapdemo.model.batchnorm import recalibrate_batch_norm, training_forward
from gapdemo.model.lockstep import compile_lockstep_model
from gapdemo.model.precision import dtype_policy
from gapdemo.training.curves import BatchValues
from gapdemo.training.events import StopRequested, TrainingEvents


class StreamingCallback(keras.callbacks.Callback):
    """Publishes each call's own loss/accuracy per back-end after every call into TensorFlow and stops there.

    A call trains TrainConfig.steps_per_execution batches; Keras reports the last batch's index and
    the running means since the epoch began, which Trainer.record_batch turns into the call's values.
    """

    def __init__(self, trainer: Trainer):
        super().__init__()
        self.trainer = trainer
        self.epoch_index = 0

    def on_train_batch_end(self, batch, logs=None):
        self.trainer.record_batch(self.epoch_index, batch, logs or {})
        if self.trainer.events.should_stop():
            self.model.stop_training = True

    def on_test_batch_end(self, batch, logs=None):
        if self.trainer.events.should_stop():
            self.model.stop_evaluating = True


class Trainer:
    """Trains one run's back-ends in lockstep into run_dir, telling events as it goes.

    Args:
        config: the run's settings (validated by the caller: gapdemo.validation).
        run_dir: the run folder to create and fill (gapdemo.runs documents its layout).
        events: hooks for progress, batches, epochs, probes and stop requests.
        data_loader: (DataConfig, batch_size, progress) -> LoadedData; None = gapdemo.data.sources.load_data.
    """

    def __init__(self, config: RunConfig, run_dir: Path, events: TrainingEvents | None = None, data_loader=None,
                 engine_baseline: bool = False):
        self.config = config
        # True: the engine as it was before the idle gaps were removed (tf.data autotuning on) and
        # before the back-ends' gradients were taken in turn, kept only so the benchmarks can measure
        # both side by side.
        self.engine_baseline = engine_baseline
        # What a reusable compiled model must match (gapdemo.model.pool); None: this run never reuses one.
        self.pool_key = None if engine_baseline else model_pool.shape_key(config)
        self.run_dir = Path(run_dir)
        self.events = events or TrainingEvents()
        self.data_loader = data_loader
        self.backends = list(self.config.model.backends)
        self.started = time.time()
        self.batches_per_epoch = 1
        self.images_per_second = 0.0
        self.rate_origin = (-1, 0, 0.0)  # (epoch index, batches done, time.time()) after its first call
        self.train_images = None  # images per epoch, when the data say (the last batch may be smaller)
        self.batch_values, self.values_epoch = BatchValues(), -1
        self.writers = {}

    def train(self) -> int:
        """Train all epochs (or until stopped); return the number of completed epochs."""
        self.prepare_run_dir()
        # The data load first, then the model: building it in a second thread meanwhile, and tracing its
        # steps on a batch of zeros there, was tried and made the first batch twice as late on two
        # cores, both threads being mostly Python and fighting over the GIL.
        data = self.load_data()
        self.check_stop()
        train_ds, val_ds = (self.input_pipeline(dataset) for dataset in (data.train, data.validation))
        models = self.prepare_models(train_ds.element_spec)
        self.batches_per_epoch = max(1, int(data.train.cardinality().numpy()))
        self.train_images = getattr(data.info, "splits", {}).get("train")
        self.probe_images, self.probe_labels = pick_probes(data.validation_images, data.validation_labels)
        self.sync_export_models()
        self.record_probes(0)
        try:
            return self.run_epochs(models, train_ds, val_ds)
        finally:
            for writer in self.writers.values():
                writer.close()
            if self.pool_key is not None:
                model_pool.give_back(self.pool_key, self.pooled)

    def prepare_models(self, element_spec):
        """Build and compile the lockstep model (and, under mixed precision, its float32 twin).

        A compiled model of the same shape left by the run before (gapdemo.model.pool) is reused
        with this run's fresh initial state: its traced training step saves seconds before the first batch.
        """
        fresh = self.build_models(self.config.train.precision)
        pooled = model_pool.take(self.pool_key) if self.pool_key is not None else None
        if pooled is None:
            compile_lockstep_model(fresh.training_model, self.backends, self.config.train.learning_rate,
                                   element_spec, steps_per_execution=self.config.train.steps_per_execution)
            # traced once, reused every epoch
            pooled = model_pool.PooledModels(fresh, training_forward(fresh.training_model))
        else:
            model_pool.load_fresh_state(pooled.models.training_model, fresh.training_model,
                                        self.config.train.learning_rate)
        self.pooled = pooled
        self.models, self.recalibration_forward = pooled.models, pooled.recalibration_forward
        # Saved models and probes compute in float32 whatever the run trained in, so every reader of
        # a run folder gets float32 outputs; under mixed precision a float32 twin takes the weights.
        self.export_models = self.models if self.config.train.precision == "float32" else self.build_models("float32")
        return self.models


    def run_epochs(self, models, train_ds, val_ds) -> int:
        callback = StreamingCallback(self)
        completed = 0
        for epoch in range(self.config.train.epochs):
            callback.epoch_index = epoch
            # The first call into TensorFlow traces the training step first: seconds without a batch.
            self.set_phase("compiling" if epoch == 0 else "training", epoch + 1, 0)
            history = models.training_model.fit(train_ds, epochs=epoch + 1, initial_epoch=epoch, verbose=0,
                                                shuffle=False, callbacks=[callback])
            if self.events.should_stop():
                break  # a partial epoch is not a result; completed ones are already saved
            self.set_phase("validating", epoch + 1, self.batches_per_epoch)
            if self.config.train.recalibrate_bn:
                recalibrate_batch_norm(models.training_model, train_ds, self.config.train.recalibration_batches,
                                       self.recalibration_forward)
            validation = models.training_model.evaluate(val_ds, verbose=0, return_dict=True, callbacks=[callback])
            if self.events.should_stop():
                break
            self.finish_epoch(epoch + 1, {k: v[-1] for k, v in history.history.items()}, validation)
            completed = epoch + 1
        return completed

    def build_models(self, precision: str):
        with dtype_policy(precision):
            return build_lockstep_models(self.backends, self.config.data.image_size, self.config.model.seed,
                                         self.config.model.bn_momentum, self.config.model.dropout_rate,
                                         one_head_at_a_time=not self.engine_baseline)

    def sync_export_models(self) -> None:
        """Copy the trained weights into the float32 models that are saved and probed (mixed precision only)."""
        if self.export_models is not self.models:
            self.export_models.training_model.set_weights(self.models.training_model.get_weights())

    def prepare_run_dir(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        runs.models_dir(self.run_dir).mkdir(exist_ok=True)
        runs.write_config(self.run_dir, self.config.to_dict())
        self.write_status(0)

    def write_status(self, epochs_completed: int) -> None:
        runs.write_status(self.run_dir, "running", "", epochs_completed, time.time() - self.started)

    def load_data(self):
        loader = self.data_loader
        if loader is None:
            from gapdemo.data.sources import load_data as loader

        def progress(message, fraction):
            self.events.on_progress({"phase": "loading data", "message": message, "fraction": float(fraction)})

        data = loader(self.config.data, self.config.train.batch_size, progress)
        info = data.info.to_dict()
        self.events.on_dataset(info)
        runs.write_config(self.run_dir, {**self.config.to_dict(), "dataset_info": info})
        return data

    def check_stop(self) -> None:
        if self.events.should_stop():
            raise StopRequested()

    def input_pipeline(self, dataset):
        """dataset with one label per back-end output, and tf.data's autotuning off (see the module's docstring)."""
        backends = self.backends
        # labels (batch,) -> {backend: (batch, 1)}: one loss per back-end, shapes matching outputs
        dataset = dataset.map(lambda images, labels: (images, {b: tf.expand_dims(labels, -1) for b in backends}))
        return dataset if self.engine_baseline else without_autotuning(dataset)

    def set_phase(self, phase: str, epoch: int, batch: int) -> None:
        self.events.on_progress(self.progress(phase, epoch, batch))

    def progress(self, phase: str, epoch: int, batch: int) -> dict:
        epochs = self.config.train.epochs
        remaining_batches = (epochs - epoch) * self.batches_per_epoch + (self.batches_per_epoch - batch)
        rate = self.images_per_second / self.config.train.batch_size if self.images_per_second else 0.0
        # validation costs about a third of a training step per image; count it in the estimate
        eta = remaining_batches / rate * 1.15 if rate else None
        return {"phase": phase, "epoch": epoch, "epochs": epochs, "batch": batch,
                "batches_per_epoch": self.batches_per_epoch, "images_per_second": self.images_per_second,
                "eta_seconds": eta}

    def record_batch(self, epoch_index: int, batch: int, logs: dict) -> None:
        # Keras reports a call's last batch as first + steps_per_execution - 1, even when the epoch
        # ran out of batches before that: count no more batches than the epoch has.
        done = min(batch + 1, self.batches_per_epoch)
        now = time.time()
        # The rate counts from the end of each epoch's first call: that call also pays the iterator's
        # start-up and, in epoch 1, seconds of tracing, which made the first time-left estimate hours.
        if self.rate_origin[0] != epoch_index:
            self.rate_origin = (epoch_index, done, now)
        elif done > self.rate_origin[1] and now > self.rate_origin[2]:
            self.images_per_second = (done - self.rate_origin[1]) * self.config.train.batch_size / (
                now - self.rate_origin[2])
        step = epoch_index + done / self.batches_per_epoch
        if self.values_epoch != epoch_index:  # every epoch's fit starts Keras' means afresh
            self.batch_values, self.values_epoch = BatchValues(), epoch_index
        values = self.batch_values.update(*self.running_means(logs, done))
        rows = [{"backend": b, "epoch": epoch_index + 1, "batch": done, "step": round(step, 5),
                 "loss": values.get(self.metric_key(b, "loss"), np.nan),
                 "accuracy": values.get(self.metric_key(b, "accuracy"), np.nan)}
                for b in self.backends]
        runs.append_batch_rows(self.run_dir, rows)
        self.events.on_batch(rows, self.progress("training", epoch_index + 1, done))

    def metric_key(self, backend: str, name: str) -> str:
        """Keras names metrics '<output>_<name>', except for a model with a single output."""
        return name if len(self.backends) == 1 else f"{backend}_{name}"

    def logged(self, logs: dict, backend: str, name: str) -> float:
        return float(logs.get(self.metric_key(backend, name), np.nan))

    def running_means(self, logs: dict, batches_done: int) -> tuple[dict, dict]:
        """Keras' means since the epoch began, and how many items each averages, for BatchValues.

        Accuracies, and a single output's loss, are means over images. A multi-output model's
        per-output losses are means over batches: Keras weights each by its static batch size,
        which the pipelines leave unknown (the last batch may be smaller).
        """
        images = batches_done * self.config.train.batch_size
        if self.train_images:
            images = min(images, self.train_images)
        means, counts = {}, {}
        for backend in self.backends:
            for name in ("loss", "accuracy"):
                key = self.metric_key(backend, name)
                if key in logs:
                    means[key] = float(logs[key])
                    counts[key] = batches_done if name == "loss" and len(self.backends) > 1 else images
        return means, counts

    def finish_epoch(self, epoch: int, train_logs: dict, validation: dict) -> None:
        """Save probes, TensorBoard scalars and models, then the metrics, then publish the epoch.

        The models go last but one, all back-ends or none (runs.save_models_atomic): a save that fails
        (a full disk) leaves every back-end's model of the previous epoch whole, matching metrics.csv.
        """
        self.set_phase("saving", epoch, self.batches_per_epoch)
        rows = [{"backend": b, "epoch": epoch, "loss": self.logged(train_logs, b, "loss"),
                 "accuracy": self.logged(train_logs, b, "accuracy"), "val_loss": self.logged(validation, b, "loss"),
                 "val_accuracy": self.logged(validation, b, "accuracy")} for b in self.backends]
        self.sync_export_models()
        self.record_probes(epoch)
        self.write_tensorboard(epoch, rows)
        runs.save_models_atomic(self.export_models.backend_models, runs.models_dir(self.run_dir))
        runs.append_epoch_rows(self.run_dir, rows)
        self.write_status(epoch)
        self.events.on_epoch(rows, epoch)

    def record_probes(self, epoch: int) -> None:
        models = self.export_models
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
            if backend not in self.writers:
                self.writers[backend] = tf.summary.create_file_writer(str(self.run_dir / "tensorboard" / backend))
            with self.writers[backend].as_default(step=epoch):
                for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
                    tf.summary.scalar(name, row[name])
            self.writers[backend].flush()


def pick_probes(images: np.ndarray, labels: np.ndarray, per_class: int = 4):
    """The first per_class validation images of each class (fixed, so epochs are comparable)."""
    labels = np.asarray(labels).astype(int)
    chosen = np.concatenate([np.flatnonzero(labels == label)[:per_class] for label in (0, 1)])
    if len(chosen) == 0:
        chosen = np.arange(min(len(labels), 2 * per_class))
    return images[chosen], labels[chosen]
