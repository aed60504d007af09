"""Lockstep vs the tutorial's way, and the engine's streaming overhead, measured side by side.

Three candidates train the same back-ends on the same synthetic pipelines for the same epochs,
each with validation after every epoch:

  engine     our TrainingJob: one lockstep model, per-batch streaming, per-epoch saves and probes
             (and, where the config has it, the same with batch-norm recalibration switched off)
  bare       a plain model.fit of the same lockstep model (build_lockstep_models), nothing else
  tutorial   the tutorial's way: build_model per back-end and one plain model.fit each, in turn

Runs rotate (E B T, B T E, T E B, ...) and the tables report medians. Targets: engine <= 0.85 x
tutorial; engine <= 1.03 x bare. Usage: python benchmarks/training.py [--quick] [--results PATH]
"""

from __future__ import annotations

import collections
import tempfile
import time

import common

KEY, TITLE = "training", "1-2. Lockstep vs the tutorial's way, and streaming overhead"
LOCKSTEP_TARGET = 0.85  # engine / tutorial
OVERHEAD_TARGET = 0.03  # engine / bare - 1


def add_arguments(parser) -> None:
    parser.add_argument("--image-size", type=int, default=100)
    parser.add_argument("--train-size", type=int, default=640, help="training images (10 batches of 64)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each candidate (rotating order)")


def sizes(args) -> dict:
    if args.quick:
        return {"image_size": 32, "train_size": 32, "batch_size": 16, "epochs": 1, "repeats": 1,
                "backends": ("gap",)}
    return {"image_size": args.image_size, "train_size": args.train_size, "batch_size": 64,
            "epochs": args.epochs, "repeats": args.repeats, "backends": ("fc", "fc_dropout", "gap")}


def run_config(size: dict, runs_dir: str):
    from gapdemo.config import DataConfig, ModelConfig, RunConfig, TrainConfig

    return RunConfig(
        data=DataConfig(image_size=size["image_size"], train_size=size["train_size"],
                        synthetic_size=int(round(size["train_size"] / 0.8))),
        model=ModelConfig(backends=size["backends"]),
        train=TrainConfig(epochs=size["epochs"], batch_size=size["batch_size"], runs_dir=runs_dir),
    )


class EngineClock:
    """Wraps the engine's per-batch and per-epoch hooks to attribute its time (a few us per call).

    Times are kept per label (the candidate running), so two engine candidates do not mix.
    """

    WRAPPED = (("trainer", "Trainer", "record_batch"), ("trainer", "Trainer", "finish_epoch"),
               ("trainer", "Trainer", "record_probes"), ("trainer", "Trainer", "write_tensorboard"),
               ("runs", None, "save_model_atomic"), ("trainer", None, "recalibrate_batch_norm"))

    def __init__(self):
        self.label = ""
        self.seconds = collections.defaultdict(float)  # (label, hook) -> seconds
        self.calls = collections.defaultdict(int)

    def install(self) -> None:
        import importlib

        for module_name, class_name, function_name in self.WRAPPED:
            owner = importlib.import_module(f"gapdemo.{module_name}")
            owner = getattr(owner, class_name) if class_name else owner
            if hasattr(owner, function_name):  # hooks another engineer removes are simply not timed
                setattr(owner, function_name, self._timed(function_name, getattr(owner, function_name)))

    def _timed(self, name, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[self.label, name] += time.perf_counter() - start
                self.calls[self.label, name] += 1
        return wrapper


def make_candidates(config, data, clock: EngineClock) -> dict:
    """name -> callable that trains once and returns its wall time in seconds."""
    import dataclasses

    import keras

    from gapdemo.models import build_lockstep_models, build_model
    from gapdemo.training import TrainingJob

    backends, epochs = list(config.model.backends), config.train.epochs
    model_options = {"image_size": config.data.image_size, "seed": config.model.seed,
                     "bn_momentum": config.model.bn_momentum, "dropout_rate": config.model.dropout_rate}

    def engine_with(run_config, label):
        def engine():
            clock.label = label
            job = TrainingJob(run_config, data_loader=common.fixed_loader(data))
            start = time.perf_counter()
            state = job.run()
            elapsed = time.perf_counter() - start
            if state != "finished":
                raise RuntimeError(f"engine run ended {state}: {job.snapshot().message}")
            return elapsed
        return engine

    def bare():
        start = time.perf_counter()
        models = build_lockstep_models(backends, **model_options)
        common.compile_like_engine(models.training_model, backends, config.train.learning_rate)
        models.training_model.fit(common.per_backend_labels(data.train, backends), epochs=epochs, verbose=0,
                                  validation_data=common.per_backend_labels(data.validation, backends))
        return time.perf_counter() - start

    def tutorial():
        import tensorflow as tf

        start = time.perf_counter()
        column = lambda images, labels: (images, tf.expand_dims(labels, -1))  # noqa: E731  labels (B, 1)
        for backend in backends:
            model = build_model(backend, **model_options)
            model.compile(optimizer=keras.optimizers.Adam(config.train.learning_rate),
                          loss="binary_crossentropy", metrics=["accuracy"])
            model.fit(data.train.map(column), epochs=epochs, verbose=0, validation_data=data.validation.map(column))
        return time.perf_counter() - start

    candidates = {"engine": engine_with(config, "engine")}
    if getattr(config.train, "recalibrate_bn", False):  # the engine's default since 8272f61
        plain = dataclasses.replace(config, train=dataclasses.replace(config.train, recalibrate_bn=False))
        candidates["engine_no_recalibration"] = engine_with(plain, "engine_no_recalibration")
    return {**candidates, "bare": bare, "tutorial": tutorial}


def warm_up(config, data) -> None:
    """An untimed two-batch engine run: one-time imports (saving, TensorBoard) and thread pools start here."""
    import dataclasses

    from gapdemo.training import TrainingJob

    small = dataclasses.replace(data, train=data.train.take(2), validation=data.validation.take(1))
    TrainingJob(dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=1)),
                data_loader=common.fixed_loader(small)).run()
    common.fresh_keras()


def paired_ratios(numerator: list, denominator: list) -> list[float]:
    return [a / b for a, b in zip(numerator, denominator)]


LABELS = {"engine": "engine (TrainingJob, as shipped)",
          "engine_no_recalibration": "engine, recalibrate_bn=False",
          "bare": "bare model.fit of the lockstep model"}


def ratio_rows(seconds: dict, cpu_seconds: dict) -> list[list[str]]:
    """Paired ratios (adjacent runs) for wall and CPU time, with targets and verdicts."""
    def paired(times, top, bottom):
        return common.median(paired_ratios(times[top], times[bottom]))

    rows = []
    for engine in [name for name in ("engine", "engine_no_recalibration") if name in seconds]:
        suffix = "" if engine == "engine" else " (recalibrate_bn=False)"
        lockstep = paired(seconds, engine, "tutorial")
        overhead = paired(seconds, engine, "bare") - 1
        rows += [
            [f"**1. engine / tutorial**{suffix}", f"{lockstep:.2f}", "",
             f"{paired(cpu_seconds, engine, 'tutorial'):.2f}", f"<= {LOCKSTEP_TARGET}",
             common.verdict(lockstep, LOCKSTEP_TARGET)],
            [f"**2. engine / bare − 1**{suffix}", f"{overhead:+.1%}", "",
             f"{paired(cpu_seconds, engine, 'bare') - 1:+.1%}", f"<= +{OVERHEAD_TARGET:.0%}",
             common.verdict(overhead, OVERHEAD_TARGET)],
        ]
    rows.append(["bare lockstep / tutorial", f"{paired(seconds, 'bare', 'tutorial'):.2f}", "",
                 f"{paired(cpu_seconds, 'bare', 'tutorial'):.2f}", "", ""])
    return rows


def build_report(seconds: dict, cpu_seconds: dict, clock: EngineClock, size: dict) -> tuple[str, list[str]]:
    labels = {**LABELS, "tutorial": f"tutorial: {len(size['backends'])} x build_model + model.fit"}
    rows = [[labels[name], f"{common.median(seconds[name]):.1f}", f"{common.spread(seconds[name]):.1f}",
             f"{common.median(cpu_seconds[name]):.1f}", "", ""] for name in seconds]
    rows += ratio_rows(seconds, cpu_seconds)
    table = common.format_table(["measure", "wall s (median) / ratio", "wall range s", "CPU s / ratio",
                                 "target", "verdict"], rows)
    lockstep = common.median(paired_ratios(seconds["engine"], seconds["tutorial"]))
    overhead = common.median(paired_ratios(seconds["engine"], seconds["bare"])) - 1
    notes = [setup_note(size), engine_time_note(seconds, clock, size)]
    recalibration = clock.seconds["engine", "recalibrate_batch_norm"]
    if overhead > OVERHEAD_TARGET and recalibration:
        plain = ""
        if "engine_no_recalibration" in seconds:
            plain_overhead = common.median(paired_ratios(seconds["engine_no_recalibration"], seconds["bare"])) - 1
            plain_cpu = common.median(paired_ratios(cpu_seconds["engine_no_recalibration"], cpu_seconds["bare"])) - 1
            plain = (f" With it switched off the engine measured {plain_overhead:+.1%} wall ({plain_cpu:+.1%} CPU) "
                     "against a bare fit.")
        notes.append(
            "Target 2 missed mainly because of the batch-norm recalibration before each validation (trainer.py, "
            "recalibrate_batch_norm, on by default): every epoch it builds a new tf.function (a fresh trace of "
            "all heads' forward pass) and runs recalibration_batches (default 8) extra forward batches in "
            "training mode." + plain)
    elif overhead > OVERHEAD_TARGET:
        notes.append("Target 2 missed: see where the engine's extra time goes, above.")
    if lockstep > LOCKSTEP_TARGET:
        notes.append(
            "Target 1 missed: the heads do the same arithmetic whether they train in one model or in several "
            "(bare lockstep / tutorial above); lockstep saves only per-step overhead, the duplicate input "
            "pipeline and the extra traces, and the engine's own overhead (target 2) eats that saving.")
    return table, notes


def setup_note(size: dict) -> str:
    return (f"Setup: {', '.join(size['backends'])} at {size['image_size']}x{size['image_size']}, batch "
            f"{size['batch_size']}, {size['train_size']} synthetic training images (validation 1/8 of that), "
            f"{size['epochs']} epochs, validation every epoch; {size['repeats']} runs of each in rotating order. "
            "Ratios are medians of the ratios of adjacent runs; CPU is this process's user + system time, which "
            "moves less than wall time when other processes share the 2 cores. Times include building, compiling "
            "and tracing; the data are loaded once for all.")


def engine_time_note(seconds: dict, clock: EngineClock, size: dict) -> str:
    epochs = max(size["repeats"] * size["epochs"], 1)
    per_epoch = {name: clock.seconds["engine", name] / epochs
                 for name in ("recalibrate_batch_norm", "finish_epoch", "save_model_atomic", "record_probes",
                              "write_tensorboard")}
    per_batch_ms = 1000 * clock.seconds["engine", "record_batch"] / max(clock.calls["engine", "record_batch"], 1)
    epoch_seconds = common.median(seconds["engine"]) / size["epochs"]
    fixed = per_epoch["finish_epoch"]
    return (f"Where the engine's extra time goes, per epoch (wall, mean): batch-norm recalibration "
            f"{per_epoch['recalibrate_batch_norm']:.2f} s; finish_epoch {fixed:.2f} s, of which saving the models "
            f"{per_epoch['save_model_atomic']:.2f} s, probes {per_epoch['record_probes']:.2f} s (counting the one "
            f"before training) and TensorBoard {per_epoch['write_tensorboard']:.2f} s; per-batch streaming "
            f"{per_batch_ms:.2f} ms per batch. An engine epoch took about {epoch_seconds:.1f} s here; the "
            f"finish_epoch work would be about {fixed / (epoch_seconds * 2000 / size['train_size']):.1%} of an "
            "epoch at the default 2000 images.")


def main(argv=None) -> None:
    args = common.parse_args(__doc__.splitlines()[0], add_arguments, argv)
    load_before = common.load_average()
    size = sizes(args)
    print(f"training benchmark: {size}", flush=True)
    clock = EngineClock()
    clock.install()
    with tempfile.TemporaryDirectory(prefix="gapdemo-bench-") as runs_dir:
        config = run_config(size, runs_dir)
        data = common.synthetic_data(size["image_size"], size["train_size"], size["batch_size"],
                                     config.data.synthetic_size)
        candidates = make_candidates(config, data, clock)
        if not args.quick:  # the smoke test skips it: it checks that the script runs, not its figures
            warm_up(config, data)
        seconds, cpu_seconds = common.alternate(candidates, size["repeats"], before_each=common.fresh_keras)
    table, notes = build_report(seconds, cpu_seconds, clock, size)
    common.report(args, KEY, TITLE, table, notes, load_before)


if __name__ == "__main__":
    main()
