"""Upload a pet photo; every trained back-end gives P(cat), P(dog) and where it looked."""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from dashboard.common import export_buttons
from gapdemo.images import DISPLAY_NAMES, UPLOAD_EXTENSIONS, ImageError, load_image
from gapdemo.models import BACKENDS

UPLOAD_TYPES = UPLOAD_EXTENSIONS  # HEIC (iPhone) and AVIF too: gapdemo.images decides what it reads


def _model_signature(run_dir) -> tuple:
    """Changes whenever a running job saves a new epoch, so its newest models get loaded."""
    models_dir = os.path.join(run_dir, "models")
    names = sorted(name for name in os.listdir(models_dir) if name.endswith(".keras") and not name.startswith("."))
    return tuple((name, os.path.getmtime(os.path.join(models_dir, name))) for name in names)


@st.cache_resource(max_entries=3, show_spinner="Loading the run's models…")
def _cached_models(run_dir: str, signature: tuple) -> dict:
    from gapdemo.runs import load_models

    return load_models(run_dir)


def _runs_with_models(runs_dir: str) -> list:
    from gapdemo.runs import list_runs

    return [s for s in list_runs(runs_dir) if os.path.isdir(s.run_dir / "models") and _model_signature(s.run_dir)]


def _result_frame(result: dict) -> pd.DataFrame:
    return pd.DataFrame([{"backend": b, "p_cat": r["p_cat"], "p_dog": r["p_dog"], "label": r["label"],
                          "method": r["method"]} for b, r in result.items()]).set_index("backend")


# Per back-end: the photo with its heat map, the label and the method.
def _overlays(result: dict) -> None:
    for column, (backend, values) in zip(st.columns(len(result)), result.items()):
        column.image(values["overlay"], caption=f"{BACKENDS[backend].label}: {values['label']} "
                     f"({max(values['p_cat'], values['p_dog']):.0%}) · {values['method']}")


# The classify tab.
def classify_panel(runs_dir: str) -> None:
    from gapdemo.runs import read_json

    candidates = _runs_with_models(runs_dir)
    if not candidates:
        st.info("Train a run first: the models of the newest run are used to classify a photo.")
        return
    summary = st.selectbox("Models of run", candidates, key="classify_run",
                           format_func=lambda s: f"{s.run_id} · {s.state} · {', '.join(s.backends)}")
    config = read_json(summary.run_dir / "config.json")
    if config.get("data", {}).get("dataset") == "synthetic":
        st.info("These models learned from synthetic cartoon pets, so their answers on real photos mean little. "
                "For real photos, train on Cats vs Dogs or on an image folder (sidebar → Data source).")
    upload = st.file_uploader(f"A pet photo ({', '.join(DISPLAY_NAMES)})", type=UPLOAD_TYPES, key="photo")
    if upload is None:
        return
    try:
        image = load_image(upload.getvalue())
    except ImageError as error:
        st.error(str(error))
        return
    from gapdemo.insight import classify_image

    models = _cached_models(str(summary.run_dir), _model_signature(summary.run_dir))
    result = classify_image(models, image, int(config["data"]["image_size"]))
    from gapdemo.charts import classification_figure

    figure = classification_figure(result)
    st.plotly_chart(figure, key="classification_chart")
    export_buttons(figure, _result_frame(result), "classification", key="export_classification")
    st.caption("Heat maps: class activation map (GAP, GMP: Dense weights × feature maps) or Grad-CAM (others), "
               "for the predicted class.")
    _overlays(result)
