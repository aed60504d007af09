"""Whether the page counts as served to others, and the caps that hold when it is.

The page fails closed: a session counts as local only when everything about it names this machine.
It listens on the loopback interface alone, its request carries a `Host` (and, where the browser
sent one, an `Origin`) naming this machine, and no proxy added a forwarding header. Anything else is
served, a request without headers too. A bare nginx `proxy_pass` in front of a Streamlit bound to
127.0.0.1 sends `Host: 127.0.0.1:PORT` and no forwarding header, but the browser's `Origin` still
names the public host: that is what gives such a proxy away. The operator may say GAPDEMO_SERVED=1
(always served) or GAPDEMO_SERVED=0 (alone behind a proxy: the request's headers are not asked; a
page listening beyond loopback stays served). The command line counts as served only by the
operator's word. Nothing here imports streamlit: the page passes its bind address and headers in.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from gapdemo import settings

SERVED_VARIABLE = settings.SERVED.name  # "1": this page and the commands are served; "0": alone behind a proxy

# A proxy names itself, or the client it forwards, in one of these (lower-case; header names are case-blind).
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip", "via")


def is_loopback_address(address: str | None) -> bool:
    """True when a server bound to address is reachable from this machine only.

    None or "" is how streamlit says "every interface"; "localhost" and 127.0.0.0/8 and ::1 are loopback.
    """
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve to any interface
        return False


def operator_says_served(environ: Mapping[str, str] | None = None) -> bool:
    """True when GAPDEMO_SERVED is set to 1 (or true, yes, on)."""
    return settings.served(environ) is True


def operator_says_alone(environ: Mapping[str, str] | None = None) -> bool:
    """True when GAPDEMO_SERVED is set to 0 (or false, no, off): one user behind their own proxy."""
    return settings.served(environ) is False


def request_came_from_afar(headers: Mapping[str, str] | None) -> bool:
    """True unless a request's headers show this machine alone: a `Host` and an `Origin` naming it, and no
    forwarding header, even an empty one. The page's session starts with a WebSocket, for which every browser
    sends its `Origin`: a request without one is no browser on this machine (a script through a proxy), and
    no headers at all count as afar too (fail closed)."""
    names = {name.lower(): value for name, value in (headers or {}).items()}
    if any(name in names for name in FORWARDING_HEADERS):
        return True
    host, origin = host_name(names.get("host", "")), origin_host(names.get("origin", ""))
    return not (host and origin and is_loopback_address(host) and is_loopback_address(origin))


def origin_host(origin: str) -> str:
    """'http://localhost:8501' -> 'localhost'; 'https://[::1]' -> '::1'; 'null' (a sandboxed page) -> ''."""
    try:
        return urlsplit(origin.strip()).hostname or ""
    except ValueError:  # a malformed Origin names nothing, so it cannot name this machine
        return ""


def host_name(host_header: str) -> str:
    """'localhost:8501' -> 'localhost', '[::1]:8501' -> '::1', '10.0.0.5' -> '10.0.0.5'."""
    host = host_header.strip()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def page_counts_as_served(bind_address: str | None, headers: Mapping[str, str] | None,
                          environ: Mapping[str, str] | None = None) -> bool:
    """The page is served unless it listens on loopback only and its request names this machine alone
    (or the operator said GAPDEMO_SERVED=0); GAPDEMO_SERVED=1 makes it served whatever else holds."""
    if not is_loopback_address(bind_address) or operator_says_served(environ):
        return True
    return not operator_says_alone(environ) and request_came_from_afar(headers)


def max_queued_runs(environ: Mapping[str, str] | None = None) -> int:
    """GAPDEMO_MAX_QUEUED (at least 1), else 4: waiting runs on a served page (a default run takes ~5 min)."""
    return settings.max_queued(environ)


def max_served_trials(environ: Mapping[str, str] | None = None) -> int:
    """GAPDEMO_MAX_TRIALS (at least 1), else 16: runs in one sweep of a served page."""
    return settings.max_trials(environ)


def child_environment(served: bool, environ: Mapping[str, str] | None = None) -> dict:
    """The environment for a process the page starts (a worker, a claims job, a sweep, a cluster run):
    served is passed on ("0" when not: the operator's own work on a served page is not held to a class's
    bounds), and `python -m gapdemo` finds this package wherever the server was started."""
    environ = os.environ if environ is None else environ
    package_root = str(Path(__file__).resolve().parent.parent)
    paths = [package_root, *[path for path in environ.get("PYTHONPATH", "").split(os.pathsep) if path]]
    return {**environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
            SERVED_VARIABLE: "1" if served else "0"}


def may_stop(owner: str | None, visitor: str | None, any_owner: bool) -> bool:
    """Whether visitor may stop what owner started: anyone on a local page (any_owner), else the owner alone."""
    return any_owner or (owner is not None and owner == visitor)
