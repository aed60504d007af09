"""Shared pieces of the benchmarks: arguments, timing, tables, the machine line and RESULTS.md sections.

Every benchmark is a script (``python -m benchmarks.<name> [--quick] [--results PATH]``) that prints
one table and rewrites only its own section of RESULTS.md, between ``<!-- <key>:begin -->`` and
``<!-- <key>:end -->`` markers, so the scripts can run separately and in any order.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import gc
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import psutil

from gapdemo.config import DataConfig
from gapdemo.data.sources import load_data

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_DIR = REPO_ROOT / "benchmarks"
DEFAULT_RESULTS = BENCHMARKS_DIR / "RESULTS.md"
RESULTS_HEADER = (
    "# gapdemo benchmarks\n\n"
    "Side-by-side ratio benchmarks (`python -m benchmarks.run_all`, or one `python -m benchmarks.<name>`).\n"
    "Each section below is rewritten by its own script with the last run's table, the machine and the date;\n"
    "ratios were measured side by side in the same run, so they matter more than absolute figures.\n"
)
# sections appear in RESULTS.md in this order whichever script runs first
SECTION_ORDER = ("training", "cli_run", "efficiency", "precision", "data_pipeline", "app_latency", "worker", "memory", "duration", "pool", "real_photos", "outcome", "sweep",
                 "cluster_runs")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
logging.getLogger("tensorflow").setLevel(logging.ERROR)  # "N out of the last M calls ... retracing"
warnings.filterwarnings("ignore", message=".*shuffle=True.*")  # Keras: shuffle is ignored for tf.data


def parse_args(description: str, add_arguments=None, argv=None) -> argparse.Namespace:
    """--quick (tiny sizes for the smoke test) and --results PATH, plus the script's own options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (32x32, a few steps): a smoke test")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                        help=f"the RESULTS.md to update (default {DEFAULT_RESULTS.relative_to(REPO_ROOT)})")
    if add_arguments is not None:
        add_arguments(parser)
    return parser.parse_args(argv)


# ----- timing ------------------------------------------------------------------------------------


@contextlib.contextmanager
def stopwatch(times: list):
    """Append the seconds the block took to times."""
    start = time.perf_counter()
    try:
        yield
    finally:
        times.append(time.perf_counter() - start)


def alternate(measurements: dict, repeats: int, before_each=None) -> tuple[dict, dict]:
    """Run each named callable `repeats` times in a rotating order (A B C, B C A, ...).

    Rotation spreads slow spells of a shared machine over every candidate. Each callable returns
    the seconds it measured (or None, then its whole call is timed). Returns (name -> wall seconds,
    name -> this process's CPU seconds, user + system, for the whole call): on a machine that others
    load, CPU time moves less than wall time.
    """
    names = list(measurements)
    seconds = {name: [] for name in names}
    cpu_seconds = {name: [] for name in names}
    for repeat in range(repeats):
        order = names[repeat % len(names):] + names[:repeat % len(names)]
        for name in order:
            if before_each is not None:
                before_each()
            start, cpu_start = time.perf_counter(), process_cpu_seconds()
            measured = measurements[name]()
            cpu_seconds[name].append(process_cpu_seconds() - cpu_start)
            seconds[name].append(measured if measured is not None else time.perf_counter() - start)
            print(f"  {name}: {seconds[name][-1]:.2f} s (CPU {cpu_seconds[name][-1]:.1f} s, "
                  f"load {load_average()})", flush=True)
    return seconds, cpu_seconds


def process_cpu_seconds(pid: int | None = None) -> float | None:
    """User + system CPU seconds of a process, all its threads: this one by default (nanosecond clock,
    unlike os.times()), or process `pid` while it lives (None once it is gone)."""
    if pid is None:
        return time.process_time()
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


def median(values) -> float:
    return float(statistics.median(values))


def value_range(values) -> float:
    """max - min: with two or three repeats, a range says more than a standard deviation."""
    return float(max(values) - min(values)) if values else 0.0


def fresh_keras() -> None:
    """Drop Keras' global state and garbage between measurements."""
    import keras  # deferred: several benchmarks never load TensorFlow (seconds)

    keras.backend.clear_session()
    gc.collect()


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM) in MiB."""
    return _proc_status_kb("VmHWM") / 1024.0


def current_rss_mb() -> float:
    return _proc_status_kb("VmRSS") / 1024.0


def _proc_status_kb(field: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    return float("nan")


def load_average() -> str:
    try:
        return " / ".join(f"{value:.2f}" for value in os.getloadavg())
    except (OSError, AttributeError):  # unobtainable, or no os.getloadavg at all (Windows)
        return "n/a"


# ----- data and training shared by several benchmarks --------------------------------------------


def synthetic_data(image_size: int, train_size: int, batch_size: int, synthetic_size: int | None = None,
                   seed: int = 0):
    """LoadedData from the real synthetic source; synthetic_size defaults to train_size / 0.8."""
    synthetic_size = synthetic_size or max(int(round(train_size / 0.8)), 10)
    config = DataConfig(dataset="synthetic", image_size=image_size, train_size=train_size,
                        synthetic_size=synthetic_size, seed=seed)
    return load_data(config, batch_size)


def fixed_loader(data):
    """A TrainingJob data_loader that hands back already loaded data (so runs compare training only)."""
    def loader(config, batch_size, progress=None):
        return data
    return loader


def per_backend_labels(dataset, backends):
    """(images, labels (B,)) -> (images, {backend: labels (B, 1)}), as the engine feeds its model."""
    import tensorflow as tf  # deferred: several benchmarks never load TensorFlow (seconds)

    return dataset.map(lambda images, labels: (images, {b: tf.expand_dims(labels, -1) for b in backends}))


def compile_like_engine(model, backends, learning_rate: float = 1e-3, element_spec=None, **compile_options) -> None:
    """gapdemo.model.lockstep.compile_lockstep_model; with element_spec, the first fit traces its step once."""
    from gapdemo.model.lockstep import compile_lockstep_model  # deferred: it imports TensorFlow

    compile_lockstep_model(model, backends, learning_rate, element_spec, **compile_options)


def steady_training_rate(model, dataset, batch_size: int, warmup_batches: int = 2,
                         trace: bool = True) -> tuple[float, float]:
    """Training images/s of model.fit over one pass of dataset, after the first warmup_batches.

    One untimed short fit first traces the step function (unless trace=False: traced already); in
    the timed pass the clock starts when batch warmup_batches - 1 ends, so iterator start-up and the
    first steps do not count.
    Returns (images per wall second, images per CPU second of this process).
    """
    import keras  # deferred: several benchmarks never load TensorFlow (seconds)

    batch_ends = []  # (index of the last batch done, wall time, CPU time)

    class BatchClock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):  # once per execution of steps_per_execution
            batch_ends.append((batch, time.perf_counter(), process_cpu_seconds()))

    if trace:
        model.fit(dataset.take(warmup_batches), epochs=1, verbose=0)
    model.fit(dataset, epochs=1, verbose=0, callbacks=[BatchClock()])
    timed = [end for end in batch_ends if end[0] >= warmup_batches - 1]
    if len(timed) < 2:
        raise ValueError(f"need more than {warmup_batches} batches to time training, got {len(batch_ends)}")
    images = (timed[-1][0] - timed[0][0]) * batch_size
    return images / (timed[-1][1] - timed[0][1]), images / (timed[-1][2] - timed[0][2])


# ----- tables and RESULTS.md ------------------------------------------------------------------------


def format_table(headers, rows) -> str:
    """A Markdown table with padded columns (readable in a terminal too)."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(str(header)), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    lines = ["| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in cells]
    return "\n".join(lines)


def verdict(value: float, limit: float, higher_is_better: bool = False) -> str:
    met = value >= limit if higher_is_better else value <= limit
    return "met" if met else "**missed**"


def machine_line(load_before: str | None = None) -> str:
    """Cores, CPU, date, load average and library versions, for the top of a section."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = [f"Python {platform.python_version()}"]
    for module in ("tensorflow", "keras", "streamlit"):
        if module in sys.modules:
            versions.append(f"{module} {getattr(sys.modules[module], '__version__', '?')}")
    load = f"load average (1/5/15 min) {load_before or load_average()} at the start, {load_average()} at the end"
    return (f"Machine: {os.cpu_count()} cores ({cpu}); {', '.join(versions)}; {load}; "
            f"run {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}.")


def write_section(results_path: Path, key: str, title: str, body: str) -> None:
    """Replace (or append) the section `key` of results_path, leaving every other section alone."""
    results_path = Path(results_path)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    section = f"{begin}\n## {title}\n\n{body.strip()}\n{end}"
    lock_path = results_path.with_name(f".{results_path.name}.lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two scripts finishing at once must not drop a section
        text = results_path.read_text() if results_path.exists() else RESULTS_HEADER
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            text = head + section + rest.split(end, 1)[1]
        else:
            later = [f"<!-- {other}:begin -->" for other in _keys_after(key)]
            later = [marker for marker in later if marker in text]
            if later:
                head, rest = text.split(later[0], 1)
                text = head + section + "\n\n" + later[0] + rest
            else:
                text = text.rstrip("\n") + "\n\n" + section + "\n"
        temporary = results_path.with_name(f".{results_path.name}.{os.getpid()}.tmp")
        temporary.write_text(text)
        os.replace(temporary, results_path)


def _keys_after(key: str) -> tuple[str, ...]:
    return SECTION_ORDER[SECTION_ORDER.index(key) + 1:] if key in SECTION_ORDER else ()


def report(args, key: str, title: str, table: str, notes: list[str] = (), load_before: str | None = None) -> None:
    """Print the table and notes, and write them as this script's section of args.results."""
    body = "\n\n".join([machine_line(load_before) + (" **Quick (smoke) sizes.**" if args.quick else ""),
                        table, *[note for note in notes if note]])
    print(f"\n## {title}\n\n{body}\n", flush=True)
    write_section(args.results, key, title, body)
