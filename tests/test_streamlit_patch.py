"""The page's one patch of Streamlit's private code (dashboard/common.py, keep_keras_session) still takes hold.

Streamlit has no public switch for the Keras reset it runs after every script run, so the page replaces
streamlit.runtime.scriptrunner.script_runner._clean_problem_modules. requirements.txt and pyproject.toml
cap streamlit below 2; these tests fail on an upgrade that drops or stops calling the name.
"""

import inspect
import re
import sys
from pathlib import Path

from streamlit.runtime.scriptrunner import script_runner

from dashboard.common import keep_keras_session

REPO = Path(__file__).resolve().parents[1]
PATCHED = "_clean_problem_modules"


def test_the_patched_function_is_still_there_and_still_called_by_name():
    assert callable(getattr(script_runner, PATCHED, None)), f"streamlit no longer has script_runner.{PATCHED}"
    # Looked up in the module at call time, after each script run: replacing the module's name takes effect.
    assert re.search(rf"\b_log_if_error\({PATCHED}\)", inspect.getsource(script_runner))


def test_the_page_replaces_it_with_one_that_leaves_keras_alone(monkeypatch):
    monkeypatch.setattr(script_runner, PATCHED, getattr(script_runner, PATCHED))
    keep_keras_session()
    replacement = getattr(script_runner, PATCHED)
    assert replacement.__module__ == "dashboard.common"
    pyplot = sys.modules.get("matplotlib.pyplot")
    replacement()  # closes matplotlib's figures, as Streamlit's does, and never touches keras
    assert pyplot is None or not pyplot.get_fignums()


def test_streamlit_is_capped_below_the_next_major_version():
    requirement = next(line for line in (REPO / "requirements.txt").read_text().splitlines()
                       if line.startswith("streamlit"))
    dependencies = re.findall(r'^\s*"(streamlit[^"]*)"', (REPO / "pyproject.toml").read_text(), flags=re.M)
    assert requirement == "streamlit>=1.67,<2" and dependencies == ["streamlit>=1.67,<2"]
