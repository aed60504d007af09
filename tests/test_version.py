"""One version: pyproject.toml's, read from the installed package's metadata or, from a checkout, the file."""

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import gapdemo

ROOT = Path(__file__).resolve().parent.parent


def declared_version() -> str:
    return re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), flags=re.M).group(1)


def test_a_checkout_reports_the_version_pyproject_declares(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert gapdemo.read_version() == declared_version()


def test_an_installed_package_reports_its_metadata(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "7.8.9" if name == "gapdemo" else None)
    assert gapdemo.read_version() == "7.8.9"


def test_the_cli_prints_the_one_version():
    completed = subprocess.run([sys.executable, "-m", "gapdemo", "--version"], cwd=ROOT, capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"gapdemo {gapdemo.__version__}"
    assert gapdemo.__version__ == declared_version()
