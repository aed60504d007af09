"""Every GAPDEMO_* variable, read here alone, each by one rule, so a value means the same wherever it is read.

SETTINGS is the table (name, default, meaning, parser); README.md's table of variables lists the same names.
Each accessor reads its variable afresh on every call (cheap), so a test that sets a variable sees it at once.
A value the rule cannot read raises SettingsError, one sentence naming the variable, its value and what is
expected; check_all() asks every variable at once, which the command line and the page do as they start.
Unset or blank means the default.

A leaf module: it imports nothing of gapdemo, so every layer may read its settings here.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}  # binary: 1G = 1 GiB
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class SettingsError(ValueError):
    """A GAPDEMO_* variable whose value its rule cannot read; str() is one sentence naming it."""


def _expected(variable: str, text: str, expected: str) -> SettingsError:
    return SettingsError(f"{variable} must be {expected}, got {text!r}.")


# Parsers: (text, variable) -> value, text already stripped and not blank.
def parse_boolean(text: str, variable: str) -> bool:
    """1/0, true/false, yes/no, on/off (any case) -> bool."""
    word = text.strip().lower()
    if word not in TRUE_WORDS + FALSE_WORDS:
        raise _expected(variable, text, "one of 1/0, true/false, yes/no, on/off")
    return word in TRUE_WORDS


def parse_bytes(text: str, variable: str) -> int:
    """'8G', '8 GiB', '20GB', '512M', '1073741824', '2e10' -> bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not match:
        raise _expected(variable, text, "a size such as 20GB, 8G or 512M")
    return int(float(match.group(1)) * UNITS[match.group(2)])


def whole_number_at_least(least: int) -> Callable[[str, str], int]:
    def parse(text: str, variable: str) -> int:
        if not text.strip().isdigit() or int(text) < least:
            raise _expected(variable, text, f"a whole number of at least {least}")
        return int(text)
    return parse


def number_at_least(least: float, what: str = "a number") -> Callable[[str, str], float]:
    """A finite float of at least least."""
    def parse(text: str, variable: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= least):
            raise _expected(variable, text, f"{what} of at least {least:g}")
        return value
    return parse


def positive_number(what: str = "a positive number") -> Callable[[str, str], float]:
    def parse(text: str, variable: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise _expected(variable, text, what)
        return value
    return parse


def parse_path(text: str, variable: str) -> str:
    """A folder or file path, ~ kept (callers expand it where they use it)."""
    if "\0" in text:
        raise _expected(variable, text, "a path")
    return text


def parse_paths(text: str, variable: str) -> tuple[str, ...]:
    """Paths separated by os.pathsep (':' on Linux and macOS, ';' on Windows); empty entries are skipped."""
    return tuple(parse_path(entry.strip(), variable) for entry in text.split(os.pathsep) if entry.strip())


def parse_address(text: str, variable: str) -> str:
    """A Ray address: host:port, ray://host:port, or auto."""
    if text != "auto" and not re.fullmatch(r"(?:[a-z]+://)?[^\s:/]+:\d{1,5}|(?:[a-z]+://)?\[[0-9a-fA-F:.]+\]:\d{1,5}",
                                         text):
        raise _expected(variable, text, "a Ray address such as 10.0.0.5:6379, ray://host:10001 or auto")
    return text


@dataclass(frozen=True)
class Setting:
    """One variable: its name, its value when unset, what it means (README's words) and how it is read."""

    name: str
    default: object
    meaning: str
    parse: Callable[[str, str], object]

    def read(self, environ: Mapping[str, str] | None = None):
        """The variable's value in environ (os.environ by default), else the default; SettingsError when bad."""
        environ = os.environ if environ is None else environ
        text = environ.get(self.name, "").strip()
        return self.parse(text, self.name) if text else self.default


SERVED = Setting("GAPDEMO_SERVED", None, "1: the page and the commands are served to others (bounds apply); "
                 "0: the page is alone behind the operator's own proxy; unset: the page judges by its requests",
                 parse_boolean)
RUNS_DIR = Setting("GAPDEMO_RUNS_DIR", "runs", "the runs folder of the page and the commands' default --runs-dir",
                   parse_path)
MAX_TRAINING = Setting("GAPDEMO_MAX_TRAINING", None, "runs that train at once on this machine", whole_number_at_least(1))
MAX_QUEUED = Setting("GAPDEMO_MAX_QUEUED", 4, "runs waiting on a served page, all visitors together",
                     whole_number_at_least(1))
MAX_TRIALS = Setting("GAPDEMO_MAX_TRIALS", 16, "runs in one sweep started from a served page",
                     whole_number_at_least(1))
WARM_WORKER = Setting("GAPDEMO_WARM_WORKER", True, "the page starts a training worker (TensorFlow imported, "
                      "about 0.7 GB) as it starts; 0 waits for the first Start", parse_boolean)
MAX_RUN_MEMORY = Setting("GAPDEMO_MAX_RUN_MEMORY", None, "memory one run may take on a served page", parse_bytes)
RUNS_MAX_BYTES = Setting("GAPDEMO_RUNS_MAX_BYTES", 20 * 2**30, "past this size of the runs folder a served page starts no new work", parse_bytes)
MAX_RUN_MINUTES = Setting("GAPDEMO_MAX_RUN_MINUTES", 30.0, "a served page refuses a run estimated to train "
                          "longer (minutes)", positive_number("a positive number of minutes"))
TRAINING_RATE = Setting("GAPDEMO_TRAINING_RATE", None, "set by the page for the jobs it starts: its measured "
                        "training rate (units per second)", positive_number())
CPUS_PER_RUN = Setting("GAPDEMO_CPUS_PER_RUN", 1.0, "CPUs each page run asks a Ray cluster for",
                       number_at_least(0.01))
GPUS_PER_RUN = Setting("GAPDEMO_GPUS_PER_RUN", 0.0, "GPUs each page run asks a Ray cluster for (fractions allowed)",
                       number_at_least(0.0))
RAY_ADDRESS = Setting("GAPDEMO_RAY_ADDRESS", None, "the Ray cluster (host:port) that runs, claims and sweeps go to; "
                      "the commands' default --address", parse_address)
CACHE_DIR = Setting("GAPDEMO_CACHE_DIR", None, "the folder of the decoded-image cache", parse_path)
CACHE_MAX_BYTES = Setting("GAPDEMO_CACHE_MAX_BYTES", 20 * 2**30, "past this size the cache drops its least recently used entries", parse_bytes)
DATA_ROOTS = Setting("GAPDEMO_DATA_ROOTS", (), "the only folders a served page reads data from "
                     "(os.pathsep-separated); unset: none when served, any when local", parse_paths)
OPERATOR_DIR = Setting("GAPDEMO_OPERATOR_DIR", "~/.gapdemo", "where the page writes its operator link",
                       parse_path)
TF_LOGS = Setting("GAPDEMO_TF_LOGS", False, "show TensorFlow's own start-up and log lines "
                  "(as the CLI's --verbose does)", parse_boolean)
CHROMIUM = Setting("GAPDEMO_CHROMIUM", None, "the Chrome or Chromium that PNG export uses", parse_path)

SETTINGS = (SERVED, RUNS_DIR, MAX_TRAINING, MAX_QUEUED, MAX_TRIALS, WARM_WORKER, MAX_RUN_MEMORY, RUNS_MAX_BYTES,
            MAX_RUN_MINUTES, TRAINING_RATE, CPUS_PER_RUN, GPUS_PER_RUN, RAY_ADDRESS, CACHE_DIR, CACHE_MAX_BYTES,
            DATA_ROOTS, OPERATOR_DIR, TF_LOGS, CHROMIUM)


def check_all(environ: Mapping[str, str] | None = None) -> None:
    """Read every variable once: SettingsError for the first that its rule cannot read (in SETTINGS' order)."""
    for setting in SETTINGS:
        setting.read(environ)


# One accessor per variable, so callers name what they want rather than a variable.
def served(environ: Mapping[str, str] | None = None) -> bool | None:
    """True: the operator says served; False: says alone; None: not said."""
    return SERVED.read(environ)


def runs_dir(environ: Mapping[str, str] | None = None) -> str:
    return RUNS_DIR.read(environ)


def max_training(environ: Mapping[str, str] | None = None) -> int | None:
    return MAX_TRAINING.read(environ)


def max_queued(environ: Mapping[str, str] | None = None) -> int:
    return MAX_QUEUED.read(environ)


def max_trials(environ: Mapping[str, str] | None = None) -> int:
    return MAX_TRIALS.read(environ)


def warm_worker(environ: Mapping[str, str] | None = None) -> bool:
    return WARM_WORKER.read(environ)


def max_run_memory(environ: Mapping[str, str] | None = None) -> int | None:
    return MAX_RUN_MEMORY.read(environ)


def runs_max_bytes(environ: Mapping[str, str] | None = None) -> int:
    return RUNS_MAX_BYTES.read(environ)


def max_run_minutes(environ: Mapping[str, str] | None = None) -> float:
    return MAX_RUN_MINUTES.read(environ)


def training_rate(environ: Mapping[str, str] | None = None) -> float | None:
    return TRAINING_RATE.read(environ)


def cpus_per_run(environ: Mapping[str, str] | None = None) -> float:
    return CPUS_PER_RUN.read(environ)


def gpus_per_run(environ: Mapping[str, str] | None = None) -> float:
    return GPUS_PER_RUN.read(environ)


def ray_address(environ: Mapping[str, str] | None = None) -> str | None:
    return RAY_ADDRESS.read(environ)


def cache_dir(environ: Mapping[str, str] | None = None) -> str | None:
    return CACHE_DIR.read(environ)


def cache_max_bytes(environ: Mapping[str, str] | None = None) -> int:
    return CACHE_MAX_BYTES.read(environ)


def data_roots(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    return DATA_ROOTS.read(environ)


def operator_dir(environ: Mapping[str, str] | None = None) -> str:
    return OPERATOR_DIR.read(environ)


def tf_logs(environ: Mapping[str, str] | None = None) -> bool:
    return TF_LOGS.read(environ)


def chromium(environ: Mapping[str, str] | None = None) -> str | None:
    return CHROMIUM.read(environ)
