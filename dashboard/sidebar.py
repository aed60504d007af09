"""The sidebar: every setting of a run, checked before Start, plus Start and Stop."""

from __future__ import annotations

import streamlit as st

from dashboard.cache_widget import cache_widget
from dashboard.common import DEFAULT_PNG_SCALE, PNG_SCALES
from dashboard.visitor import served_rules_apply, visitor_id, visitor_is_operator
from gapdemo.budget.duration import estimate_training_seconds, format_minutes, max_run_minutes
from gapdemo.config import (
    BATCH_SIZE_CHOICES,
    LEARNING_RATE_CHOICES,
    MAX_DROPOUT_RATE,
    MAX_EPOCHS,
    MAX_IMAGE_SIZE,
    MAX_SEED,
    MAX_SYNTHETIC_TRAIN_SIZE,
    MAX_TRAIN_SIZE,
    MIN_IMAGE_SIZE,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from gapdemo.model.backends import BACKENDS
from gapdemo.model.precision import PRECISION_LABELS, PRECISIONS, bfloat16_support
from gapdemo.validation import validate_run_config

# Every default comes from the config dataclasses; the choices below are the sidebar's own steps,
# and a default outside them is added (with_default), so changing a default never breaks the page.
DATA_DEFAULTS, MODEL_DEFAULTS, TRAIN_DEFAULTS = DataConfig(), ModelConfig(), TrainConfig()
BN_MOMENTUM_CHOICES = (0.5, 0.8, 0.9, 0.95, 0.99)
STEPS_PER_EXECUTION_CHOICES = (1, 2, 4, 8, 16)

DATASET_LABELS = {
    "synthetic": "Synthetic pets (offline, built in)",
    "cats_vs_dogs": "Cats vs Dogs (tensorflow_datasets)",
    "folder": "Image folder (PATH/<class>/*)",
}
BN_MOMENTUM_HELP = (
    "Batch norm keeps moving averages of each layer's statistics for inference. With Keras' default "
    "0.99 they need thousands of steps to catch up, so a short run scores ~50% on validation images "
    f"even though it learned. {MODEL_DEFAULTS.bn_momentum:g} catches up within a few dozen steps."
)

STEPS_PER_EXECUTION_HELP = (
    "How many batches TensorFlow trains per call from Python. More can be faster for small images (fewer "
    "round trips), but the curves update and Stop acts only once per call."
)

RECALIBRATION_HELP = (
    f"Averages batch norm's statistics over {TRAIN_DEFAULTS.recalibration_batches} training batches at the "
    "current weights before validating, so even a run of a few dozen steps is validated fairly. Costs "
    f"{TRAIN_DEFAULTS.recalibration_batches} forward passes per epoch."
)

PRECISION_HELP = (
    "Mixed bfloat16 computes the layers in bfloat16 and keeps the weights, losses and probabilities in float32: "
    "faster where the processor has bfloat16 instructions (1.16x as many images per second at the defaults, "
    "1.11x sooner to the end of a run, measured on two cores), at bfloat16's 3 significant digits inside the "
    "layers. float32 stays the default: the whole run gains less than the 1.15x a new default needs. Saved "
    "models compute in float32 either way."
)

TRAIN_SIZE_HELP = (
    f"Fewer images train faster. The synthetic pets are drawn to match, up to {MAX_SYNTHETIC_TRAIN_SIZE:,} "
    f"training images (0 = its default set of {DATA_DEFAULTS.synthetic_size:,}, split 80/10/10)."
)


def with_default(choices: tuple, default) -> list:
    """choices plus default, in order: a select_slider fails when its value is not an option."""
    return sorted({*choices, default})


# Where the images come from; returns a DataConfig.
def data_settings(runs_seed: int) -> DataConfig:
    dataset = st.selectbox("Data source", list(DATASET_LABELS), index=list(DATASET_LABELS).index(DATA_DEFAULTS.dataset),
                           format_func=DATASET_LABELS.get, key="dataset")
    data_dir = None
    if dataset == "cats_vs_dogs":
        data_dir = st.text_input("TFDS data dir", value="~/tensorflow_datasets", key="tfds_dir",
                                 help="Offline: put kagglecatsanddogs_5340.zip in <data dir>/downloads/manual/. A served "
                                      "page never downloads it: it reads a copy the operator prepared in a folder "
                                      "listed in GAPDEMO_DATA_ROOTS.") or None
    elif dataset == "folder":
        data_dir = st.text_input("Image folder", value="", key="folder_dir", placeholder="/path/to/PetImages",
                                 help="Two sub-folders, one per class, e.g. PetImages/Cat and PetImages/Dog. A served "
                                      "page reads only folders under those the operator lists in GAPDEMO_DATA_ROOTS.") or None
    train_size = st.number_input("Training images (0 = all)", 0, MAX_TRAIN_SIZE, DATA_DEFAULTS.train_size or 0,
                                 step=250, key="train_size", help=TRAIN_SIZE_HELP)
    image_size = st.slider("Image size (pixels)", MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, DATA_DEFAULTS.image_size,
                           key="image_size", help="The tutorial uses 100x100.")
    return DataConfig(dataset=dataset, data_dir=data_dir, image_size=int(image_size),
                      train_size=int(train_size) or None, seed=runs_seed)


# Back-ends and their settings; returns a ModelConfig.
def model_settings(seed: int) -> ModelConfig:
    backends = st.multiselect("Back-ends", list(BACKENDS), default=list(MODEL_DEFAULTS.backends),
                              format_func=lambda key: BACKENDS[key].label, key="backends",
                              help="\n\n".join(f"**{s.label}**: {s.description}" for s in BACKENDS.values()))
    dropout_rate = st.slider("Dropout rate (FC + dropout)", 0.0, MAX_DROPOUT_RATE, MODEL_DEFAULTS.dropout_rate, 0.05,
                             key="dropout_rate")
    bn_momentum = st.select_slider("Batch-norm momentum", with_default(BN_MOMENTUM_CHOICES, MODEL_DEFAULTS.bn_momentum),
                                   value=MODEL_DEFAULTS.bn_momentum, key="bn_momentum", help=BN_MOMENTUM_HELP)
    if bn_momentum >= 0.99:
        st.caption("0.99 is Keras' default: without recalibration, short runs look like chance on validation.")
    return ModelConfig(backends=tuple(backends), dropout_rate=float(dropout_rate),
                       bn_momentum=float(bn_momentum), seed=seed)


# Training loop settings; returns a TrainConfig.
def train_settings(seed: int, runs_dir: str) -> TrainConfig:
    epochs = st.slider("Epochs", 1, MAX_EPOCHS, TRAIN_DEFAULTS.epochs, key="epochs")
    with st.expander("More settings"):
        batch_size = st.select_slider("Batch size", with_default(BATCH_SIZE_CHOICES, TRAIN_DEFAULTS.batch_size),
                                      value=TRAIN_DEFAULTS.batch_size, key="batch_size")
        learning_rate = st.select_slider(
            "Learning rate (Adam)", with_default(LEARNING_RATE_CHOICES, TRAIN_DEFAULTS.learning_rate),
            value=TRAIN_DEFAULTS.learning_rate, format_func=lambda value: f"{value:g}", key="learning_rate")
        steps_per_execution = st.select_slider(
            "Batches per TensorFlow call", with_default(STEPS_PER_EXECUTION_CHOICES, TRAIN_DEFAULTS.steps_per_execution),
            value=TRAIN_DEFAULTS.steps_per_execution, key="steps_per_execution", help=STEPS_PER_EXECUTION_HELP)
        recalibrate_bn = st.checkbox("Recalibrate batch-norm statistics before each validation",
                                     value=TRAIN_DEFAULTS.recalibrate_bn, key="recalibrate_bn", help=RECALIBRATION_HELP)
        precision = precision_setting()
        st.select_slider("PNG export scale", PNG_SCALES, value=DEFAULT_PNG_SCALE, key="png_scale")
    return TrainConfig(epochs=int(epochs), batch_size=int(batch_size), learning_rate=float(learning_rate),
                       seed=seed, runs_dir=runs_dir, recalibrate_bn=recalibrate_bn,
                       steps_per_execution=int(steps_per_execution), precision=precision)


# float32 or mixed bfloat16; offered only where the processor computes in bfloat16, and says why not.
def precision_setting() -> str:
    supported, sentence = bfloat16_support()
    choices = PRECISIONS if supported else (TRAIN_DEFAULTS.precision,)
    precision = st.radio("Arithmetic precision", choices, index=choices.index(TRAIN_DEFAULTS.precision),
                         format_func=PRECISION_LABELS.get, horizontal=True, key="precision",
                         help=PRECISION_HELP, disabled=not supported)
    if not supported:
        st.caption(sentence)
    return precision


def training_time_note(config: RunConfig) -> str:
    """'Training time: about 5 minutes on this machine', with the bound a served page holds it to."""
    note = f"Training time: {format_minutes(estimate_training_seconds(config))} on this machine"
    return note + (f" (a run may take {max_run_minutes():g} here)." if served_rules_apply() else ".")


# The whole sidebar; returns the RunConfig and its problems (empty when it may start).
def settings_sidebar(runs_dir: str) -> tuple[RunConfig, list[str]]:
    with st.sidebar:
        st.header("Run settings")
        seed = int(st.number_input("Seed", 0, MAX_SEED, DATA_DEFAULTS.seed, key="seed",
                                   help="Same seed: same data, same initial weights, same batch order."))
        config = RunConfig(data=data_settings(seed), model=model_settings(seed), train=train_settings(seed, runs_dir))
        problems = validate_run_config(config, served=served_rules_apply())  # served: paths under the data roots
        for problem in problems:
            st.error(problem)
        if not problems:
            st.caption(training_time_note(config))
        cache_widget(config.data, problems)
    return config, problems


# Start and Stop; returns nothing, acts on the job manager.
def run_controls(manager, config: RunConfig, problems: list[str]) -> None:
    with st.sidebar:
        if manager.engine_note:
            st.caption(manager.engine_note)
        if visitor_is_operator():
            st.caption("Operator: you may stop any job and clear the cache, and a class's bounds do not hold you.")
        start_column, stop_column = st.columns(2)
        # Served to others, a visitor stops only their own runs; a local page has one user.
        active = manager.job_to_stop(visitor_id(), any_owner=not served_rules_apply())
        if start_column.button("▶ Start", type="primary", disabled=bool(problems), key="start", width="stretch"):
            try:
                job = manager.submit(config, owner=visitor_id(), served=served_rules_apply())
            except ValueError as error:
                st.error(str(error))
            else:
                ahead = manager.runs_ahead(job)
                st.session_state["notice"] = (f"Run {job.run_id} queued behind {ahead} other run(s)." if ahead
                                              else f"Run {job.run_id} started.")
                st.rerun()  # redraw the whole page: Stop becomes active, the training panel starts polling
        if stop_column.button("■ Stop", disabled=active is None, key="stop", width="stretch"):
            active.stop()
            st.session_state["notice"] = "Stopping: the run ends after the current batch; finished epochs are kept."
            st.rerun()
        if "notice" in st.session_state:
            st.toast(st.session_state.pop("notice"))
