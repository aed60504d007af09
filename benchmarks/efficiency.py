"""Arithmetic efficiency: achieved training GFLOP/s against this machine's float32 matmul peak.

FLOPs are counted analytically from the model: 2*k*k*Cin*Cout*Hout*Wout per Conv2D, 2*in*out per
Dense, training ~ 3 x forward (BN, ReLU and pooling are not counted). The peak is the best of
repeated tf.matmul on 2048x2048 float32 (and numpy's; 512x512 with --quick), measured in the same
run. Variants that change TensorFlow's thread pools run in their own process (pools are fixed once
TF starts).

Usage: python -m benchmarks.efficiency [--quick] [--results PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks import common
from gapdemo.config import TrainConfig

KEY, TITLE = "efficiency", "3. Arithmetic efficiency (training GFLOP/s vs float32 matmul peak)"
RECOMMEND_AT = 0.40  # recommend an engine change when a variant reaches this share of the peak
LOCKSTEP = ("fc", "fc_dropout", "gap")

ENGINE_STEPS = TrainConfig().steps_per_execution  # batches per call into TensorFlow, as the engine compiles
# name -> (description, process settings, in-process options). Variants with equal settings share a process;
# lockstep variants train ENGINE_STEPS batches per call unless their options say otherwise.
VARIANTS = {
    "plain_fc": ("plain model.fit, fc only, 1 batch per call (reference)", {},
                 {"backends": ("fc",), "steps_per_execution": 1}),
    "engine": (f"lockstep model as the engine compiles it ({ENGINE_STEPS} batch{'es' if ENGINE_STEPS != 1 else ''} "
               "per call)", {}, {}),
    "steps4": ("lockstep, 4 batches per call", {}, {"steps_per_execution": 4}),
    "jit": ("lockstep + jit_compile=True (XLA)", {}, {"jit_compile": True}),
    "batch128": ("lockstep, batch 128", {}, {"batch_size": 128}),
    "steps8": ("lockstep, 8 batches per call", {}, {"steps_per_execution": 8}),
    "bf16": ("lockstep, mixed_bfloat16 (not float32)", {}, {"policy": "mixed_bfloat16"}),
    "inter1": ("lockstep, inter-op threads 1", {"inter": 1}, {}),
    "intra1_inter2": ("lockstep, intra-op 1, inter-op 2 (heads in parallel)", {"intra": 1, "inter": 2}, {}),
    "onednn_off": ("lockstep, TF_ENABLE_ONEDNN_OPTS=0", {"onednn": "0"}, {}),
}
QUICK_VARIANTS = ("plain_fc", "engine")


def add_arguments(parser) -> None:
    parser.add_argument("--image-size", type=int, default=100)
    parser.add_argument("--batches", type=int, default=24, help="timed training batches per variant")
    parser.add_argument("--turns", type=int, default=3, help="timed epochs per variant, taken in turns in one process")
    parser.add_argument("--repeats", type=int, default=1, help="processes per variant group")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of: "
                        + ", ".join(VARIANTS))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # variants to measure in-process


# ----- measured in a child process --------------------------------------------------------------------


def training_flops_per_image(model) -> float:
    """3 x forward FLOPs of model's Conv2D and Dense layers, per image."""
    from keras import layers

    forward = 0.0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            k_h, k_w, c_in, c_out = layer.kernel.shape
            _, h_out, w_out, _ = layer.output.shape
            forward += 2.0 * k_h * k_w * c_in * c_out * h_out * w_out
        elif isinstance(layer, layers.Dense):
            fan_in, fan_out = layer.kernel.shape
            forward += 2.0 * fan_in * fan_out
    return 3.0 * forward


def matmul_peak_gflops(size: int = 2048, seconds: float = 2.0) -> dict:
    """Best float32 size x size matmul GFLOP/s: TensorFlow (its thread pools), numpy, and TF per CPU second."""
    import tensorflow as tf

    a = tf.random.uniform((size, size), dtype=tf.float32)
    b = tf.random.uniform((size, size), dtype=tf.float32)
    flops = 2.0 * size ** 3
    tf.matmul(a, b).numpy()  # warm up
    best_tf, products, deadline = 0.0, 0, time.perf_counter() + seconds
    cpu_start = common.process_cpu_seconds()
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        tf.matmul(a, b).numpy()
        best_tf = max(best_tf, flops / (time.perf_counter() - start) / 1e9)
        products += 1
    per_cpu_second = products * flops / (common.process_cpu_seconds() - cpu_start) / 1e9
    a_np, b_np = a.numpy(), b.numpy()
    a_np @ b_np
    best_np, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a_np @ b_np
        best_np = max(best_np, flops / (time.perf_counter() - start) / 1e9)
    return {"tf": best_tf, "numpy": best_np, "tf_per_cpu_second": per_cpu_second}


class PreparedVariant:
    """A compiled, traced lockstep (or reference) model and its data, ready for timed epochs."""

    def __init__(self, options: dict, image_size: int, batches: int):
        import keras
        import numpy as np

        from gapdemo.data.sources import make_pipeline
        from gapdemo.model.backends import build_lockstep_models

        backends = options.get("backends", LOCKSTEP)
        self.batch_size = options.get("batch_size", 64)
        keras.mixed_precision.set_global_policy(options.get("policy", "float32"))
        try:  # a model keeps the dtype policy it was built under
            self.model = build_lockstep_models(backends, image_size).training_model
        finally:
            keras.mixed_precision.set_global_policy("float32")
        compile_options = {"steps_per_execution": options.get("steps_per_execution", ENGINE_STEPS)}
        compile_options.update({key: options[key] for key in ("jit_compile",) if key in options})
        common.compile_like_engine(self.model, backends, **compile_options)
        per_call = compile_options["steps_per_execution"]
        # Whole calls only: Keras reports a call's last batch as first + per_call - 1 even when the
        # data ran out sooner, which would count batches that never ran.
        self.warmup = max(2, per_call * 2)
        batches = -(-batches // per_call) * per_call
        count = self.batch_size * (batches + self.warmup)
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (count, image_size, image_size, 3), dtype=np.uint8)
        labels = rng.integers(0, 2, count)
        self.dataset = common.per_backend_labels(make_pipeline(images, labels, self.batch_size, True, 0), backends)
        self.flops = training_flops_per_image(self.model)
        self.model.fit(self.dataset.take(self.warmup), epochs=1, verbose=0)  # trace once

    def measure(self) -> dict:
        per_second, per_cpu_second = common.steady_training_rate(self.model, self.dataset, self.batch_size,
                                                                 self.warmup, trace=False)
        return {"images_per_second": per_second, "flops_per_image": self.flops,
                "gflops": per_second * self.flops / 1e9, "gflops_per_cpu_second": per_cpu_second * self.flops / 1e9}


def child_main(args) -> None:
    """Measure the peak, then time the named variants in turns (A B C, B C A, ...); print one JSON line."""
    import tensorflow as tf

    names = args.child.split(",")
    settings = VARIANTS[names[0]][1]
    if "intra" in settings:
        tf.config.threading.set_intra_op_parallelism_threads(settings["intra"])
    if "inter" in settings:
        tf.config.threading.set_inter_op_parallelism_threads(settings["inter"])
    peak = matmul_peak_gflops(512 if args.quick else 2048, seconds=0.3 if args.quick else 2.0)
    image_size, batches = (32, 2) if args.quick else (args.image_size, args.batches)
    prepared = {name: PreparedVariant(VARIANTS[name][2], image_size, batches) for name in names}
    results = {name: [] for name in names}
    for turn in range(1 if args.quick else args.turns):
        for name in names[turn % len(names):] + names[:turn % len(names)]:
            results[name].append(prepared[name].measure())
            print(f"  {name}: {results[name][-1]['images_per_second']:.1f} images/s (load {common.load_average()})",
                  flush=True)
    print("RESULT " + json.dumps({"peak": peak, "variants": results}), flush=True)


# ----- the parent: groups, repeats, table ------------------------------------------------------------


def process_groups(names) -> list[list[str]]:
    """Variants that share process settings, in the order given."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(json.dumps(VARIANTS[name][1], sort_keys=True), []).append(name)
    return list(groups.values())


def run_group(names: list[str], args) -> dict:
    settings = VARIANTS[names[0]][1]
    env = dict(os.environ)
    if "onednn" in settings:
        env["TF_ENABLE_ONEDNN_OPTS"] = settings["onednn"]
    command = [sys.executable, "-m", "benchmarks.efficiency", "--child", ",".join(names), "--image-size", str(args.image_size),
               "--batches", str(args.batches), "--turns", str(args.turns), "--results", str(args.results)]
    command += ["--quick"] if args.quick else []
    completed = subprocess.run(command, env=env, capture_output=True, text=True, cwd=common.REPO_ROOT)
    sys.stderr.write(completed.stderr[-3000:] if completed.returncode else "")
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    print("\n".join(line for line in completed.stdout.splitlines() if line.startswith("  ")), flush=True)
    if completed.returncode or not lines:
        raise RuntimeError(f"variant group {names} failed (exit {completed.returncode})")
    return json.loads(lines[-1][len("RESULT "):])


def median_of(runs: list[dict]) -> dict:
    """The median of each figure over the timed epochs of one variant."""
    return {key: common.median([run[key] for run in runs]) for key in runs[0]}


def build_report(results: dict, peaks: list[dict], args) -> tuple[str, list[str]]:
    peak = max(max(p["tf"], p["numpy"]) for p in peaks)
    peak_per_cpu = max(p["tf_per_cpu_second"] for p in peaks)
    typical = {name: median_of(runs) for name, runs in results.items()}
    share = {name: b["gflops"] / peak for name, b in typical.items()}
    cpu_share = {name: b["gflops_per_cpu_second"] / peak_per_cpu for name, b in typical.items()}
    engine = typical.get("engine")
    rows = [[VARIANTS[name][0], f"{b['images_per_second']:.1f}", f"{b['flops_per_image'] / 1e6:.0f}",
             f"{b['gflops']:.1f}", f"{share[name]:.0%}", f"{cpu_share[name]:.0%}",
             f"{b['images_per_second'] / engine['images_per_second']:.2f}" if engine else ""]
            for name, b in typical.items()]
    table = common.format_table(["variant", "images/s", "train MFLOP/image", "GFLOP/s", "of peak",
                                 "of peak per CPU-s", "vs engine"], rows)
    matmul = "512x512" if args.quick else "2048x2048"
    notes = [
        f"Peak: best float32 {matmul} matmul, {max(p['tf'] for p in peaks):.0f} GFLOP/s in TensorFlow and "
        f"{max(p['numpy'] for p in peaks):.0f} in numpy; 'of peak' divides by the higher ({peak:.0f}). 'Of peak per "
        f"CPU-s' divides GFLOP per CPU-second of the process by the matmul's ({peak_per_cpu:.0f}): it discounts "
        "time other processes took from the cores. Training rates are steady-state (after the traced first "
        f"steps), the median of {1 if args.quick else args.turns * args.repeats} timed epochs of "
        f"{2 if args.quick else args.batches} batches per variant, taken in turns with the other variants of its "
        f"process; random uint8 images through make_pipeline at {32 if args.quick else args.image_size} px; "
        "FLOPs count Conv2D and Dense only."]
    if engine:
        notes.append(f"The engine's lockstep model reaches **{share['engine']:.0%}** of peak "
                     f"({cpu_share['engine']:.0%} per CPU-second).")
        notes.append(recommendation(typical, share, cpu_share))
    if engine and "plain_fc" in typical:
        separate = typical["plain_fc"]["images_per_second"] / len(LOCKSTEP)
        notes.append(
            f"Lockstep against the tutorial's way, in steady state: one plain fit of fc alone trains "
            f"{typical['plain_fc']['images_per_second']:.0f} images/s, so {len(LOCKSTEP)} separate fits would give each "
            f"image to all {len(LOCKSTEP)} back-ends at about {separate:.0f} images/s (fc_dropout costs as much as fc, "
            f"gap slightly less); the lockstep model does it at {engine['images_per_second']:.0f} "
            f"({separate / engine['images_per_second']:.2f} of the time).")
    return table, notes


def recommendation(typical: dict, share: dict, cpu_share: dict) -> str:
    """Name the float32 variants that beat the engine by 10% on both clocks and reach the 40% bar."""
    engine = typical["engine"]
    winners = [name for name in typical if name not in ("engine", "plain_fc", "bf16")
               and typical[name]["images_per_second"] > 1.1 * engine["images_per_second"]
               and typical[name]["gflops_per_cpu_second"] > 1.1 * engine["gflops_per_cpu_second"]
               and max(share[name], cpu_share[name]) >= RECOMMEND_AT]
    if winners:
        return ("Recommended for the engine (>= 40% of peak and > 10% faster on both clocks): "
                + ", ".join(f"{VARIANTS[n][0]} ({share[n]:.0%} / {cpu_share[n]:.0%})" for n in winners) + ".")
    return ("No float32 variant is both >= 40% of peak and > 10% faster than the engine on both clocks, so no "
            "engine change is recommended. Small convolutions (32-64 channels, 3x3) keep oneDNN far from matmul "
            "speed, and BatchNorm, ReLU and pooling, memory-bound and not counted, take a large share of a step.")


def main(argv=None) -> None:
    args = common.parse_args(__doc__.splitlines()[0], add_arguments, argv)
    if args.child:
        child_main(args)
        return
    load_before = common.load_average()
    names = QUICK_VARIANTS if args.quick else [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; valid: {', '.join(VARIANTS)}")
    results, peaks = {name: [] for name in names}, []
    for repeat in range(1 if args.quick else args.repeats):
        for group in process_groups(names):
            print(f"pass {repeat + 1}: {', '.join(group)} (load {common.load_average()})", flush=True)
            measured = run_group(group, args)
            peaks.append(measured["peak"])
            for name, runs in measured["variants"].items():
                results[name].extend(runs)
    table, notes = build_report(results, peaks, args)
    common.report(args, KEY, TITLE, table, notes, load_before)


if __name__ == "__main__":
    main()
