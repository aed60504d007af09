import threading
import time

import keras
import numpy as np
import pandas as pd
import pytest
from in_thread import InThreadScheduler

from gapdemo import runs
from gapdemo.config import tiny_config
from gapdemo.data.pipeline import make_pipeline
from gapdemo.model import compiled_cache
from gapdemo.model.backends import BACKENDS, build_model
from gapdemo.model.batchnorm import recalibrate_batch_norm, training_forward
from gapdemo.model.lockstep import LockstepModel
from gapdemo.training import streaming
from gapdemo.training.events import TrainingEvents
from gapdemo.training.job import TrainingJob
from gapdemo.training.trainer import Trainer
from gapdemo.validation import validate_run_config
from toy_data import toy_arrays, toy_loader, toy_pipeline


def tiny(runs_dir, backends=("fc", "gap"), epochs=1, train_size=64):
    config = tiny_config(str(runs_dir), tuple(backends))
    config.train.epochs = epochs
    config.data.train_size = train_size
    return config


def test_every_backend_trains_and_loss_falls(runs_dir):
    job = TrainingJob(tiny(runs_dir, BACKENDS, epochs=3), data_loader=toy_loader(96))
    assert job.run() == "finished", job.snapshot().message
    metrics = pd.read_csv(job.run_dir / "metrics.csv")
    assert sorted(metrics.backend.unique()) == sorted(BACKENDS)
    for backend, rows in metrics.groupby("backend"):
        rows = rows.sort_values("epoch")
        assert list(rows.epoch) == [1, 2, 3]
        assert rows.loss.iloc[-1] < rows.loss.iloc[0], backend
    snapshot = job.snapshot()
    assert snapshot.state == "finished" and len(snapshot.epoch_metrics) == 3 * len(BACKENDS)
    assert snapshot.progress["epoch"] == 3 and snapshot.probes_epoch == 3
    assert snapshot.probes["gap"]["cams"].shape == (8, 2, 2)
    assert snapshot.probes["fc"]["cams"] is None and snapshot.probes["fc"]["feature_averages"].shape == (8, 64)


def test_run_directory_contents(runs_dir):
    job = TrainingJob(tiny(runs_dir), data_loader=toy_loader())
    job.run()
    run_dir = job.run_dir
    status = runs.read_json(run_dir / "status.json")
    assert status["state"] == "finished" and status["epochs_completed"] == 1
    assert runs.read_json(run_dir / "config.json")["model"]["backends"] == ["fc", "gap"]
    batches = pd.read_csv(run_dir / "batch_metrics.csv")
    assert len(batches) == 2 * 4  # 64 images / batch 16 = 4 batches, two back-ends
    assert batches.step.max() == pytest.approx(1.0)
    models = runs.load_models(run_dir)
    assert list(models) == ["fc", "gap"]
    assert models["gap"](np.zeros((1, 32, 32, 3), "float32")).shape == (1, 1)
    epoch, probes = runs.load_probes(run_dir)
    assert epoch == 1 and probes["gap"]["cams"].shape == (8, 2, 2)
    assert list((run_dir / "tensorboard" / "gap").iterdir())
    summary = runs.list_runs(runs_dir)[0]
    assert summary.state == "finished" and summary.epochs_completed == 1 and set(summary.best_val_accuracy) == {"fc", "gap"}


def test_lockstep_backend_learns_exactly_as_if_trained_alone(runs_dir):
    together = TrainingJob(tiny(runs_dir, ("fc", "gap"), epochs=2), data_loader=toy_loader())
    alone = TrainingJob(tiny(runs_dir, ("gap",), epochs=2), data_loader=toy_loader())
    together.run()
    alone.run()
    batches_together = pd.read_csv(together.run_dir / "batch_metrics.csv").query("backend == 'gap'")
    batches_alone = pd.read_csv(alone.run_dir / "batch_metrics.csv")
    np.testing.assert_allclose(batches_together.loss.to_numpy(), batches_alone.loss.to_numpy(), rtol=1e-4)
    weights_together = runs.load_models(together.run_dir)["gap"].get_layer("gap_classifier").get_weights()
    weights_alone = runs.load_models(alone.run_dir)["gap"].get_layer("gap_classifier").get_weights()
    np.testing.assert_allclose(weights_together[0], weights_alone[0], rtol=1e-3, atol=1e-5)


def test_several_batches_per_call_learn_as_one_per_call_and_stream_per_call(runs_dir):
    results = {}
    for steps_per_execution in (1, 3):
        config = tiny(runs_dir, ("fc", "gap"), epochs=2)  # 64 images / batch 16 = 4 batches per epoch
        config.train.steps_per_execution = steps_per_execution
        job = TrainingJob(config, data_loader=toy_loader())
        assert job.run() == "finished", job.snapshot().message
        results[steps_per_execution] = job
    batches = pd.read_csv(results[3].run_dir / "batch_metrics.csv").query("backend == 'gap'")
    # calls of 3 batches, then the epoch's last one (Keras would call it batch 6 of 4)
    assert list(batches.batch) == [3, 4, 3, 4] and list(batches.epoch) == [1, 1, 2, 2]
    assert batches.step.max() == pytest.approx(2.0)
    one_per_call = pd.read_csv(results[1].run_dir / "metrics.csv")
    three_per_call = pd.read_csv(results[3].run_dir / "metrics.csv")
    for column in ("loss", "val_loss"):
        np.testing.assert_allclose(three_per_call[column], one_per_call[column], rtol=1e-3)
    weights = [runs.load_models(results[n].run_dir)["fc"].get_layer("fc_classifier").get_weights()[0] for n in (1, 3)]
    np.testing.assert_allclose(weights[1], weights[0], rtol=1e-3, atol=1e-5)


def test_batches_per_call_outside_its_range_is_refused(runs_dir):
    config = tiny(runs_dir)
    config.train.steps_per_execution = 0
    assert validate_run_config(config, served=False) == ["Batches per TensorFlow call must be from 1 to 64."]


def wait_for(condition, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_stop_within_one_batch_keeps_completed_epochs(runs_dir):
    manager = InThreadScheduler()
    job = manager.submit(tiny(runs_dir, ("fc", "gap"), epochs=5, train_size=320), data_loader=toy_loader(320), served=False)
    assert wait_for(lambda: len(job.snapshot().epoch_metrics) >= 2 and len(job.snapshot().batch_metrics) >= 2 * 20 + 4)
    rows_at_stop = len(job.snapshot().batch_metrics)
    job.stop()
    epochs_at_stop = len(job.snapshot().epoch_metrics) // 2
    assert job.state in ("stopping", "stopped")
    assert job.wait(60)
    snapshot = job.snapshot()
    assert snapshot.state == "stopped"
    assert len(snapshot.batch_metrics) - rows_at_stop <= 2 * 2  # at most the batch in flight (+ one)
    metrics = pd.read_csv(job.run_dir / "metrics.csv")
    assert epochs_at_stop < 5 and sorted(metrics.epoch.unique()) == list(range(1, epochs_at_stop + 1))
    assert runs.read_status(job.run_dir)["epochs_completed"] == epochs_at_stop
    assert set(runs.load_models(job.run_dir)) == {"fc", "gap"}


def test_failure_mid_run_is_reported_and_logged(runs_dir):
    job = TrainingJob(tiny(runs_dir), data_loader=toy_loader(fail_mid_run=True))
    assert job.run() == "failed"
    message = job.snapshot().message
    assert "truncated" in message and "Traceback" not in message
    assert "Traceback" in (job.run_dir / "log.txt").read_text()
    assert runs.read_status(job.run_dir)["state"] == "failed"


def test_failing_data_source_fails_job_with_its_message(runs_dir):
    def missing(config, batch_size, progress=None):
        raise FileNotFoundError("The folder /nowhere does not exist.")

    job = TrainingJob(tiny(runs_dir), data_loader=missing)
    assert job.run() == "failed"
    assert job.snapshot().message == "The folder /nowhere does not exist."


def test_queue_runs_jobs_one_at_a_time_in_the_order_they_came(runs_dir):
    """Four jobs: when each starts, every earlier one has finished and every later one still waits."""
    manager, jobs, starts = InThreadScheduler(), [], []  # starts: (job index, every job's state at that moment)
    all_submitted = threading.Event()

    def loader(index):
        def load(data_config, batch_size, progress=None):
            all_submitted.wait(60)  # the first job starts at once: let the others queue up behind it
            starts.append((index, [job.state for job in jobs]))
            return toy_loader(32, 16)(data_config, batch_size, progress)
        return load

    for index in range(4):  # one waiting run per owner: four visitors
        jobs.append(manager.submit(tiny(runs_dir, ("gap",), train_size=32), data_loader=loader(index),
                                   owner=f"visitor-{index}", served=False))
    all_submitted.set()
    assert all(job.wait(300) for job in manager.jobs())
    assert [index for index, _ in starts] == [0, 1, 2, 3]
    for index, states in starts:
        assert states == ["finished"] * index + ["running"] + ["queued"] * (3 - index), (index, states)
    assert [job.state for job in jobs] == ["finished"] * 4 and manager.queued() == []
    assert all(job.snapshot().elapsed_seconds > 0 for job in jobs)


def test_stopping_a_queued_job_never_runs_it(runs_dir):
    manager = InThreadScheduler()
    first = manager.submit(tiny(runs_dir, ("gap",)), data_loader=toy_loader(), served=False)
    second = manager.submit(tiny(runs_dir, ("gap",)), data_loader=toy_loader(), served=False)
    second.stop()
    assert all(job.wait(120) for job in manager.jobs())
    assert first.state == "finished" and second.state == "stopped"
    assert not second.run_dir.exists()


def test_invalid_config_is_refused_before_queueing(runs_dir):
    config = tiny(runs_dir)
    config.model.backends = ("fc", "svm")
    with pytest.raises(ValueError, match="svm"):
        InThreadScheduler().submit(config, served=False)


def test_batch_norm_recalibration_gives_population_statistics():
    model = build_model("gap", 32, bn_momentum=0.99)
    images, labels = toy_arrays(64)
    dataset = toy_pipeline(images, labels, 16, shuffle=False)
    recalibrate_batch_norm(model, dataset, batch_count=3)
    conv1 = keras.Model(model.inputs, model.get_layer("gap_conv1").output)
    batch_means = [np.asarray(conv1(batch)).mean(axis=(0, 1, 2)) for batch, _ in dataset.take(3)]
    bn1 = model.get_layer("gap_bn1")
    np.testing.assert_allclose(np.asarray(bn1.moving_mean), np.mean(batch_means, axis=0), rtol=1e-4, atol=1e-5)
    assert bn1.momentum == 0.99  # restored for training


def test_recalibration_reuses_one_traced_forward_pass_across_epochs():
    model = build_model("gap", 32, bn_momentum=0.99)
    images, labels = toy_arrays(40)
    dataset = toy_pipeline(images, labels, 16, shuffle=False)  # batches of 16, 16, 8
    forward = training_forward(model)
    recalibrate_batch_norm(model, dataset, batch_count=3, forward=forward)
    kernel = model.get_layer("gap_conv1").kernel
    kernel.assign(kernel * 2.0)  # "another epoch": the statistics must follow the new weights
    recalibrate_batch_norm(model, dataset, batch_count=3, forward=forward)
    reused = np.asarray(model.get_layer("gap_bn1").moving_mean)
    recalibrate_batch_norm(model, dataset, batch_count=3)  # a fresh trace, as a reference
    np.testing.assert_allclose(reused, np.asarray(model.get_layer("gap_bn1").moving_mean), rtol=1e-5, atol=1e-6)
    assert forward.experimental_get_tracing_count() == 1  # the smaller last batch did not retrace it


def test_a_job_traces_the_training_step_once(runs_dir, monkeypatch):
    """Variables created inside the first trace make TensorFlow trace a second time; the engine builds them first."""
    config = tiny(runs_dir, epochs=2, train_size=40)
    compiled_cache.take(compiled_cache.shape_key(config))  # a model kept by an earlier test's run would be traced already
    traced_shapes = []
    original = LockstepModel.train_step

    def counting_train_step(self, data):  # Python runs it once per trace
        traced_shapes.append(tuple(data[0].shape))
        return original(self, data)

    monkeypatch.setattr(LockstepModel, "train_step", counting_train_step)
    job = TrainingJob(config, data_loader=toy_loader(64))  # batches 16, 16, 8
    assert job.run() == "finished", job.snapshot().message
    assert traced_shapes == [(None, 32, 32, 3)]  # one trace, for any batch size: the short last batch included


class PhaseEvents(TrainingEvents):
    """(phase, epoch, batch) of every progress, and ("batch", epoch, batch) of every call, in order."""

    def __init__(self):
        self.published = []

    def on_progress(self, progress):
        if "epoch" in progress:  # the data loader's progress has none
            self.published.append((progress["phase"], progress["epoch"], progress["batch"]))

    def on_batch(self, rows, progress):
        self.published.append(("batch", progress["epoch"], progress["batch"]))


def test_first_epoch_says_it_is_compiling_until_its_first_batch(runs_dir):
    events = PhaseEvents()
    Trainer(tiny(runs_dir, epochs=2, train_size=32), runs_dir / "phases", events, data_loader=toy_loader(64)).train()
    published = events.published
    starts = [entry for entry in published if entry[0] in ("compiling", "training")]
    assert starts == [("compiling", 1, 0), ("training", 2, 0)]
    assert published.index(("compiling", 1, 0)) + 1 == published.index(("batch", 1, 1))
    assert published[-1] == ("saving", 2, 4)  # toy_loader(64): four batches of 16


def test_images_per_second_leave_out_each_epochs_first_call(runs_dir, monkeypatch):
    """The first call of an epoch includes start-up (and tracing in epoch 1); the rate counts from its end."""
    config = tiny(runs_dir)  # batch 16
    run_dir = runs_dir / "rate"
    run_dir.mkdir(parents=True)
    stream = streaming.BatchStream(config, run_dir, TrainingEvents())
    stream.start(batches_per_epoch=10, train_images=160)
    clock = iter([100.0, 101.0, 102.0, 200.0, 200.5])  # epoch 1: a 90 s trace before 100.0
    monkeypatch.setattr(streaming.time, "time", lambda: next(clock))
    rates = []
    for epoch_index, batch in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]:
        stream.record_batch(epoch_index, batch, {})
        rates.append(stream.images_per_second)
    assert rates == [0.0, 16.0, 16.0, 16.0, 32.0]


def test_recalibration_rescues_inference_after_a_short_run(runs_dir):
    results = {}
    for recalibrate in (False, True):
        config = tiny(runs_dir, ("gap",), epochs=2, train_size=96)
        config.model.bn_momentum = 0.99  # Keras' default: far too slow for 12 steps
        config.train.recalibrate_bn = recalibrate
        job = TrainingJob(config, data_loader=toy_loader(96, 64))
        job.run()
        results[recalibrate] = job.snapshot().epoch_metrics[-1]["val_loss"]
    assert results[True] < results[False]


class RecordingEvents(TrainingEvents):
    """Every hook call in order, and a stop request after a given number of epochs."""

    def __init__(self, stop_after_epochs=None):
        self.calls, self.stop_after_epochs, self.epochs_seen = [], stop_after_epochs, 0

    def should_stop(self):
        return self.stop_after_epochs is not None and self.epochs_seen >= self.stop_after_epochs

    def on_dataset(self, info):
        self.calls.append(("dataset", info["dataset"]))

    def on_batch(self, rows, progress):
        self.calls.append(("batch", rows[0]["epoch"], len(rows)))

    def on_epoch(self, rows, epochs_completed):
        self.epochs_seen = epochs_completed
        self.calls.append(("epoch", epochs_completed, sorted(row["backend"] for row in rows)))

    def on_probes(self, epoch, probes):
        self.calls.append(("probes", epoch, sorted(probes)))


def test_trainer_needs_only_config_run_dir_and_events(runs_dir):
    """No job, no queue: the loop reports through its events and writes the run folder itself."""
    events = RecordingEvents(stop_after_epochs=1)
    run_dir = runs_dir / "plain"
    completed = Trainer(tiny(runs_dir, epochs=3), run_dir, events, data_loader=toy_loader(64)).train()
    assert completed == 1  # asked to stop once the first epoch was done
    kinds = [call[0] for call in events.calls]
    assert kinds[0] == "dataset" and kinds[1] == "probes" and events.calls[1][1] == 0
    assert ("epoch", 1, ["fc", "gap"]) in events.calls and ("probes", 1, ["fc", "gap"]) in events.calls
    assert all(call[1] in (1, 2) for call in events.calls if call[0] == "batch")
    assert not any(call[0] == "epoch" and call[1] > 1 for call in events.calls)
    assert list(runs.read_epoch_metrics(run_dir).epoch.unique()) == [1]
    assert runs.read_json(run_dir / "status.json")["epochs_completed"] == 1


def pipeline_loader(train_count, validation_count):
    """toy_loader's data through the real pipeline (gapdemo.data.pipeline: parallel map and prefetch)."""
    def load(data_config, batch_size, progress=None):
        data = toy_loader(train_count, validation_count)(data_config, batch_size, progress)
        images, labels = toy_arrays(train_count, data_config.image_size, seed=data_config.seed)
        data.train = make_pipeline(images, labels, batch_size, True, data_config.seed)
        data.validation = make_pipeline(data.validation_images, data.validation_labels, batch_size, False, 0)
        return data

    return load


def test_no_fit_or_evaluate_of_the_engine_idles_after_its_last_batch(runs_dir, monkeypatch):
    """Deleting an autotuned tf.data iterator waited up to seconds after every fit and evaluate; not any more."""
    tails = []  # (method, seconds from its last batch to its return)

    class Clock(keras.callbacks.Callback):
        last_batch_end = None

        def on_train_batch_end(self, batch, logs=None):
            time.sleep(0.03)  # slow batches: long enough for tf.data's tuner to settle into long sleeps
            self.last_batch_end = time.perf_counter()

        def on_test_batch_end(self, batch, logs=None):
            self.last_batch_end = time.perf_counter()

    def timed(method):
        def wrapper(self, *args, callbacks=None, **kwargs):
            clock = Clock()
            result = method(self, *args, callbacks=[*(callbacks or []), clock], **kwargs)
            if clock.last_batch_end is not None:
                tails.append((method.__name__, time.perf_counter() - clock.last_batch_end))
            return result
        return wrapper

    monkeypatch.setattr(keras.Model, "fit", timed(keras.Model.fit))
    monkeypatch.setattr(keras.Model, "evaluate", timed(keras.Model.evaluate))
    job = TrainingJob(tiny(runs_dir, ("gap",), epochs=3, train_size=480), data_loader=pipeline_loader(480, 64))
    assert job.run() == "finished", job.snapshot().message
    assert [name for name, _ in tails] == ["fit", "evaluate"] * 3
    assert max(seconds for _, seconds in tails) < 0.25, tails


@pytest.mark.parametrize("backends", [("fc", "gap"), ("gap",)])
def test_batch_rows_hold_each_batchs_own_loss_and_accuracy(runs_dir, backends):
    """Not Keras' running mean since the epoch began: with a zero learning rate the weights never
    change, so every row must equal the model's loss and accuracy on that very batch."""
    config = tiny(runs_dir, backends, epochs=2, train_size=40)  # batches of 16, 16 and 8
    config.train.learning_rate = 0.0
    config.train.recalibrate_bn = False
    run_dir = runs_dir / "own"

    def unshuffled(data_config, batch_size, progress=None):
        data = toy_loader(40, 16)(data_config, batch_size, progress)
        images, labels = toy_arrays(40, data_config.image_size, seed=data_config.seed)
        data.train = toy_pipeline(images, labels, batch_size, shuffle=False)
        return data

    Trainer(config, run_dir, data_loader=unshuffled).train()
    images, labels = toy_arrays(40, 32, seed=0)
    models = runs.load_models(run_dir)
    rows = runs.read_batch_metrics(run_dir)
    for backend in backends:
        recorded = rows[rows.backend == backend].sort_values(["epoch", "batch"])
        assert list(recorded.batch) == [1, 2, 3] * 2
        expected = []
        for start in (0, 16, 32):  # BN normalises with the batch's own statistics in training mode
            batch = images[start:start + 16].astype("float32") / 255.0
            truth = labels[start:start + 16].astype("float32")[:, None]
            predicted = models[backend](batch, training=True)
            expected.append((float(keras.losses.binary_crossentropy(truth, predicted).numpy().mean()),
                             float(keras.metrics.binary_accuracy(truth, predicted).numpy().mean())))
        expected = np.array(expected * 2)
        np.testing.assert_allclose(recorded.loss, expected[:, 0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(recorded.accuracy, expected[:, 1], atol=1e-6)


def test_a_run_reusing_the_last_runs_compiled_model_trains_exactly_as_a_fresh_one(runs_dir):
    """The compiled-model cache keeps the traced step; weights, seed states and optimizer start afresh each run."""
    def run(seed, backends=("fc_dropout", "gap"), dropout_rate=0.5):
        config = tiny(runs_dir, backends=backends, epochs=2)
        config.model.seed, config.train.seed = seed, seed
        config.model.dropout_rate = dropout_rate
        job = TrainingJob(config, data_loader=toy_loader(64))
        assert job.run() == "finished", job.snapshot().message
        kept = compiled_cache.take(compiled_cache.shape_key(config))  # what the run gave back
        compiled_cache.give_back(compiled_cache.shape_key(config), kept)
        return runs.read_epoch_metrics(runs_dir / job.snapshot().run_id), kept.models.training_model

    compiled_cache.take(compiled_cache.shape_key(tiny(runs_dir, backends=("fc_dropout", "gap"))))  # not an earlier test's
    fresh, first_model = run(seed=1)
    other, second_model = run(seed=2)  # same shape: reuses the model, loading seed 2's initial weights
    again, third_model = run(seed=1)  # again, after seed 2 moved every weight, seed state and Adam moment
    assert first_model is second_model is third_model
    assert not np.allclose(other.val_loss, fresh.val_loss)
    pd.testing.assert_frame_equal(again, fresh, rtol=1e-5, atol=1e-6)
    _, another_shape = run(seed=1, backends=("fc", "gap"))  # builds afresh
    assert another_shape is not first_model


def test_a_kept_model_trains_another_dropout_rate_exactly_as_a_fresh_one(runs_dir):
    """The dropout rate is a variable: a sweep over rates reuses one traced step and each rate still applies."""
    def run(dropout_rate):
        config = tiny(runs_dir, backends=("fc_dropout",), epochs=2)
        config.model.dropout_rate = dropout_rate
        job = TrainingJob(config, data_loader=toy_loader(64))
        assert job.run() == "finished", job.snapshot().message
        kept = compiled_cache.take(compiled_cache.shape_key(config))
        compiled_cache.give_back(compiled_cache.shape_key(config), kept)
        run_dir = runs_dir / job.snapshot().run_id
        return runs.read_epoch_metrics(run_dir), kept.models.training_model, runs.load_models(run_dir)["fc_dropout"]

    shape = compiled_cache.shape_key(tiny(runs_dir, backends=("fc_dropout",)))  # the same for every rate
    compiled_cache.take(shape)
    fresh_low, _, _ = run(0.1)
    compiled_cache.take(shape)
    fresh_high, high_model, _ = run(0.7)
    reused_low, low_model, saved = run(0.1)  # the 0.7 run's compiled model, set to 0.1
    assert low_model is high_model
    assert not np.allclose(fresh_low.loss, fresh_high.loss)
    pd.testing.assert_frame_equal(reused_low, fresh_low, rtol=1e-5, atol=1e-6)
    assert saved.get_layer("fc_dropout_dropout").rate == pytest.approx(0.1)  # the saved model says so too
