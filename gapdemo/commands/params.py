"""python -m gapdemo params: the parameter table per back-end."""

import json

from gapdemo.commands import parse_backends
from gapdemo.config import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, DataConfig, validate_image_size
from gapdemo.model.backends import (
    BACKENDS,  # the registry alone: TensorFlow loads only when counting
    dense_after_flatten_params,
    parameter_table,
)


def register(subparsers):
    parser = subparsers.add_parser("params", help="parameter counts per back-end")
    parser.add_argument("--image-size", type=int, default=DataConfig().image_size,
                        help=f"input size in pixels ({MIN_IMAGE_SIZE}-{MAX_IMAGE_SIZE})")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated back-end keys (default: all)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args) -> int:
    validate_image_size(args.image_size)
    table = parameter_table(parse_backends(args.backends), args.image_size)
    if args.json:
        print(json.dumps({"image_size": args.image_size, "backends": table}))
        return 0
    print(f"Parameters at {args.image_size}x{args.image_size}")
    print(f"{'back-end':<18}{'head':>10}{'back-end':>12}{'total':>12}{'trainable':>12}")
    for backend, counts in table.items():
        print(f"{backend:<18}{counts['head_params']:>10,}{counts['backend_params']:>12,}"
              f"{counts['total_params']:>12,}{counts['trainable_params']:>12,}")
    if "fc" in table and "gap" in table:
        ratio = table["fc"]["backend_params"] / table["gap"]["backend_params"]
        print(f"fc's back-end has {ratio:,.0f}x the parameters of gap's.")
    print(f"Tutorial's example: 7x7x64 flattened into 500 units = {dense_after_flatten_params():,} parameters.")
    return 0
