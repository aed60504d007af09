"""The Ray instance sweeps run on: a cluster joined at an address, or one started on this machine.

A local instance listens on loopback only (Ray's single-machine mode), so a page served to a network
exposes no Ray port; a cluster is joined as its nodes were started (see README, "Sweeps").
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from pathlib import Path

import psutil

import gapdemo
from gapdemo import settings
from gapdemo.serving import SERVED_VARIABLE

RAY_ADDRESS_VARIABLE = settings.RAY_ADDRESS.name
CONNECT_TIMEOUT_SECONDS = 5.0
WORKER_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2"}  # no TensorFlow start-up lines from the trials
RAY_INIT_OPTIONS = {"log_to_driver": False, "configure_logging": False}
# "0": Ray's single-machine mode (its default on macOS and Windows). The node's address is then 127.0.0.1
# and gcs_server, raylet, agents and workers listen on loopback only; in Ray's cluster mode (Linux's
# default) they listen on every interface, and ray.init(_node_ip_address="127.0.0.1") is turned into
# the machine's network address. Ray reads the variable once, when it is first imported.
SINGLE_MACHINE_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class EngineError(RuntimeError):
    """Ray cannot be used (unreachable address, Ray missing, a local Ray not on loopback); str() is one sentence."""


def resolve_address(address: str | None) -> str | None:
    """--address, else GAPDEMO_RAY_ADDRESS, else None (start a local Ray instance)."""
    return address or settings.ray_address() or None


def check_reachable(address: str) -> None:
    """Raise EngineError within seconds when nothing listens at host:port (ray.init would hang)."""
    if address == "auto":
        return
    host, _, port = address.split("://")[-1].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT_SECONDS):
            return
    except (OSError, ValueError):
        raise EngineError(f"No Ray cluster answers at {address}; start one with `ray start --head` "
                          "or leave out --address to run on this machine.") from None


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the cluster at address, or start a local Ray instance on loopback; True when this call started Ray."""
    if not address:
        return start_local(num_cpus)
    ray = import_ray()
    if ray.is_initialized():
        return False
    check_reachable(address)
    # py_modules ships this package to every worker, so cluster nodes need only the requirements.
    ray.init(address=address, runtime_env=cluster_runtime_env(), **RAY_INIT_OPTIONS)
    return True


def disconnect() -> None:
    """Leave Ray: stop the local instance connect started, or let go of the cluster it joined."""
    import_ray().shutdown()


def start_local(num_cpus: int | None = None) -> bool:
    """Start a Ray instance on this machine whose every process listens on loopback only."""
    # Inside local_environment: Ray decides its single-machine mode once, when first imported.
    with local_environment():
        ray = import_ray()
        if ray.is_initialized():
            return False
        children_before = {child.pid for child in psutil.Process().children()}
        # "local": a new instance even where another Ray runs on this machine (ray.init would join it).
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, **RAY_INIT_OPTIONS)
    # Checked, not assumed: Ray imported earlier in its cluster mode, or a Ray that ignores the mode, listens wide.
    exposed = exposed_listeners(children_before)
    if exposed:
        ray.shutdown()
        raise EngineError(f"A local Ray would listen beyond this machine ({', '.join(exposed)}), so it was stopped: "
                          "Ray was imported before the sweep could start it in single-machine mode, or this Ray "
                          "ignores that mode; start the sweep in a new process.")
    return True


def exposed_listeners(children_before: set[int]) -> list[str]:
    """'name host:port' of each non-loopback socket listened on by the processes Ray just started, and theirs."""
    processes, exposed = [], []
    for child in psutil.Process().children():
        if child.pid not in children_before:
            with contextlib.suppress(psutil.Error):  # gone already: it listens nowhere
                processes += [child, *child.children(recursive=True)]
    for process in processes:
        try:
            list_sockets = getattr(process, "net_connections", None) or process.connections  # the name before psutil 6
            sockets, name = list_sockets(kind="inet"), process.name()
        except psutil.Error:
            continue
        exposed += [f"{name} {s.laddr.ip}:{s.laddr.port}" for s in sockets
                    if s.status == psutil.CONN_LISTEN and not is_loopback(s.laddr.ip)]
    return exposed


def import_ray():
    """The ray module; EngineError when it is not installed."""
    try:
        import ray  # deferred: Ray picks its single-machine mode once, when first imported (local_environment)
    except ImportError:
        raise EngineError("Sweeps need Ray: pip install 'ray[tune]'.") from None
    return ray


def is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost"
    # ::ffff:127.0.0.1: a dual-stack socket bound to IPv4's loopback
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def cluster_runtime_env() -> dict:
    """This package and the workers' environment for a cluster's workers, which do not inherit this process's
    environment: GAPDEMO_SERVED goes too, so a served page's trials speak to visitors (gapdemo.data.audience)."""
    told = settings.served()
    served = {} if told is None else {SERVED_VARIABLE: "1" if told else "0"}
    return {"py_modules": [gapdemo], "env_vars": {**WORKER_ENVIRONMENT, **served}}


@contextlib.contextmanager
def local_environment():
    """Set, for Ray imported and started inside: single-machine mode, this package on PYTHONPATH, quiet TensorFlow.

    A local instance's processes inherit this environment, so its workers find this package without a
    runtime environment (which costs about 2 s of start-up: packing, an agent, new workers).
    """
    package_parent = str(Path(gapdemo.__file__).resolve().parent.parent)
    names = ("PYTHONPATH", SINGLE_MACHINE_VARIABLE, *WORKER_ENVIRONMENT)
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(WORKER_ENVIRONMENT)
    os.environ[SINGLE_MACHINE_VARIABLE] = "0"
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, saved["PYTHONPATH"]]))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
