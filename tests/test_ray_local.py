"""A local sweep's Ray stays on this machine, and every trial's temporary folder goes, whatever the outcome.

Both start a real local Ray as the engine does (gapdemo.cluster.connection.connect without an address) and train
tiny trials on it.
"""

import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import ray

from gapdemo.cluster import connection, trials
from gapdemo.config import tiny_config

ROOT = Path(__file__).resolve().parent.parent
TRIAL_FOLDER_PREFIX = "gapdemo-trial-"

# Runs in a fresh interpreter, as `python -m gapdemo sweep` does: the engine's local start, then one tiny
# trial; prints every listening (or bound UDP) socket seen on the driver's descendants (gcs_server,
# raylet, agents, workers) right after the start, about once a second while the trial runs, and after it.
LISTENERS_SCRIPT = r"""
import json, socket, sys, tempfile
import psutil
from gapdemo.config import tiny_config
from gapdemo.cluster import connection, trials

def listeners():
    me = psutil.Process()
    found = []
    for process in [me, *me.children(recursive=True)]:
        try:
            name, title = process.name(), " ".join(process.cmdline())[:80]
            sockets = process.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found += [[name, title, s.laddr.ip, s.laddr.port] for s in sockets
                  if s.status == psutil.CONN_LISTEN or (s.type == socket.SOCK_DGRAM and not s.raddr)]
    return found

seen = []
connection.connect(num_cpus=1)
seen += listeners()
config = tiny_config(sys.argv[1], ("gap",))
spec = trials.TrialSpec("local-trial", config.to_dict())
outcome = trials.run_trials([spec], sys.argv[1], tempfile.mkdtemp(), on_update=lambda snapshot: seen.extend(listeners()))
seen += listeners()
print(json.dumps({**outcome["local-trial"], "listeners": seen}))
"""


def is_loopback(host: str) -> bool:
    address = ipaddress.ip_address(host.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1, a dual-stack socket bound to IPv4 loopback
    return address.is_loopback


def test_the_helper_tells_loopback_from_every_interface():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.0.2.2")


@pytest.mark.slow
def test_a_local_sweep_listens_on_loopback_only(tmp_path):
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("RAY_ADDRESS", "GAPDEMO_RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-c", LISTENERS_SCRIPT, str(tmp_path / "runs")], cwd=tmp_path,
                            env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert output["state"] == "finished", output.get("message")
    listeners = {(name, title, host, port) for name, title, host, port in output["listeners"]}
    names = {name for name, *_ in listeners}
    titles = " ".join(title for _, title, *_ in listeners)
    # Ray's servers and a worker were seen listening, so the check below is not vacuous.
    assert {"gcs_server", "raylet"} <= names and "ray::" in titles, sorted(listeners)
    exposed = sorted(listener for listener in listeners if not is_loopback(listener[2]))
    assert exposed == [], "listening beyond loopback: " + "; ".join(f"{n} {h}:{p}" for n, _, h, p in exposed)


# ----- temporary trial folders: gone after a finished, a failed and a stopped trial -----
@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """A local Ray started by the engine whose workers make their temporary folders in a folder of ours."""
    temp_root = tmp_path_factory.mktemp("worker_tmp")
    with pytest.MonkeyPatch.context() as patch:
        # Workers inherit the environment Ray starts with; Ray's own session folder stays where it was
        # (its socket paths have a length limit).
        patch.setenv("RAY_TMPDIR", os.environ.get("RAY_TMPDIR") or tempfile.gettempdir())
        patch.setenv("TMPDIR", str(temp_root))
        assert connection.connect(num_cpus=1), "another test left Ray running"
    yield temp_root
    connection.disconnect()


def trial_folders(temp_root: Path) -> list[str]:
    return sorted(path.name for path in temp_root.glob(f"{TRIAL_FOLDER_PREFIX}*"))


def train_one_trial(config, tmp_path, **options) -> dict:
    spec = trials.TrialSpec("the-trial", config.to_dict())
    outcome = trials.run_trials([spec], tmp_path / "runs", tmp_path / "tune", **options)
    return outcome["the-trial"]


@pytest.mark.slow
def test_a_finished_trial_leaves_no_temporary_folder(local_ray, tmp_path):
    entry = train_one_trial(tiny_config(str(tmp_path / "runs"), ("gap",)), tmp_path)
    assert entry["state"] == "finished", entry
    assert (tmp_path / "runs" / "the-trial" / "models" / "gap.keras").exists()  # it came home first
    assert trial_folders(local_ray) == []


def test_a_failed_trial_leaves_no_temporary_folder(local_ray, tmp_path):
    photos = tmp_path / "photos"
    for name in ("cat", "dog"):
        (photos / name).mkdir(parents=True)
        (photos / name / "broken.jpg").write_bytes(b"not a jpeg")
    config = tiny_config(str(tmp_path / "runs"), ("gap",))
    config.data.dataset, config.data.data_dir = "folder", str(photos)
    entry = train_one_trial(config, tmp_path)
    assert entry["state"] == "failed" and entry["message"], entry
    assert "Traceback" in (tmp_path / "runs" / "the-trial" / "log.txt").read_text()  # its log came home
    assert trial_folders(local_ray) == []


@pytest.mark.slow
def test_a_stopped_trial_leaves_no_temporary_folder(local_ray, tmp_path):
    config = tiny_config(str(tmp_path / "runs"), ("gap",))
    config.train.epochs = 30  # far more than it can train before the stop lands
    stop = threading.Event()

    def stop_once_it_runs(snapshot):
        if snapshot.get("the-trial", {}).get("state") == "running":
            stop.set()

    entry = train_one_trial(config, tmp_path, stop_event=stop, on_update=stop_once_it_runs)
    assert stop.is_set() and entry["state"] == "stopped", entry
    assert trial_folders(local_ray) == []


def test_a_trial_whose_settings_the_worker_cannot_read_fails_once_and_leaves_no_temporary_folder(local_ray, tmp_path):
    """A failure before training starts (here a setting this version does not know) is a failure like any other."""
    config = tiny_config(str(tmp_path / "runs"), ("gap",)).to_dict()
    config["model"]["colour"] = "red"
    outcome = trials.run_trials([trials.TrialSpec("the-trial", config)], tmp_path / "runs", tmp_path / "tune")
    entry = outcome["the-trial"]
    assert entry["state"] == "failed" and "colour" in entry["message"], entry
    assert entry["attempts"] == 1  # not retried: it would fail the same way
    assert trial_folders(local_ray) == []


def test_following_the_collector_passes_the_stop_on_and_ends_with_a_last_snapshot(local_ray, tmp_path):
    """The one wait of a sweep's driver and a single cluster run: rounds until the work ends, the stop passed on."""
    collector = trials.start_collector(tmp_path)
    ray.get(collector.report.remote("a-run", {"epoch": 1}))
    stop, rounds, seen = threading.Event(), iter([False, False, True]), []
    stop.set()
    last = trials.follow_collector(collector, stop, lambda seconds: next(rounds), seen.append)
    assert ray.get(collector.stop_requested.remote())  # a trial starting now would train nothing
    assert len(seen) == 3 and last == seen[-1] and last["a-run"]["progress"] == {"epoch": 1}
    ray.kill(collector)


def test_a_local_start_after_ray_was_imported_in_its_cluster_mode_is_refused(tmp_path):
    """Ray picks its mode on its first import: a local instance that would listen on the network is shut down."""
    script = ("import ray\nfrom gapdemo.cluster import connection, trials\ntry:\n    connection.connect(num_cpus=1)\n"
              "except connection.EngineError as error:\n    print(ray.is_initialized(), error)\n")
    environment = {name: value for name, value in os.environ.items() if name != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=environment, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("False A local Ray would listen beyond this machine"), result.stdout
