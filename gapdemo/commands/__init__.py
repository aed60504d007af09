"""Sub-commands of python -m gapdemo; each module has register(subparsers) and run(args), except
progress.py, the progress display (tqdm) that train and claims share."""

from gapdemo.model.backends import check_backend


class CommandError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def parse_backends(text: str) -> tuple[str, ...]:
    """'fc, gap' -> ('fc', 'gap'); unknown keys raise ValueError naming the valid ones."""
    backends = tuple(part.strip() for part in text.split(",") if part.strip())
    if not backends:
        raise ValueError("give at least one back-end")
    for backend in backends:
        check_backend(backend)
    return backends
