"""The sidebar: every setting of a run, checked before Start, plus Start and Stop."""

from __future__ import annotations

import streamlit as st

from gapdemo.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from gapdemo.validation import validate_run_config
from gapdemo.models import BACKENDS

DATASET_LABELS = {
    "synthetic": "Synthetic pets (offline, built in)",
    "cats_vs_dogs": "Cats vs Dogs (tensorflow_datasets)",
    "folder": "Image folder (PATH/<class>/*)",
}
BN_MOMENTUM_HELP = (
    "Batch norm keeps moving averages of each layer's statistics for inference. With Keras' default "
    "0.99 they need thousands of steps to catch up, so a short run scores ~50% on validation images "
    "even though it learned. 0.9 catches up within a few dozen steps."
)

STEPS_PER_EXECUTION_HELP = (
    "How many batches TensorFlow trains per call from Python. More can be faster for small images (fewer "
    "round trips), but the curves update and Stop acts only once per call."
)

RECALIBRATION_HELP = (
    "Averages batch norm's statistics over 4 training batches at the current weights before validating, "
    "so even a run of a few dozen steps is validated fairly. Costs 4 forward passes per epoch."
)


# Where the images come from; returns a DataConfig.
def data_settings(runs_seed: int) -> DataConfig:
    dataset = st.selectbox("Data source", list(DATASET_LABELS), format_func=DATASET_LABELS.get, key="dataset")
    data_dir = None
    if dataset == "cats_vs_dogs":
        data_dir = st.text_input("TFDS data dir", value="~/tensorflow_datasets", key="tfds_dir",
                                 help="Offline: put kagglecatsanddogs_5340.zip in <data dir>/downloads/manual/") or None
    elif dataset == "folder":
        data_dir = st.text_input("Image folder", value="", key="folder_dir", placeholder="/path/to/PetImages",
                                 help="Two sub-folders, one per class, e.g. PetImages/Cat and PetImages/Dog") or None
    train_size = st.number_input("Training images (0 = all)", 0, 100_000, 2000, step=250, key="train_size",
                                 help="Fewer images train faster; ~250 images/s at 100x100 on two cores.")
    image_size = st.slider("Image size (pixels)", 32, 256, 100, key="image_size", help="The tutorial uses 100x100.")
    return DataConfig(dataset=dataset, data_dir=data_dir, image_size=int(image_size),
                      train_size=int(train_size) or None, seed=runs_seed)


# Back-ends and their settings; returns a ModelConfig.
def model_settings(seed: int) -> ModelConfig:
    backends = st.multiselect("Back-ends", list(BACKENDS), default=["fc", "fc_dropout", "gap"],
                              format_func=lambda key: BACKENDS[key].label, key="backends",
                              help="\n\n".join(f"**{s.label}**: {s.description}" for s in BACKENDS.values()))
    dropout_rate = st.slider("Dropout rate (FC + dropout)", 0.0, 0.9, 0.5, 0.05, key="dropout_rate")
    bn_momentum = st.select_slider("Batch-norm momentum", [0.5, 0.8, 0.9, 0.95, 0.99], value=0.9,
                                   key="bn_momentum", help=BN_MOMENTUM_HELP)
    if bn_momentum >= 0.99:
        st.caption("0.99 is Keras' default: without recalibration, short runs look like chance on validation.")
    return ModelConfig(backends=tuple(backends), dropout_rate=float(dropout_rate),
                       bn_momentum=float(bn_momentum), seed=seed)


# Training loop settings; returns a TrainConfig.
def train_settings(seed: int, runs_dir: str) -> TrainConfig:
    epochs = st.slider("Epochs", 1, 50, 10, key="epochs")
    with st.expander("More settings"):
        batch_size = st.select_slider("Batch size", [8, 16, 32, 64, 128, 256], value=64, key="batch_size")
        learning_rate = st.select_slider("Learning rate (Adam)", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], value=1e-3,
                                         format_func=lambda value: f"{value:g}", key="learning_rate")
        steps_per_execution = st.select_slider("Batches per TensorFlow call", [1, 2, 4, 8, 16], value=1,
                                               key="steps_per_execution", help=STEPS_PER_EXECUTION_HELP)
        recalibrate_bn = st.checkbox("Recalibrate batch-norm statistics before each validation", value=True,
                                     key="recalibrate_bn", help=RECALIBRATION_HELP)
        st.select_slider("PNG export scale", [1, 2, 3, 4], value=2, key="png_scale")
    return TrainConfig(epochs=int(epochs), batch_size=int(batch_size), learning_rate=float(learning_rate),
                       seed=seed, runs_dir=runs_dir, recalibrate_bn=recalibrate_bn,
                       steps_per_execution=int(steps_per_execution))


# The whole sidebar; returns the RunConfig and its problems (empty when it may start).
def settings_sidebar(runs_dir: str) -> tuple[RunConfig, list[str]]:
    with st.sidebar:
        st.header("Run settings")
        seed = int(st.number_input("Seed", 0, 1_000_000, 0, key="seed",
                                   help="Same seed: same data, same initial weights, same batch order."))
        config = RunConfig(data=data_settings(seed), model=model_settings(seed), train=train_settings(seed, runs_dir))
        problems = validate_run_config(config)
        for problem in problems:
            st.error(problem)
    return config, problems


# Start and Stop; returns nothing, acts on the job manager.
def run_controls(manager, config: RunConfig, problems: list[str]) -> None:
    with st.sidebar:
        start_column, stop_column = st.columns(2)
        waiting = manager.queued()
        active = manager.current() or (waiting[0] if waiting else None)
        if start_column.button("▶ Start", type="primary", disabled=bool(problems), key="start", width="stretch"):
            try:
                job = manager.submit(config)
            except ValueError as error:
                st.error(str(error))
            else:
                ahead = len(manager.queued()) - 1 + (manager.current() is not None)
                st.session_state["notice"] = (f"Run {job.run_id} queued behind {ahead} other run(s)." if ahead
                                              else f"Run {job.run_id} started.")
                st.rerun()  # redraw the whole page: Stop becomes active, the training panel starts polling
        if stop_column.button("■ Stop", disabled=active is None, key="stop", width="stretch"):
            active.stop()
            st.session_state["notice"] = "Stopping: the run ends after the current batch; finished epochs are kept."
            st.rerun()
        if "notice" in st.session_state:
            st.toast(st.session_state.pop("notice"))
