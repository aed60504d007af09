"""Reading a growing CSV of a run a few rows at a time: only the bytes appended since the last read.

A page that follows a run trained by another process reads its metrics files every few seconds. Reading
them whole each time costs the server time that grows with the run; a CsvTail keeps its byte offset and
parses only the whole lines added since. A file that shrank (a run started again from epoch 1 on another
node, a folder replaced) is read again from its start, and the caller is told. A tail reads no further
than MAX_CSV_BYTES into a file (gapdemo.runs.trust): the rows before the cap are handed out, the rest never
read, and .refusal says so in one sentence, so a file planted in a shared runs folder cannot fill the
server's memory.
"""

from __future__ import annotations

import csv
import io
import math
import threading
from pathlib import Path

from gapdemo.runs.files import BATCH_FIELDS, BATCH_METRICS_FILE, EPOCH_FIELDS, EPOCH_METRICS_FILE
from gapdemo.runs.trust import MAX_CSV_BYTES, describe_file
from gapdemo.units import format_bytes

NUMBER_FIELDS = {"epoch": int, "batch": int}  # the rest but "backend" are floats


class CsvTail:
    """The rows of one CSV, read incrementally; thread-safe (one tail may serve every tab watching a run)."""

    def __init__(self, path: Path, fields: tuple[str, ...], max_bytes: int = MAX_CSV_BYTES):
        self.path, self.fields, self.max_bytes = Path(path), tuple(fields), max_bytes
        self.rows_read = 0  # rows handed out so far, counted from the file's first row
        self.restarted = False  # the file shrank since the last read, and was read again from its start
        self.refusal: str | None = None  # one sentence once the file has grown past max_bytes
        self._offset = 0  # bytes of whole lines consumed, header included
        self._columns: list[str] | None = None  # the header, once read
        self._lock = threading.Lock()

    def read_new(self) -> list[dict]:
        """Rows appended since the last call (all rows after a restart, with .restarted set)."""
        with self._lock:
            return self._read_new_locked()

    def rows_from(self, index: int) -> list[dict]:
        """Rows from row index on: the new ones when index is where the last read ended, else the file
        read again from its start (a reader that fell behind, or asks again); [] past the end."""
        with self._lock:
            if index == self.rows_read:
                rows = self._read_new_locked()
                return rows if not self.restarted else rows[index:]
            if index > self.rows_read:
                self._read_new_locked()
                return []
            self._reset_locked()
            return self._read_new_locked()[index:]

    def _reset_locked(self) -> None:
        self._offset, self._columns, self.rows_read = 0, None, 0

    def _read_new_locked(self) -> list[dict]:
        self.restarted = False
        try:
            with open(self.path, "rb") as handle:
                size = handle.seek(0, io.SEEK_END)
                if size < self._offset:  # the file was cut or replaced: read it again from its start
                    self._reset_locked()
                    self.restarted = True
                size = self._capped_locked(size)
                handle.seek(self._offset)
                data = handle.read(size - self._offset)
        except FileNotFoundError:
            return []
        # Each row is written with its line break: a last line without one is still being written.
        data = data[:data.rfind(b"\n") + 1]
        # Past the cap nothing more is read: the line the cap cuts is dropped too, not read again each time.
        self._offset = self.max_bytes if self.refusal else self._offset + len(data)
        if not data:
            return []
        lines = data.decode("utf-8", errors="replace").splitlines()
        if self._columns is None:
            self._columns, lines = next(csv.reader(lines[:1])), lines[1:]
        rows = [row for row in map(self._parse, csv.reader(lines)) if row is not None]
        self.rows_read += len(rows)
        return rows

    def _capped_locked(self, size: int) -> int:
        """How far to read a file of size bytes: to its end, or to max_bytes (then .refusal says so)."""
        if size <= self.max_bytes:
            self.refusal = None
            return size
        self.refusal = (f"{describe_file(self.path)} has grown past the {format_bytes(self.max_bytes)} gapdemo reads; "
                        "its rows after that are not shown.")
        return self.max_bytes

    def _parse(self, values: list[str]) -> dict | None:
        """One line as a dict of typed values; None for a malformed line (as pandas' on_bad_lines="skip")."""
        if len(values) != len(self._columns) or not set(self.fields) <= set(self._columns):
            return None
        row = dict(zip(self._columns, values, strict=True))
        try:
            typed = {name: NUMBER_FIELDS.get(name, float)(row[name]) if name != "backend" else row[name]
                     for name in self.fields}
        except ValueError:
            return None
        if any(isinstance(value, float) and math.isnan(value) for value in typed.values()):
            return None  # as the whole-file reader (gapdemo.runs.files), which drops rows with a missing value
        return typed


def batch_metrics_tail(run_dir: Path) -> CsvTail:
    """A tail of the run's batch_metrics.csv (gapdemo.runs.BATCH_FIELDS)."""
    return CsvTail(Path(run_dir) / BATCH_METRICS_FILE, BATCH_FIELDS)


def epoch_metrics_tail(run_dir: Path) -> CsvTail:
    """A tail of the run's metrics.csv (gapdemo.runs.EPOCH_FIELDS)."""
    return CsvTail(Path(run_dir) / EPOCH_METRICS_FILE, EPOCH_FIELDS)
