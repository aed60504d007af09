"""Real photos at real scale: a PetImages-shaped folder of 25,000 files, cold and from the image cache.

The folder is gapdemo.data.petimages' stand-in (12,500 files per class, 150-500 px, with the real
archive's junk), written once into benchmarks/tmp/ and reused. For each image size, two fresh
processes train the three default back-ends (fc, fc_dropout, gap) on every file for one epoch:
the first with an empty cache (decode everything, write the cache), the second with it filled;
a third loads the folder with another seed (another split) and trains nothing: the cache entry
holds the files at the image size, whatever the seed, so it opens the same entry.
Each reports:
  Start -> first batch   from Trainer.train() (TensorFlow already imported, as in the page) to the
                         first batch trained: load data, build, compile, trace, one batch
  load                   load_data's seconds; decode images/s = files / load seconds when cold
  training images/s      the trainer's own rate over the epoch (its first call left out)
  peak memory            RssAnon sampled every 20 ms: what the process owns; the cache's memory-mapped
                         file pages (resident, but the kernel can drop them) and all file pages on their own lines
Targets: peak RssAnon <= 2.5 GiB at 100 px and <= 4 GiB at 200 px; another seed opens the cache in <= 3 s.
Usage: python -m benchmarks.real_photos [--quick] [--sizes 100,200] [--files-per-class 12500] [--epochs 1]
       [--batch-size 64] [--max-batches N] [--results PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks import common

KEY, TITLE = "real_photos", "7. Real photos: a PetImages-shaped folder, cold and cached"
TARGETS_MIB = {100: 2.5 * 1024, 200: 4 * 1024}  # peak anonymous memory per image size
OTHER_SEED_TARGET_S = 3.0  # another seed on a cached folder: open the entry and pick rows (about a second)
PHASES = ("cold", "cached", "other seed")
TMP_DIR = common.BENCHMARKS_DIR / "tmp"


def add_arguments(parser) -> None:
    parser.add_argument("--sizes", default="100,200", help="comma-separated image sizes")
    parser.add_argument("--files-per-class", type=int, default=12_500, help="files per class, junk included")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64, help="training batch (activations grow with it)")
    parser.add_argument("--max-batches", type=int, default=0,
                        help="train only the first N batches of each epoch (0 = all); every file is still "
                             "decoded and cached, and the whole validation split is evaluated")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # JSON settings of one measured process


class MemorySampler(threading.Thread):
    """Peaks of RssAnon and RssFile (every 20 ms) and of the cache's resident mapped pages (every second)."""

    def __init__(self, cache_dir: str):
        super().__init__(daemon=True)
        self.cache_dir, self.peaks, self.done = cache_dir, {"anon": 0.0, "file": 0.0, "cache_mapped": 0.0}, False

    def run(self) -> None:
        ticks = 0
        while not self.done:
            status = read_status_kib(("RssAnon", "RssFile"))
            self.peaks["anon"] = max(self.peaks["anon"], status["RssAnon"] / 1024)
            self.peaks["file"] = max(self.peaks["file"], status["RssFile"] / 1024)
            if ticks % 50 == 0:
                self.peaks["cache_mapped"] = max(self.peaks["cache_mapped"], mapped_mib_under(self.cache_dir))
            ticks += 1
            time.sleep(0.02)


def read_status_kib(fields) -> dict:
    values = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            name = line.split(":", 1)[0]
            if name in fields:
                values[name] = float(line.split()[1])
    return values


def mapped_mib_under(folder: str) -> float:
    """Resident MiB of this process's memory maps of files under folder (from /proc/self/smaps)."""
    total_kib, inside = 0.0, False
    with open("/proc/self/smaps") as handle:
        for line in handle:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5:  # a mapping's header line: address range ... path
                inside = len(head) >= 6 and head[5].startswith(folder)
            elif inside and line.startswith("Rss:"):
                total_kib += float(head[1])
    return total_kib / 1024


def load_only_main(settings: dict) -> None:
    """Load the folder with settings' seed in this process, training nothing; print one RESULT line of JSON."""
    sampler = MemorySampler(settings["cache_dir"])
    sampler.start()
    import keras  # noqa: F401  imported before the clock starts, as the page has it

    from gapdemo.config import DataConfig
    from gapdemo.data.sources import load_data

    config = DataConfig(dataset="folder", data_dir=settings["folder"], image_size=settings["size"], train_size=None,
                        cache_dir=settings["cache_dir"], seed=settings["seed"])
    started = time.perf_counter()
    figures = {}

    def clock(message, fraction):
        if fraction >= 1.0 and "splits_seconds" not in figures:
            figures["splits_seconds"] = time.perf_counter() - started

    data = load_data(config, settings["batch_size"], clock)
    figures.update(load_seconds=time.perf_counter() - started, cache_used=data.info.cache_used,
                   splits=data.info.splits, skipped=len(data.info.skipped), cache_note=data.info.cache_note)
    sampler.done = True
    sampler.join()
    figures.update(peak_anon_mib=sampler.peaks["anon"], peak_file_mib=sampler.peaks["file"],
                   peak_cache_mapped_mib=sampler.peaks["cache_mapped"], vm_hwm_mib=common.peak_rss_mb())
    print("RESULT " + json.dumps(figures))


def child_main(settings: dict) -> None:
    """Train once in this process; print one RESULT line of JSON."""
    if settings.get("load_only"):
        load_only_main(settings)
        return
    sampler = MemorySampler(settings["cache_dir"])
    sampler.start()
    started = time.perf_counter()
    import keras  # noqa: F401  imported before Start, as the page has it

    from gapdemo.config import DataConfig, RunConfig
    from gapdemo.data.sources import load_data
    from gapdemo.training.trainer import Trainer

    figures = {"import_seconds": time.perf_counter() - started}
    events = timing_events()

    def timed_loader(data_config, batch_size, progress=None):
        load_started = time.perf_counter()

        def progress_and_clock(message, fraction):  # "Data ready" ends decoding (or opening the cache)
            if fraction >= 1.0 and "splits_seconds" not in figures:
                figures["splits_seconds"] = time.perf_counter() - load_started
            if progress:
                progress(message, fraction)

        data = load_data(data_config, batch_size, progress_and_clock)
        if settings.get("max_batches"):  # peak memory comes with the first training steps; a full epoch is slow
            data = dataclasses.replace(data, train=data.train.take(settings["max_batches"]))
        figures.update(load_seconds=time.perf_counter() - load_started, cache_used=data.info.cache_used,
                       splits=data.info.splits, skipped=len(data.info.skipped), cache_note=data.info.cache_note)
        return data

    config = RunConfig(data=DataConfig(dataset="folder", data_dir=settings["folder"], image_size=settings["size"],
                                       train_size=None, cache_dir=settings["cache_dir"]))
    config.train.epochs, config.train.batch_size = settings["epochs"], settings["batch_size"]
    with tempfile.TemporaryDirectory(prefix="gapdemo-real-photos-") as runs_dir:
        config.train.runs_dir = runs_dir
        events.start = time.perf_counter()
        Trainer(config, Path(runs_dir) / "run", events, data_loader=timed_loader).train()
    sampler.done = True
    sampler.join()
    figures.update(first_batch_seconds=events.first_batch - events.start, images_per_second=events.rate,
                   peak_anon_mib=sampler.peaks["anon"], peak_file_mib=sampler.peaks["file"],
                   peak_cache_mapped_mib=sampler.peaks["cache_mapped"], vm_hwm_mib=common.peak_rss_mb())
    print("RESULT " + json.dumps(figures))


def timing_events():
    """gapdemo TrainingEvents that remember when the first batch ended and the last training rate."""
    from gapdemo.training.events import TrainingEvents

    class TimingEvents(TrainingEvents):
        start, first_batch, rate = 0.0, 0.0, 0.0

        def on_batch(self, rows, progress) -> None:
            self.first_batch = self.first_batch or time.perf_counter()
            self.rate = progress.get("images_per_second") or self.rate

    return TimingEvents()


def run_child(settings: dict) -> dict:
    command = [sys.executable, "-m", "benchmarks.real_photos", "--child", json.dumps(settings)]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=common.REPO_ROOT)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if completed.returncode or not lines:
        sys.stderr.write(completed.stderr[-3000:])
        raise RuntimeError(f"real-photos child {settings} failed (exit {completed.returncode})")
    return json.loads(lines[-1][len("RESULT "):])


def stand_in_folder(files_per_class: int, quick: bool, scratch: Path) -> tuple[Path, dict]:
    """The PetImages stand-in: reused from benchmarks/tmp/ when complete (a summary file marks it), else written."""
    from gapdemo.data.petimages import write_pet_images

    folder = (scratch if quick else TMP_DIR) / f"PetImages-{files_per_class}" / "PetImages"
    marker = folder.parent / "summary.json"
    if marker.is_file():
        return folder, json.loads(marker.read_text())
    print(f"writing the stand-in: {2 * files_per_class:,} files into {folder} ...", flush=True)
    started = time.perf_counter()
    summary = write_pet_images(folder, files_per_class, seed=0)
    facts = {"kinds": summary.kinds, "total_bytes": summary.total_bytes, "unreadable": len(summary.unreadable),
             "seconds": round(time.perf_counter() - started, 1)}
    marker.write_text(json.dumps(facts))
    return folder, facts


def measure(args, folder: Path, scratch: Path) -> dict:
    """{(size, "cold" | "cached"): figures}: per size, an empty cache first, then the filled one."""
    results = {}
    for size in [32] if args.quick else [int(size) for size in args.sizes.split(",")]:
        cache_dir = tempfile.mkdtemp(prefix="cache-", dir=scratch)
        try:
            for phase in PHASES:
                print(f"real photos: {size}x{size} {phase} (load average {common.load_average()}) ...", flush=True)
                settings = {"folder": str(folder), "size": size, "epochs": args.epochs, "cache_dir": cache_dir,
                            "batch_size": args.batch_size, "max_batches": args.max_batches,
                            "seed": 1 if phase == "other seed" else 0, "load_only": phase == "other seed"}
                results[size, phase] = run_child(settings)
                if results[size, phase]["cache_used"] != (phase != "cold"):
                    raise RuntimeError(f"{phase} run at {size} px: cache_used is {results[size, phase]['cache_used']}")
        finally:
            shutil.rmtree(cache_dir, ignore_errors=True)
    return results


def table(results: dict, files: int) -> str:
    columns = list(results)

    def cells(key: str, form: str) -> list[str]:  # "" where a phase has no such figure (the other seed trains nothing)
        return [format(results[c][key], form) if key in results[c] else "" for c in columns]

    other_seed = [c for c in columns if c[1] == "other seed"]
    rows = [
        ["Start -> first batch (s)", *cells("first_batch_seconds", ".1f"), ""],
        ["scan + decode, or open the cache (s)", *cells("splits_seconds", ".2f"), ""],
        ["load_data with its tf.data pipelines (s)", *cells("load_seconds", ".2f"),
         f"other seed <= {OTHER_SEED_TARGET_S:.0f}"],
        ["verdict (another seed reads the cache)",
         *(common.verdict(results[c]["load_seconds"], OTHER_SEED_TARGET_S) if c in other_seed else "" for c in columns),
         ""],
        ["decode images/s (files / scan + decode s)",
         *(f"{files / results[c]['splits_seconds']:,.0f}" if c[1] == "cold" else "" for c in columns), ""],
        ["training images/s", *cells("images_per_second", ",.0f"), ""],
        ["**peak anonymous memory (MiB)**", *(f"{results[c]['peak_anon_mib']:,.0f}" for c in columns),
         ", ".join(f"<= {TARGETS_MIB[s]:,.0f} at {s} px" for s in sorted({c[0] for c in columns}) if s in TARGETS_MIB)],
        ["verdict", *(common.verdict(results[c]["peak_anon_mib"], TARGETS_MIB[c[0]]) if c[0] in TARGETS_MIB else ""
                      for c in columns), ""],
        ["peak cache pages mapped (MiB, droppable)", *(f"{results[c]['peak_cache_mapped_mib']:,.0f}" for c in columns), ""],
        ["peak file pages, libraries included (MiB)", *(f"{results[c]['peak_file_mib']:,.0f}" for c in columns), ""],
        ["VmHWM, all resident (MiB)", *(f"{results[c]['vm_hwm_mib']:,.0f}" for c in columns), ""],
    ]
    return common.format_table(["measure", *(f"{size} px {phase}" for size, phase in columns), "target"], rows)


def main(argv=None) -> None:
    args = common.parse_args(__doc__.splitlines()[0], add_arguments, argv)
    if args.child is not None:
        child_main(json.loads(args.child))
        return
    load_before = common.load_average()
    files_per_class = 60 if args.quick else args.files_per_class
    TMP_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="real-photos-", dir=TMP_DIR) as scratch:
        folder, facts = stand_in_folder(files_per_class, args.quick, Path(scratch))
        results = measure(args, folder, Path(scratch))
    files = 2 * files_per_class
    first = next(iter(results.values()))
    notes = [
        f"Folder: {files:,} files ({', '.join(f'{kind} {count:,}' for kind, count in sorted(facts['kinds'].items()))}"
        f"; {facts['total_bytes'] / 2**20:,.0f} MiB) plus a Thumbs.db per class; {first['skipped']} files skipped as "
        f"unreadable; splits {first['splits']}. Three back-ends (fc, fc_dropout, gap), batch {args.batch_size}, every file "
        f"decoded, {args.epochs} epoch(s) of "
        f"{f'the first {args.max_batches} training batches' if args.max_batches else 'every training image'} "
        f"(validation on the whole split); {os.cpu_count()} cores decoding.",
        "Cold: an empty cache, so load_data scans, decodes on every core and writes the cache. Cached: a fresh "
        "process opens the cache's memory maps (the files may still be in the page cache from the cold run, "
        "as on a second Start). Other seed: a fresh process runs load_data with seed 1 (another split of the "
        "same files) and trains nothing; the entry is keyed by the files and the image size only, so it opens "
        "the same entry and picks the seed's rows from it.",
        "Peak anonymous memory is RssAnon, sampled every 20 ms: the memory the process owns. The cache's pages "
        "are file pages the kernel can drop and read again; training reads its batches from them, so the "
        "decoded images are never copied whole into the process.",
    ]
    common.report(args, KEY, TITLE, table(results, files), notes, load_before)


if __name__ == "__main__":
    main()
