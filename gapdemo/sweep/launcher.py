"""Starts a sweep for the dashboard as a child process: `python -m gapdemo sweep --plan FILE`.

The page plans the sweep (gapdemo.sweep.run.plan_sweep: the trials, each with its settings and seed,
asked of the gate) and hands the plan to the child as JSON in the sweep's folder (plan.json); the
child trains exactly those trials, resuming a sweep of the same plan.

Ray and its workers stay out of the web server's process, the page reads progress from the sweep
folder like any other reader, and a sweep outlives a closed browser tab. Stopping sends SIGTERM
(Windows: TerminateProcess, which ends the driver at once; run the sweep again to resume it).
A sweep has an owner, the visitor who started it: on a served page only they may stop it, and the
child process is told the page is served (GAPDEMO_SERVED), so it asks the gate the same question.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from gapdemo.config import RunConfig
from gapdemo.serving import child_environment, may_stop
from gapdemo.sweep import store
from gapdemo.sweep.run import plan_sweep

LOG_TAIL_CHARACTERS = 600


class SweepLauncher:
    """At most one sweep at a time from this page's process; read it from any thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._sweep_id: str | None = None
        self._log_path: Path | None = None
        self._owner: str | None = None

    def start(self, base: RunConfig, grid: dict, seeds: int, max_concurrent: int | None = None, *,
              owner: str | None = None, served: bool) -> str:
        """Start owner's sweep; its id. ValueError when one is running, or a grid point may not run here
        (plan_sweep: the gate, and the trial cap when served)."""
        plan = plan_sweep(base, grid, seeds, served=served)
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                raise ValueError("A sweep is already running; stop it or wait for it to finish.")
            plan_path = store.write_plan(plan)
            command = [sys.executable, "-m", "gapdemo", "sweep", "--plan", str(plan_path)]
            if max_concurrent:
                command += ["--max-concurrent", str(max_concurrent)]
            self._log_path = plan_path.parent / "driver.log"
            environment = child_environment(served)
            with open(self._log_path, "ab") as log:
                self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log,
                                                 stdin=subprocess.DEVNULL, env=environment)
            self._sweep_id, self._owner = plan.sweep_id, owner
        return plan.sweep_id

    def stop(self, visitor: str | None = None, any_owner: bool = True) -> bool:
        """Stop the running sweep if visitor may (gapdemo.serving.may_stop); False when they may not."""
        with self._lock:
            if not may_stop(self._owner, visitor, any_owner):
                return False
            if self._process is not None and self._process.poll() is None:
                self._process.terminate()
            return True

    def owner(self) -> str | None:
        """Who started the current or last sweep (None: a test, the command line)."""
        with self._lock:
            return self._owner

    def is_running(self) -> bool:
        with self._lock:
            return self._process is not None and self._process.poll() is None

    def current(self) -> str | None:
        """The id of the sweep this launcher started last."""
        with self._lock:
            return self._sweep_id

    def failure(self) -> str | None:
        """One sentence when the last sweep's process ended with an error (exit 2 or a crash), else None."""
        with self._lock:
            if self._process is None or self._process.poll() in (None, 0, 1, 130, -15):
                return None
            tail = self._log_path.read_text(errors="replace")[-LOG_TAIL_CHARACTERS:] if self._log_path else ""
        lines = [line for line in tail.splitlines() if line.startswith("error:")]
        return lines[-1].removeprefix("error: ") if lines else "The sweep's process ended unexpectedly; see driver.log."

