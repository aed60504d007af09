"""One cache of a run's models for the Classify and Mistakes tabs: a model never sits in memory twice."""

import ast
import pathlib

import streamlit as st

from dashboard import classify_panel, evaluation_panel, run_models

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_both_tabs_load_models_through_one_cache(monkeypatch):
    loads = []
    monkeypatch.setattr(run_models, "load_models", lambda run_dir: loads.append(run_dir) or {"gap": object()})
    st.cache_resource.clear()
    assert classify_panel.cached_models is evaluation_panel.cached_models is run_models.cached_models
    signature = (("gap.keras", 1.0),)
    for_classify = classify_panel.cached_models("runs/r1", signature)
    for_mistakes = evaluation_panel.cached_models("runs/r1", signature)
    assert for_classify is for_mistakes and loads == ["runs/r1"]  # the same models, loaded once
    assert evaluation_panel.cached_models("runs/r1", (("gap.keras", 2.0),)) is not for_classify  # a new epoch
    st.cache_resource.clear()


def test_only_one_dashboard_module_loads_models():
    callers = sorted(path.name for path in (ROOT / "dashboard").glob("*.py")
                     for node in ast.walk(ast.parse(path.read_text()))
                     if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "load_models")
    assert callers == ["run_models.py"]
