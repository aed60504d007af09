"""Lockstep vs the tutorial's way, and the engine's streaming overhead, measured side by side.

Three candidates train the same back-ends on the same synthetic pipelines for the same epochs,
each with validation after every epoch:

  engine     our TrainingJob: one lockstep model, per-batch streaming, per-epoch saves and probes
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
    """Wraps the engine's per-batch and per-epoch hooks to attribute its time (a few us per call)."""

    WRAPPED = (("trainer", "Trainer", "record_batch"), ("trainer", "Trainer", "finish_epoch"),
               ("trainer", "Trainer", "record_probes"), ("trainer", "Trainer", "write_tensorboard"),
               ("runs", None, "save_model_atomic"))

    def __init__(self):
        self.seconds = collections.defaultdict(float)
        self.calls = collections.defaultdict(int)

    def install(self) -> None:
        import importlib

        for module_name, class_name, function_name in self.WRAPPED:
            owner = importlib.import_module(f"gapdemo.{module_name}")
            owner = getattr(owner, class_name) if class_name else owner
            setattr(owner, function_name, self._timed(function_name, getattr(owner, function_name)))

    def _timed(self, name, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
                self.calls[name] += 1
        return wrapper


def make_candidates(config, data) -> dict:
    """name -> callable that trains once and returns its wall time in seconds."""
    import keras

    from gapdemo.models import build_lockstep_models, build_model
    from gapdemo.training import TrainingJob

    backends, epochs = list(config.model.backends), config.train.epochs
    model_options = {"image_size": config.data.image_size, "seed": config.model.seed,
                     "bn_momentum": config.model.bn_momentum, "dropout_rate": config.model.dropout_rate}

    def engine():
        job = TrainingJob(config, data_loader=common.fixed_loader(data))
        start = time.perf_counter()
        state = job.run()
        elapsed = time.perf_counter() - start
        if state != "finished":
            raise RuntimeError(f"engine run ended {state}: {job.snapshot().message}")
        return elapsed

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

    return {"engine": engine, "bare": bare, "tutorial": tutorial}


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


def build_report(seconds: dict, clock: EngineClock, size: dict, runs: int) -> tuple[str, list[str]]:
    engine, bare, tutorial = (common.median(seconds[name]) for name in ("engine", "bare", "tutorial"))
    lockstep_ratio = common.median(paired_ratios(seconds["engine"], seconds["tutorial"]))
    bare_ratio = common.median(paired_ratios(seconds["bare"], seconds["tutorial"]))
    overhead = common.median(paired_ratios(seconds["engine"], seconds["bare"])) - 1.0
    rows = [
        ["engine (TrainingJob, lockstep)", f"{engine:.1f}", f"{common.spread(seconds['engine']):.1f}", "", "", ""],
        ["bare model.fit, lockstep model", f"{bare:.1f}", f"{common.spread(seconds['bare']):.1f}",
         f"{bare_ratio:.2f} x tutorial", "", ""],
        [f"tutorial: {len(size['backends'])} x model.fit", f"{tutorial:.1f}", f"{common.spread(seconds['tutorial']):.1f}", "", "", ""],
        ["**1. engine / tutorial**", "", "", f"{lockstep_ratio:.2f}", f"<= {LOCKSTEP_TARGET}",
         common.verdict(lockstep_ratio, LOCKSTEP_TARGET)],
        ["**2. engine overhead vs bare**", "", "", f"{overhead:+.1%}", f"<= +{OVERHEAD_TARGET:.0%}",
         common.verdict(overhead, OVERHEAD_TARGET)],
    ]
    table = common.format_table(["candidate", "median s", "range s", "ratio", "target", "verdict"], rows)
    per_epoch = {name: clock.seconds[name] / max(runs * size["epochs"], 1)
                 for name in ("finish_epoch", "save_model_atomic", "record_probes", "write_tensorboard")}
    per_batch_ms = 1000 * clock.seconds["record_batch"] / max(clock.calls["record_batch"], 1)
    epoch_seconds = engine / size["epochs"]
    default_epoch_seconds = bare / size["epochs"] * 2000 / size["train_size"]  # rough: includes tracing
    notes = [
        f"Setup: {', '.join(size['backends'])} at {size['image_size']}x{size['image_size']}, batch {size['batch_size']}, "
        f"{size['train_size']} synthetic training images (validation 1/8 of that), {size['epochs']} epochs, "
        f"validation every epoch; {size['repeats']} runs of each in rotating order; ratios are medians of "
        "the ratios of adjacent runs. Times include building, compiling and tracing; data are loaded once.",
        f"Where the engine's extra time goes (per epoch, mean over its runs): finish_epoch "
        f"{per_epoch['finish_epoch']:.2f} s, of which saving the models {per_epoch['save_model_atomic']:.2f} s, "
        f"probes {per_epoch['record_probes']:.2f} s (with the one before training), TensorBoard {per_epoch['write_tensorboard']:.2f} s; "
        f"per-batch streaming {per_batch_ms:.2f} ms per batch. A whole epoch took about {epoch_seconds:.1f} s "
        f"here; the fixed per-epoch cost is a smaller share of the default run's longer epochs "
        f"(2000 images: about {per_epoch['finish_epoch'] / default_epoch_seconds:.1%}).",
    ]
    if lockstep_ratio > LOCKSTEP_TARGET:
        notes.append(
            f"Target 1 missed: the three heads do the same arithmetic whether they train in one model or in three "
            f"(bare lockstep / tutorial = {bare_ratio:.2f}); lockstep saves only the per-step overhead, the "
            "duplicate input pipeline and two of three traces, which on 2 cores is small next to the convolutions.")
    if overhead > OVERHEAD_TARGET:
        notes.append(
            "Target 2 missed: the engine's extra time is mostly the fixed per-epoch work above (saving every "
            "back-end's .keras file, probes, TensorBoard) plus one separate evaluate() per epoch; at these short "
            "epochs it weighs more than in a default-sized run.")
    return table, notes


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
        candidates = make_candidates(config, data)
        if not args.quick:  # the smoke test skips it: it checks that the script runs, not its figures
            warm_up(config, data)
        seconds = common.alternate(candidates, size["repeats"], before_each=common.fresh_keras)
    table, notes = build_report(seconds, clock, size, size["repeats"])
    common.report(args, KEY, TITLE, table, notes, load_before)


if __name__ == "__main__":
    main()
