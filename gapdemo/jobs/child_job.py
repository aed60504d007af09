"""Claims jobs and sweeps from the page: each a command in a child process, queued like a run.

A claims job is `python -m gapdemo claims --config - --events`, a sweep `python -m gapdemo sweep --plan
FILE`; both start Ray in the child (a local Ray, or the cluster of GAPDEMO_RAY_ADDRESS), never in the
web server. On this machine they train at most as many runs at once as their slots (--max-concurrent),
so a claims job waits behind a run instead of halving it. Stop sends SIGTERM (Windows: TerminateProcess):
the commands stop their trials after the batches in flight; finished trials are kept. A child that
dies (killed, out of memory, a crash) ends the job as failed with one sentence and leaves the page up.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from gapdemo.jobs.endings import ending_sentence, over_budget_sentence
from gapdemo.jobs.processes import ChildProcess
from gapdemo.sweep import store
from gapdemo.sweep.grid import SweepPlan
from gapdemo.training.owned_job import OwnedJob

STOPPED_EXIT_CODES = (130, -15)  # the command's own exit after a stop, or SIGTERM before it could say so
CLAIMS_STOPPED = "Stopped; nothing was saved for this claims job."
SWEEP_STOPPED = "Stopped: finished trials are kept; start the same sweep again to resume it."


class ChildJob(OwnedJob):
    """One command in a child process, with a state any thread may read; subclasses give the command."""

    what = "job's process"  # in the sentence of a process that died

    def __init__(self, owner: str | None, slots: int, environment: dict, budget_bytes: int | None):
        super().__init__(owner)
        self.slots, self.environment, self.budget_bytes = slots, environment, budget_bytes
        self.child: ChildProcess | None = None
        self._lock = threading.Lock()
        self._status = {"state": "queued", "message": "", "fraction": 0.0, "result": None, "started": None,
                        "finished": None}

    # ----- what a subclass says -----
    def command(self) -> list[str]:
        raise NotImplementedError

    def stdin_text(self) -> str | None:
        return None

    def log_path(self) -> Path | None:
        return None

    def stopped_message(self) -> str:
        return "Stopped."

    # ----- reading -----
    @property
    def state(self) -> str:
        return self.status()["state"]

    def status(self) -> dict:
        """state (queued, running, stopping, finished, stopped, failed), message, fraction, result, elapsed."""
        with self._lock:
            status = dict(self._status)
        end = status["finished"] or time.time()
        status["elapsed_seconds"] = end - status["started"] if status["started"] else 0.0
        return status

    def _update(self, **changes) -> None:
        with self._lock:
            self._status = {**self._status, **changes}

    # ----- control -----
    def stop(self) -> None:
        """A queued job never starts; a running one is told to stop (its trials end after their batch)."""
        super().stop()
        with self._lock:
            state = self._status["state"]
        if state == "queued":
            self._end("stopped", self.stopped_message())
        elif state == "running":
            self._update(state="stopping", message="Stopping after the batches in flight")
            if self.child is not None:
                self.child.terminate()

    def _end(self, state: str, message: str, **changes) -> None:
        self._update(state=state, message=message, finished=time.time(), **changes)
        self.mark_done()

    # ----- running -----
    def run(self) -> str:
        """Start the command and follow its events until it ends; the end state. Never raises."""
        if self.is_done():
            return self.state
        self._update(state="running", message="Starting", started=time.time())
        try:
            self.child = ChildProcess(self.command(), self.environment, self.stdin_text(), log_path=self.log_path())
        except OSError as error:
            self._end("failed", f"The {self.what} could not start: {error}")
            return self.state
        if self.stop_requested:
            self.child.terminate()
        watching = threading.Event()
        limit = None if self.budget_bytes is None else self.budget_bytes * max(self.slots, 1)
        self.child.watch_memory(limit, watching)
        while (event := self.child.events.get()).get("event") != "exit":
            self.take(event)
        watching.set()
        self._end(*self.ending(self.child.returncode()))
        return self.state

    def take(self, event: dict) -> None:
        """One event line of the command: its progress, or its result."""
        if event.get("event") == "progress" and self.state == "running":
            self._update(message=str(event.get("message", "")), fraction=float(event.get("fraction", 0.0)))
        elif event.get("event") == "result":
            self._update(result=event.get("result"))

    def ending(self, returncode: int | None) -> tuple[str, str]:
        """(state, message) from how the command ended."""
        child = self.child
        if child.over_budget:
            return "failed", over_budget_sentence(child.peak_bytes, self.budget_bytes * max(self.slots, 1))
        if returncode == 0:
            return "finished", self.status()["message"]
        if self.stop_requested and (returncode in STOPPED_EXIT_CODES or returncode is None or returncode == 1):
            return "stopped", self.stopped_message()
        return "failed", ending_sentence(returncode, list(child.error_lines), peak_bytes=child.peak_bytes,
                                         memory_was_low=child.memory_was_low, what=self.what)


class ClaimsJob(ChildJob):
    """The four claims measured over seeds in a child `gapdemo claims` process."""

    kind, what = "claims", "claims job's process"

    def __init__(self, config, seeds: int, *, owner=None, slots: int = 1, environment: dict, budget_bytes=None):
        super().__init__(owner, slots, environment, budget_bytes)
        self.config, self.seeds = config, seeds

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "gapdemo", "claims", "--config", "-", "--seeds", str(self.seeds),
                   "--runs-dir", str(self.config.train.runs_dir), "--events"]
        return command + (["--max-concurrent", str(self.slots)] if self.slots else [])

    def stdin_text(self) -> str:
        return json.dumps(self.config.to_dict())

    def stopped_message(self) -> str:
        return CLAIMS_STOPPED


class SweepJob(ChildJob):
    """A planned sweep in a child `gapdemo sweep --plan` process; the Sweeps tab reads its folder."""

    kind, what = "sweep", "sweep's process"

    def __init__(self, plan: SweepPlan, *, owner=None, slots: int = 1, environment: dict, budget_bytes=None):
        super().__init__(owner, slots, environment, budget_bytes)
        self.plan, self.sweep_id = plan, plan.sweep_id
        self.plan_path: Path | None = None  # written when the sweep starts, not while it waits

    def run(self) -> str:
        if not self.is_done():
            try:
                self.plan_path = store.write_plan(self.plan)
            except OSError as error:
                self._end("failed", f"The sweep's plan could not be written: {error}")
        return super().run()

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "gapdemo", "sweep", "--plan", str(self.plan_path)]
        return command + (["--max-concurrent", str(self.slots)] if self.slots else [])

    def log_path(self) -> Path:
        return self.plan_path.parent / "driver.log"

    def stopped_message(self) -> str:
        return SWEEP_STOPPED

    def ending(self, returncode: int | None) -> tuple[str, str]:
        if returncode == 1 and not self.stop_requested:  # the sweep ran; some trials did not finish
            return "finished", "Some trials did not finish; the table says which."
        return super().ending(returncode)


class PoolMeasureJob(ChildJob):
    """A group's runs not yet measured for the pooled claims, measured in a child `gapdemo claims --pool`
    process (TensorFlow stays out of the web server); the Claims tab reads each run's measures file."""

    kind, what = "pool", "claims-measuring process"

    def __init__(self, runs_dir, group_key: str, *, environment: dict, budget_bytes=None):
        super().__init__(None, 1, environment, budget_bytes)  # the page's own work: nobody's, one slot
        self.runs_dir, self.group_key = str(runs_dir), group_key

    def command(self) -> list[str]:
        return [sys.executable, "-m", "gapdemo", "claims", "--pool", "--runs-dir", self.runs_dir,
                "--group", self.group_key, "--events"]

    def stopped_message(self) -> str:
        return "Stopped: the runs measured so far keep their measures."
