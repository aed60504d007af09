"""python -m gapdemo data: images per split and class, and the files that could not be read."""

import json
import sys

from gapdemo.config import DATASETS, DataConfig


def _train_size(text: str):
    """'all' -> None (no cap), else a positive integer."""
    if text.lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"train size must be a positive integer or 'all', got {text!r}")
    return value


def register(subparsers):
    defaults = DataConfig()
    parser = subparsers.add_parser("data", help="load a data set and count its images per split and class")
    parser.add_argument("--dataset", choices=DATASETS, default=defaults.dataset, help="image source")
    parser.add_argument("--data-dir", default=None,
                        help="folder: PATH/<class>/*; cats_vs_dogs: TFDS data dir (default ~/tensorflow_datasets)")
    parser.add_argument("--image-size", type=int, default=defaults.image_size, help="side in pixels (32-256)")
    parser.add_argument("--train-size", default=str(defaults.train_size),
                        help="cap on training images, or 'all' (default %(default)s)")
    parser.add_argument("--synthetic-size", type=int, default=defaults.synthetic_size,
                        help="images the synthetic source draws, split 80/10/10 (default %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="generation, split and shuffle seed")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def _show_progress(message: str, fraction: float) -> None:
    # Progress goes to stderr, and only to a terminal, so stdout stays clean for --json and pipes.
    if sys.stderr.isatty():
        print(f"\r{message} ({fraction:.0%})".ljust(60), end="" if fraction < 1 else "\n", file=sys.stderr)


def run(args) -> int:
    from gapdemo.data import load_data  # late import: pulls in TensorFlow

    config = DataConfig(dataset=args.dataset, data_dir=args.data_dir, image_size=args.image_size,
                        train_size=_train_size(args.train_size), synthetic_size=args.synthetic_size, seed=args.seed)
    info = load_data(config, batch_size=64, progress=_show_progress).info
    if args.json:
        print(json.dumps(info.to_dict()))
        return 0
    print(f"Data set {info.dataset} at {info.image_size}x{info.image_size}, classes: "
          + ", ".join(f"{index} = {name}" for index, name in enumerate(info.class_names)))
    print(f"{'split':<12}{'images':>8}" + "".join(f"{name:>10}" for name in info.class_names))
    for split, count in info.splits.items():
        counts = info.class_counts[split]
        print(f"{split:<12}{count:>8}" + "".join(f"{counts[name]:>10}" for name in info.class_names))
    if info.skipped:
        print(f"Skipped {len(info.skipped)} unreadable file(s):")
        for entry in info.skipped:
            print(f"  {entry['path']}: {entry['reason']}")
    else:
        print("No files skipped.")
    return 0
