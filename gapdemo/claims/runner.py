"""ClaimsRunner: one claims job at a time in a background thread, polled by the dashboard."""

from __future__ import annotations

import threading
import time

from gapdemo.claims.run import DEFAULT_SEEDS, ClaimsFailed, ClaimsStopped, check_arguments, run_claims
from gapdemo.config import RunConfig
from gapdemo.serving import may_stop


class ClaimsRunner:
    """At most one claims job at a time, in a background thread; read it with status() from any thread.

    The dashboard keeps one per server process. Nothing here touches the UI: the page polls. A job
    has an owner (the visitor who started it); on a served page only the owner may stop it.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._status = {"state": "idle", "message": "", "fraction": 0.0, "result": None, "started": None}
        self._owner: str | None = None

    def start(self, config: RunConfig, seeds: int = DEFAULT_SEEDS, *, owner: str | None = None,
              served: bool) -> bool:
        """Start a claims job for owner; False when one is already running. ValueError for bad
        arguments, and for data paths outside the data roots when served (the gate, asked again here)."""
        check_arguments(config, seeds, served=served)
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._owner = owner
            self._stop_event = threading.Event()
            self._status = {"state": "running", "message": "Starting", "fraction": 0.0, "result": None,
                            "started": time.time(), "seeds": seeds}
            self._thread = threading.Thread(target=self._work, args=(config, seeds, self._stop_event, served),
                                            name="gapdemo-claims", daemon=True)
            self._thread.start()
        return True

    def stop(self, visitor: str | None = None, any_owner: bool = True) -> bool:
        """Stop the job if visitor may (gapdemo.serving.may_stop); False when they may not."""
        with self._lock:
            if not may_stop(self._owner, visitor, any_owner):
                return False
            self._stop_event.set()
            if self._status["state"] == "running":
                self._status = {**self._status, "state": "stopping", "message": "Stopping after this batch"}
            return True

    def owner(self) -> str | None:
        """Who started the current or last job (None: the command line, a test)."""
        with self._lock:
            return self._owner

    def is_running(self) -> bool:
        with self._lock:
            return self._thread is not None and self._thread.is_alive()

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

    def _work(self, config: RunConfig, seeds: int, stop_event: threading.Event, served: bool) -> None:
        try:
            result = run_claims(config, seeds, progress=self._progress, stop_event=stop_event, served=served)
        except ClaimsStopped:
            self._update(state="stopped", message="Stopped; nothing was saved for this claims job.")
        except ClaimsFailed as error:  # a training run failed: its sentence names the run and says why
            self._update(state="failed", message=str(error))
        except Exception as error:  # a failed job ends this job only, never the server
            self._update(state="failed", message=f"{type(error).__name__}: {error}")
        else:
            self._update(state="finished", message="Claims measured", fraction=1.0, result=result)
