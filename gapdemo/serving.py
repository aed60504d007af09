"""Whether the page counts as served to others, and the caps that hold when it is.

A page is served when anyone but this machine's user can reach it: it listens beyond the loopback
interface, a request reached it through a proxy (the usual way to add login and TLS is nginx or
Caddy in front of a Streamlit bound to 127.0.0.1, which looks local by its bind address alone), or
the operator says so with GAPDEMO_SERVED=1. The command line counts as served only by the
operator's word. Nothing here imports streamlit: the page passes its bind address and headers in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from gapdemo.data.roots import is_loopback_address

SERVED_VARIABLE = "GAPDEMO_SERVED"  # "1": treat this machine's page and commands as served to others
MAX_QUEUED_VARIABLE = "GAPDEMO_MAX_QUEUED"
DEFAULT_MAX_QUEUED = 4  # waiting runs on a served page, all visitors together (a default run takes ~5 min)
MAX_TRIALS_VARIABLE = "GAPDEMO_MAX_TRIALS"
DEFAULT_MAX_SERVED_TRIALS = 16  # runs in one sweep started from a served page

# A proxy names itself, or the client it forwards, in one of these (lower-case; header names are case-blind).
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip", "via")
TRUE_WORDS = ("1", "true", "yes", "on")


def operator_says_served(environ: Mapping[str, str] | None = None) -> bool:
    """True when GAPDEMO_SERVED is set to 1 (or true, yes, on)."""
    environ = os.environ if environ is None else environ
    return environ.get(SERVED_VARIABLE, "").strip().lower() in TRUE_WORDS


def request_came_from_afar(headers: Mapping[str, str] | None) -> bool:
    """True when a request's headers show a proxy (forwarding headers) or a Host other than this machine.

    No headers at all (a test session, a page not yet connected) says nothing, so False.
    """
    if not headers:
        return False
    names = {name.lower(): value for name, value in headers.items()}
    if any(names.get(name) for name in FORWARDING_HEADERS):
        return True
    host = host_name(names.get("host", ""))
    return bool(host) and not is_loopback_address(host)


def host_name(host_header: str) -> str:
    """'localhost:8501' -> 'localhost', '[::1]:8501' -> '::1', '10.0.0.5' -> '10.0.0.5'."""
    host = host_header.strip()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def page_counts_as_served(bind_address: str | None, headers: Mapping[str, str] | None,
                          environ: Mapping[str, str] | None = None) -> bool:
    """The page is served unless it listens on loopback only, came without a proxy and the operator is silent."""
    return (not is_loopback_address(bind_address) or request_came_from_afar(headers)
            or operator_says_served(environ))


def max_queued_runs(environ: Mapping[str, str] | None = None) -> int:
    """GAPDEMO_MAX_QUEUED (at least 1), else DEFAULT_MAX_QUEUED: waiting runs on a served page."""
    return _positive_setting(MAX_QUEUED_VARIABLE, DEFAULT_MAX_QUEUED, environ)


def max_served_trials(environ: Mapping[str, str] | None = None) -> int:
    """GAPDEMO_MAX_TRIALS (at least 1), else DEFAULT_MAX_SERVED_TRIALS: runs in one sweep of a served page."""
    return _positive_setting(MAX_TRIALS_VARIABLE, DEFAULT_MAX_SERVED_TRIALS, environ)


def _positive_setting(name: str, default: int, environ: Mapping[str, str] | None) -> int:
    environ = os.environ if environ is None else environ
    text = environ.get(name, "").strip()
    try:
        return max(int(text), 1) if text else default
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {text!r}") from None


def child_environment(served: bool, environ: Mapping[str, str] | None = None) -> dict:
    """The environment for a process the page starts (a worker, a claims job, a sweep, a cluster run):
    served is passed on, and `python -m gapdemo` finds this package wherever the server was started."""
    environ = os.environ if environ is None else environ
    package_root = str(Path(__file__).resolve().parent.parent)
    paths = [package_root, *[path for path in environ.get("PYTHONPATH", "").split(os.pathsep) if path]]
    return {**environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
            **({SERVED_VARIABLE: "1"} if served else {})}


def may_stop(owner: str | None, visitor: str | None, any_owner: bool) -> bool:
    """Whether visitor may stop what owner started: anyone on a local page (any_owner), else the owner alone."""
    return any_owner or (owner is not None and owner == visitor)
