"""python -m gapdemo train: train back-ends in lockstep, with a progress bar on stderr."""

from __future__ import annotations

from gapdemo.cluster.connection import resolve_address
from gapdemo.commands.options import add_run_options, run_config


def register(subparsers):
    parser = subparsers.add_parser("train", help="train back-ends side by side")
    add_run_options(parser)
    parser.add_argument("--address", default=None,
                        help="train as one task on the Ray cluster at host:port (default $GAPDEMO_RAY_ADDRESS; "
                             "neither: in this process)")
    parser.add_argument("--cpus-per-run", type=float, default=1.0,
                        help="on a cluster: CPUs the run asks for; TensorFlow's thread pools match (default 1)")
    parser.add_argument("--gpus-per-run", type=float, default=0.0, help="on a cluster: GPUs the run asks for")
    parser.add_argument("--run-id", default=None,
                        help="on a cluster: the run's folder name (another is chosen when it is taken)")
    parser.add_argument("--events", action="store_true",
                        help="on a cluster: one JSON line per update on stdout (state, node, progress)")
    parser.set_defaults(run=run)


def run(args) -> int:
    config = run_config(args)
    address = resolve_address(args.address)
    # deferred, both: they load numpy and the run folder's code, and every command is imported to build the parser
    if address:
        from gapdemo.commands.cluster_run import run_on_cluster

        return run_on_cluster(args, config, address)
    from gapdemo.commands.local_run import run_here

    return run_here(args, config)

