"""python -m gapdemo worker: the page's training process (gapdemo.jobs.worker_loop), started by the page.

It reads one JSON request per line on standard input and answers with JSON event lines on standard
output; a person has no need to start it. It ends when its standard input closes.
"""

from __future__ import annotations


def register(subparsers):
    parser = subparsers.add_parser("worker", help="the dashboard's training process (started by the page)")
    parser.set_defaults(run=run)


def run(args) -> int:
    from gapdemo.jobs.worker_loop import serve_forever  # deferred: it imports TensorFlow

    return serve_forever()
