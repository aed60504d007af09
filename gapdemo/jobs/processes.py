"""A child process the page started, seen from the page: its JSON event lines, its last error lines, its
memory, and a watchdog that stops it when it grows past its budget.

Every job the page starts trains in a process of its own (the worker, a claims job, a sweep), so the
operating system's out-of-memory killer never has to choose the web server; the watchdog samples the
process tree's resident memory twice a second and stops it before the machine runs short.
"""

from __future__ import annotations

import collections
import json
import queue
import subprocess
import threading
from pathlib import Path

import psutil

from gapdemo.budget.memory import process_tree_bytes
from gapdemo.jobs.endings import LOW_MEMORY_FRACTION

ERROR_LINES_KEPT = 20
SAMPLE_SECONDS = 0.5
EXIT_EVENT = {"event": "exit"}  # put on the event queue when the process's stdout closes


def parse_event(line: str) -> dict:
    """One stdout line as an event; {} for anything else printed there."""
    try:
        event = json.loads(line)
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}


class ChildProcess:
    """A started command: events from its stdout on a queue, its stderr's last lines, its memory."""

    def __init__(self, command: list[str], environment: dict, stdin_text: str | None = None,
                 keep_stdin_open: bool = False, log_path: Path | None = None):
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            encoding="utf-8", errors="replace", env={**environment, "PYTHONIOENCODING": "utf-8"}, bufsize=1)
        self.events: queue.Queue = queue.Queue()
        self.error_lines: collections.deque = collections.deque(maxlen=ERROR_LINES_KEPT)
        self.peak_bytes, self.memory_was_low, self.over_budget = 0, False, False
        self._send_lock = threading.Lock()
        threading.Thread(target=self._read_events, daemon=True, name="gapdemo-child-events").start()
        self.log_path = log_path  # where every stderr line goes too (a sweep's driver.log), else only the tail
        threading.Thread(target=self._read_errors, daemon=True, name="gapdemo-child-errors").start()
        if stdin_text is not None:
            self.send_text(stdin_text)
        if not keep_stdin_open:
            self.close_stdin()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read_events(self) -> None:
        for line in self.process.stdout:
            event = parse_event(line)
            if event:
                self.on_event(event)
                self.events.put(event)
        self.process.wait()
        self.events.put(dict(EXIT_EVENT))

    def on_event(self, event: dict) -> None:
        """Called for each event as it arrives, before it is queued (a subclass may take what it needs)."""

    def _read_errors(self) -> None:
        """Keep the last stderr lines (read all along: a child blocked on a full pipe would stop reporting)."""
        log = open(self.log_path, "a", encoding="utf-8") if self.log_path else None  # noqa: SIM115
        try:
            for line in self.process.stderr:
                self.error_lines.append(line)
                if log is not None:
                    log.write(line)
                    log.flush()
        finally:
            if log is not None:
                log.close()

    def send_text(self, text: str) -> bool:
        """Write text to its stdin; False when it no longer reads (ended)."""
        with self._send_lock:
            try:
                self.process.stdin.write(text)
                self.process.stdin.flush()
                return True
            except (OSError, ValueError):  # a closed pipe: the process ended
                return False

    def send(self, message: dict) -> bool:
        return self.send_text(json.dumps(message) + "\n")

    def close_stdin(self) -> None:
        with self._send_lock:
            try:
                self.process.stdin.close()
            except OSError:
                pass

    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> None:
        if self.alive():
            self.process.terminate()

    def kill(self) -> None:
        if self.alive():
            self.process.kill()

    def returncode(self, timeout: float = 10.0) -> int | None:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def sample_memory(self, budget_bytes: int | None) -> int:
        """One watchdog sample: remember the peak and whether the machine ran low; kill it past budget_bytes.
        Returns the bytes it holds now."""
        held = process_tree_bytes(self.pid)
        self.peak_bytes = max(self.peak_bytes, held)
        machine = psutil.virtual_memory()
        self.memory_was_low = machine.available < LOW_MEMORY_FRACTION * machine.total
        if budget_bytes is not None and held > budget_bytes and self.alive():
            self.over_budget = True
            self.kill()
        return held

    def watch_memory(self, budget_bytes: int | None, until: threading.Event) -> threading.Thread:
        """Sample the memory every SAMPLE_SECONDS in a thread until until is set or the process ends."""
        def watch() -> None:
            while self.alive() and not until.wait(SAMPLE_SECONDS):
                self.sample_memory(budget_bytes)

        thread = threading.Thread(target=watch, daemon=True, name="gapdemo-memory-watch")
        thread.start()
        return thread
