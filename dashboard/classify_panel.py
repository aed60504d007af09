"""Upload a pet photo; every trained back-end gives P(cat), P(dog) and where it looked."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.common import export_buttons
from dashboard.run_models import cached_models
from gapdemo.charts.classification import classification_figure
from gapdemo.images import DISPLAY_NAMES, MAX_UPLOAD_BYTES, UPLOAD_EXTENSIONS, ImageError, load_image
from gapdemo.model.backends import BACKENDS
from gapdemo.runs import (
    RunFileError,
    choose_classifier_run,
    describe_training_data,
    list_runs,
    models_signature,
    read_config,
)
from gapdemo.validation import stored_run_config

UPLOAD_TYPES = UPLOAD_EXTENSIONS  # HEIC (iPhone) and AVIF too: gapdemo.images decides what it reads


def _runs_with_models(runs_dir: str) -> list:
    return [s for s in list_runs(runs_dir) if models_signature(s.run_dir)]


def _result_frame(result: dict) -> pd.DataFrame:
    return pd.DataFrame([{"backend": b, "p_cat": r["p_cat"], "p_dog": r["p_dog"], "label": r["label"],
                          "method": r["method"]} for b, r in result.items()]).set_index("backend")


# Per back-end: the photo with its heat map, the label and the method.
def _overlays(result: dict) -> None:
    for column, (backend, values) in zip(st.columns(len(result)), result.items(), strict=True):
        column.image(values["overlay"], caption=f"{BACKENDS[backend].label}: {values['label']} "
                     f"({max(values['p_cat'], values['p_dog']):.0%}) · {values['method']}")


# Which run's models classify the photo (by default gapdemo.runs.choose_classifier_run's); says which and why.
def _run_picker(runs_dir: str, candidates: list):
    choice = choose_classifier_run(runs_dir)
    run_ids = [summary.run_id for summary in candidates]
    default = run_ids.index(choice[0].run_id) if choice and choice[0].run_id in run_ids else 0
    summary = st.selectbox("Models of run", candidates, index=default, key="classify_run",
                           format_func=lambda s: f"{s.run_id} · {s.dataset} · {s.state} · {', '.join(s.backends)}")
    if choice and summary.run_id == choice[0].run_id:
        st.caption(choice[1])
    else:
        st.caption(f"Using run {summary.run_id}, trained on {describe_training_data(read_config(summary.run_dir))}.")
    return summary


# The classify tab.
def classify_panel(runs_dir: str) -> None:
    candidates = _runs_with_models(runs_dir)
    if not candidates:
        st.info("Train a run first: the newest finished run trained on real photos (else the newest run) "
                "classifies a photo.")
        return
    summary = _run_picker(runs_dir, candidates)
    try:  # its image size resizes the photo: checked as a new run's (a planted config.json could ask for any)
        config = stored_run_config(summary.run_dir)
    except RunFileError as error:
        st.error(f"Cannot classify with run {summary.run_id}: {error}")
        return
    if config.data.dataset == "synthetic":
        st.info("These models learned from synthetic cartoon pets, so their answers on real photos mean little. "
                "For real photos, train on Cats vs Dogs or on an image folder (sidebar → Data source).")
    # The cap is the app's own, not only .streamlit/config.toml's, which a server started elsewhere never reads.
    upload = st.file_uploader(f"A pet photo ({', '.join(DISPLAY_NAMES)})", type=UPLOAD_TYPES, key="photo",
                              max_upload_size=MAX_UPLOAD_BYTES // 2**20)
    if upload is None:
        return
    try:
        image = load_image(upload.getvalue())
    except ImageError as error:
        st.error(str(error))
        return
    from gapdemo.insight.maps import classify_image  # deferred: imports TensorFlow (~3 s), only once a photo is in

    try:
        models = cached_models(str(summary.run_dir), models_signature(summary.run_dir))
    except (ValueError, OSError) as error:  # a refused (code-carrying) or damaged model file: one sentence
        st.error(str(error))
        return
    result = classify_image(models, image, config.data.image_size)

    figure = classification_figure(result)
    st.plotly_chart(figure, key="classification_chart")
    export_buttons(figure, _result_frame(result), "classification", key="export_classification")
    st.caption("Heat maps: class activation map (GAP, GMP: Dense weights × feature maps) or Grad-CAM (others), "
               "for the predicted class.")
    _overlays(result)
