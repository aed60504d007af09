"""One trained run's claims measures, from its folder: what a claims job's seed and a pooled run share.

A claims job scores each seed's ordinary run here, and pooling scores every finished run of the runs folder
here too, so a claims job's own seeds are runs like any other. The result is one plain dict per run:

    parameters     {backend: {"backend_params", "total_params"}}, exact counts at the run's image size
    step_seconds   {backend: median seconds of one Adam step of its own model} (timed when measured)
    overfitting    measures.overfitting_measures of metrics.csv
    localization   {"available", "reason", "backends", "baseline"}: pointing game and energy (boxes needed)
    shift_accuracy {backend: accuracy at each of the shifts}; "shifts" names them
    consistency    {backend: share unchanged at each of gapdemo.insight.evaluation.CONSISTENCY_SHIFTS}

TensorFlow is imported only inside these functions (through load_models, load_data and the measures).
"""

from __future__ import annotations

from pathlib import Path

from gapdemo import runs
from gapdemo.claims import measures
from gapdemo.config import RunConfig
from gapdemo.data.sources import load_data
from gapdemo.insight import evaluation


def evaluation_slice(data):
    """(images, labels, boxes or None) of the run's test split, capped at MAX_EVALUATION_IMAGES for speed."""
    count = measures.MAX_EVALUATION_IMAGES
    boxes = None if data.test_boxes is None else data.test_boxes[:count]
    return data.test_images[:count], data.test_labels[:count], boxes


def no_boxes_reason(dataset: str) -> str:
    return (f"the {dataset} data set has no object boxes; only the synthetic pets know where each "
            "object is, so choose the synthetic source to score the maps")


def score_models(run_dir: Path, models: dict, data, config: RunConfig, shifts: list[int]) -> dict:
    """Overfitting (from metrics.csv), localisation, shift accuracy and shift consistency of a run's models.

    Args:
        models: {backend: keras.Model} of the run (gapdemo.runs.load_models).
        data: the run's LoadedData, drawn again as the run drew it.
        shifts: pixels, as measures.usable_shifts gives them for the image size.
    """
    images, labels, boxes = evaluation_slice(data)
    if boxes is None:
        localization = {"available": False, "reason": no_boxes_reason(config.data.dataset)}
    else:
        localization = {"available": True, "reason": None,
                        **measures.localization_measures(models, images, boxes, config.data.image_size)}
    shift_curves = {backend: measures.shift_accuracy(evaluation.model_predictor(model, measures.EVALUATION_BATCH),
                                                     images, labels, shifts)
                    for backend, model in models.items()}
    return {"overfitting": measures.overfitting_measures(runs.read_epoch_metrics(run_dir)),
            "localization": localization, "shifts": list(shifts), "shift_accuracy": shift_curves,
            "consistency": measures.consistency_measures(models, images)}


def time_steps(config: RunConfig, seed: int, before_each=None) -> dict[str, float]:
    """{backend: median seconds of one training step of its own model}, at the run's settings.

    before_each: optional callable(backend) called before each back-end is timed (a claims job's progress).
    """
    step_seconds = {}
    for backend in config.model.backends:
        if before_each is not None:
            before_each(backend)
        step_seconds[backend] = measures.measure_step_seconds(
            backend, config.data.image_size, config.train.batch_size, seed,
            config.model.dropout_rate, config.model.bn_momentum, config.train.learning_rate)
    return step_seconds


def parameter_counts(config: RunConfig) -> dict[str, dict[str, int]]:
    """{backend: {"backend_params", "total_params"}} at the run's image size and dropout rate."""
    from gapdemo.model.backends import parameter_table  # deferred: builds Keras models

    table = parameter_table(config.model.backends, config.data.image_size, config.model.dropout_rate)
    return {backend: {"backend_params": int(counts["backend_params"]), "total_params": int(counts["total_params"])}
            for backend, counts in table.items()}


def score_run(run_dir: Path, config: RunConfig, *, time_training: bool = True) -> dict:
    """Every per-run measure of one finished run (see the module docstring), its data drawn again here.

    Args:
        config: the run's checked settings (gapdemo.validation.stored_data_config).
        time_training: also time one training step per back-end (step_seconds; {} when False).
    """
    run_dir = Path(run_dir)
    shifts = measures.usable_shifts(config.data.image_size)
    data = load_data(config.data, config.train.batch_size)
    scored = score_models(run_dir, runs.load_models(run_dir), data, config, shifts)
    step_seconds = time_steps(config, config.model.seed) if time_training else {}
    return {"parameters": parameter_counts(config), "step_seconds": step_seconds, **scored}
