"""ClaimsRunner: one claims job at a time in a background thread, polled by the dashboard."""

from __future__ import annotations

import threading
import time

from gapdemo.claims.run import DEFAULT_SEEDS, ClaimsFailed, ClaimsStopped, check_arguments, run_claims
from gapdemo.config import RunConfig


class ClaimsRunner:
    """At most one claims job at a time, in a background thread; read it with status() from any thread.

    The dashboard keeps one per server process. Nothing here touches the UI: the page polls.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._status = {"state": "idle", "message": "", "fraction": 0.0, "result": None, "started": None}

    def start(self, config: RunConfig, seeds: int = DEFAULT_SEEDS) -> bool:
        """Start a claims job; False when one is already running. ValueError for bad arguments."""
        check_arguments(config, seeds)
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._stop_event = threading.Event()
            self._status = {"state": "running", "message": "Starting", "fraction": 0.0, "result": None,
                            "started": time.time(), "seeds": seeds}
            self._thread = threading.Thread(target=self._work, args=(config, seeds, self._stop_event),
                                            name="gapdemo-claims", daemon=True)
            self._thread.start()
        return True

    def stop(self) -> None:
        with self._lock:
            self._stop_event.set()
            if self._status["state"] == "running":
                self._status = {**self._status, "state": "stopping", "message": "Stopping after this batch"}

    def is_running(self) -> bool:
        with self._lock:
            return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.is_running()

    def status(self) -> dict:
        """state (idle/running/stopping/finished/stopped/failed), message, fraction, result, elapsed_seconds."""
        with self._lock:
            status = dict(self._status)
        status["elapsed_seconds"] = time.time() - status["started"] if status["started"] else 0.0
        return status

    def _update(self, **changes) -> None:
        with self._lock:
            self._status = {**self._status, **changes}

    def _progress(self, message: str, fraction: float) -> None:
        with self._lock:
            if self._status["state"] == "running":
                self._status = {**self._status, "message": message, "fraction": float(fraction)}

    def _work(self, config: RunConfig, seeds: int, stop_event: threading.Event) -> None:
        try:
            result = run_claims(config, seeds, progress=self._progress, stop_event=stop_event)
        except ClaimsStopped:
            self._update(state="stopped", message="Stopped; nothing was saved for this claims job.")
        except ClaimsFailed as error:  # a training run failed: its sentence names the run and says why
            self._update(state="failed", message=str(error))
        except Exception as error:  # a failed job ends this job only, never the server
            self._update(state="failed", message=f"{type(error).__name__}: {error}")
        else:
            self._update(state="finished", message="Claims measured", fraction=1.0, result=result)
