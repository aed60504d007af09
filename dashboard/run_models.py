"""A run's saved models, held once in the server's memory for every tab that uses them (Classify, Mistakes)."""

from __future__ import annotations

import streamlit as st

from gapdemo.runs import load_models


# One cache for the tabs, so a run's models are never loaded twice; signature (gapdemo.runs.models_signature)
# changes when a running job saves a new epoch, so its newest models are loaded then.
@st.cache_resource(max_entries=3, show_spinner="Loading the run's models…")
def cached_models(run_dir: str, signature: tuple) -> dict:
    return load_models(run_dir)
