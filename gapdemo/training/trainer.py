"""The Keras loop: config, data loader, run directory and event hooks in; epochs on disk out.

Trainer knows no job, queue or page: it reports through a gapdemo.training.events.TrainingEvents object
(a TrainingJob's snapshot, a sweep trial's reports to Ray, the CLI's progress bar) and writes the
run folder through gapdemo.runs. One ``fit`` call per epoch followed by our own ``evaluate``: a
stop request ends ``fit`` after the call into TensorFlow in flight (TrainConfig.steps_per_execution
batches) and the loop then skips validation, so stopping never waits for a full pass.

Its parts, one job each:
  feeder.BatchFeeder       the data loaded, and each split fed as (images, {backend: labels}), autotuning off
  fitter.LockstepFitter      the lockstep model compiled (or reused from gapdemo.model.compiled_cache), an epoch of fit
  streaming.BatchStream    every call's own values, rate and time left to batch_metrics.csv and the events
  epoch_end.validate       batch-norm recalibration, then validation
  saving.RunWriter         config, status, probes, TensorBoard, models and metrics in the run folder
"""

from __future__ import annotations

from pathlib import Path

from gapdemo.config import RunConfig
from gapdemo.model.backends import LockstepModels
from gapdemo.training.epoch_end import validate
from gapdemo.training.events import StopRequested, TrainingEvents
from gapdemo.training.feeder import BatchFeeder, epoch_size
from gapdemo.training.fitter import LockstepFitter, epoch_rows
from gapdemo.training.saving import RunWriter
from gapdemo.training.streaming import BatchStream, StreamingCallback


class Trainer:
    """Trains one run's back-ends in lockstep into run_dir, telling events as it goes.

    Args:
        config: the run's settings (validated by the caller: gapdemo.validation).
        run_dir: the run folder to create and fill (gapdemo.runs documents its layout).
        events: hooks for progress, batches, epochs, probes and stop requests.
        data_loader: (DataConfig, batch_size, progress) -> LoadedData; None = gapdemo.data.sources.load_data.
    """

    def __init__(self, config: RunConfig, run_dir: Path, events: TrainingEvents | None = None, data_loader=None):
        self.config = config
        self.run_dir = Path(run_dir)
        self.events = events or TrainingEvents()
        self.writer = RunWriter(config, self.run_dir, self.events)
        self.feeder = BatchFeeder(config, self.events, data_loader)
        self.fitter = LockstepFitter(config)
        self.stream = BatchStream(config, self.run_dir, self.events)

    @property
    def models(self) -> LockstepModels | None:
        """The compiled models that train (None until train() has built them)."""
        return self.fitter.models

    def train(self) -> int:
        """Train all epochs (or until stopped); return the number of completed epochs."""
        self.writer.prepare()
        # The data load first, then the model: building it in a second thread meanwhile, and tracing its
        # steps on a batch of zeros there, was tried and made the first batch twice as late on two
        # cores, both threads being mostly Python and fighting over the GIL.
        data = self.load_data()
        self.check_stop()
        train_ds, val_ds = (self.feeder.pipeline(dataset) for dataset in (data.train, data.validation))
        self.fitter.prepare(train_ds.element_spec)
        self.stream.start(*epoch_size(data))
        self.writer.choose_probes(data.validation_images, data.validation_labels)
        self.writer.record_probes(0, self.fitter.synced_export_models())
        try:
            return self.run_epochs(train_ds, val_ds)
        finally:
            self.writer.close()
            self.fitter.give_back()

    def load_data(self):
        """The run's LoadedData, described to the events and in the run's config."""
        data = self.feeder.load()
        info = data.info.to_dict()
        self.events.on_dataset(info)
        self.writer.write_dataset_info(info)
        return data

    def check_stop(self) -> None:
        if self.events.should_stop():
            raise StopRequested()

    def run_epochs(self, train_ds, val_ds) -> int:
        callback = StreamingCallback(self.stream, self.events)
        completed = 0
        for epoch in range(self.config.train.epochs):
            callback.epoch_index = epoch
            # The first call into TensorFlow traces the training step first: seconds without a batch.
            self.set_phase("compiling" if epoch == 0 else "training", epoch + 1, 0)
            train_logs = self.fitter.train_epoch(train_ds, epoch, [callback])
            if self.events.should_stop():
                break  # a partial epoch is not a result; completed ones are already saved
            self.set_phase("validating", epoch + 1, self.stream.batches_per_epoch)
            validation = validate(self.fitter, self.config.train, train_ds, val_ds, [callback])
            if self.events.should_stop():
                break
            self.finish_epoch(epoch + 1, train_logs, validation)
            completed = epoch + 1
        return completed

    def finish_epoch(self, epoch: int, train_logs: dict, validation: dict) -> None:
        """Save the epoch (probes, TensorBoard, models, metrics, status: saving.RunWriter), then publish it."""
        self.set_phase("saving", epoch, self.stream.batches_per_epoch)
        rows = epoch_rows(self.fitter.backends, epoch, train_logs, validation)
        self.writer.save_epoch(epoch, rows, self.fitter.synced_export_models())
        self.events.on_epoch(rows, epoch)

    def set_phase(self, phase: str, epoch: int, batch: int) -> None:
        self.events.on_progress(self.stream.progress(phase, epoch, batch))
