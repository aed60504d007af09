"""Figure builders: one colour per back-end, train solid / validation dashed, probes grouped by class."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gapdemo.charts as charts_package
from gapdemo.charts.classification import classification_figure
from gapdemo.charts.common import backend_color, backend_label
from gapdemo.charts.curves import curves_figure, overlay_runs_figure
from gapdemo.charts.parameters import backend_parameter_ratio, parameter_dataframe, parameter_figure
from gapdemo.charts.probes import cam_grid_figure, class_means_figure, feature_averages_figure
from gapdemo.charts.results import results_dataframe

BACKENDS = ("fc", "gap", "gmp")
EPOCHS = 3
BATCHES_PER_EPOCH = 400


def make_epoch_metrics(backends=BACKENDS, epochs=EPOCHS, seed=0) -> pd.DataFrame:
    random = np.random.default_rng(seed)
    rows = []
    for backend in backends:
        for epoch in range(1, epochs + 1):
            accuracy = 0.5 + 0.1 * epoch + random.uniform(0, 0.05)
            rows.append({"backend": backend, "epoch": epoch, "loss": 1.0 / epoch, "accuracy": accuracy,
                         "val_loss": 1.2 / epoch, "val_accuracy": accuracy - 0.05 * epoch})
    return pd.DataFrame(rows)


def make_batch_metrics(backends=BACKENDS, epochs=EPOCHS, batches=BATCHES_PER_EPOCH) -> pd.DataFrame:
    rows = []
    for backend in backends:
        for epoch in range(1, epochs + 1):
            for batch in range(1, batches + 1):
                rows.append({"backend": backend, "epoch": epoch, "batch": batch,
                             "step": epoch - 1 + batch / batches, "loss": 1.0 / (epoch + batch / batches),
                             "accuracy": 0.5 + 0.1 * (epoch - 1 + batch / batches)})
    return pd.DataFrame(rows)


def make_probes(labels=(1, 0, 1, 0, 0), channels=8, cam_size=4, with_weights=True, seed=0) -> dict:
    random = np.random.default_rng(seed)
    labels = np.array(labels)
    averages = random.uniform(0, 1, (len(labels), channels)) + labels[:, None]  # dogs score higher
    return {
        "labels": labels,
        "feature_averages": averages,
        "dense_weights": random.normal(size=channels) if with_weights else None,
        "cams": random.normal(size=(len(labels), cam_size, cam_size)) if with_weights else None,
        "images": random.integers(0, 255, (len(labels), 32, 32, 3), dtype=np.uint8),
    }


def traces_by_split(figure):
    return {(trace.meta["backend"], trace.meta["split"]): trace for trace in figure.data}


def test_every_registered_backend_is_drawn_in_its_registry_colour_and_label():
    from gapdemo.model.backends import BACKENDS as REGISTRY

    for backend, spec in REGISTRY.items():
        assert backend_color(backend) == spec.color
        assert backend_label(backend) == spec.label


def test_charting_and_exporting_do_not_import_tensorflow():
    modules = [f"gapdemo.charts.{path.stem}" for path in Path(charts_package.__file__).parent.glob("[!_]*.py")]
    code = f"import sys, {', '.join(modules)}, gapdemo.export.bundle; print(sorted({{'tensorflow', 'keras'}} & set(sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                               cwd=Path(__file__).resolve().parents[1])
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


@pytest.mark.parametrize("describe", [backend_color, backend_label])
def test_unknown_backend_raises_value_error_naming_the_valid_ones(describe):
    with pytest.raises(ValueError, match="valid back-ends: fc"):
        describe("resnet")


@pytest.mark.parametrize("metric", ["accuracy", "loss"])
def test_curves_have_one_solid_train_and_one_dashed_validation_trace_per_backend(metric):
    figure = curves_figure(make_epoch_metrics(), make_batch_metrics(), metric=metric, max_points=100)
    traces = traces_by_split(figure)
    assert len(figure.data) == 3 * len(BACKENDS)  # raw (faint), smoothed, validation
    for backend in BACKENDS:
        train, validation = traces[(backend, "train")], traces[(backend, "validation")]
        assert train.line.color == validation.line.color == backend_color(backend)
        assert train.line.dash == "solid" and validation.line.dash == "dash"
        assert "markers" in validation.mode
        assert train.name == backend_label(backend) and train.showlegend is not False
        assert validation.showlegend is False and validation.legendgroup == train.legendgroup
        assert list(validation.x) == [1.0, 2.0, 3.0]
        assert 2 <= len(train.x) <= 100  # downsampled from 1200 batch points
        assert train.x[0] == pytest.approx(1 / BATCHES_PER_EPOCH) and train.x[-1] == pytest.approx(EPOCHS)
        assert np.all(np.diff(train.x) > 0)
    assert figure.layout.xaxis.title.text == "epoch"


def test_raw_batch_values_are_faint_behind_the_smoothed_line():
    batches = make_batch_metrics(backends=("fc", "gap"), epochs=1, batches=50)
    batches["loss"] = np.tile([1.0, 0.0], 50)  # a noisy series: smoothing pulls it towards its mean
    figure = curves_figure(make_epoch_metrics(("fc", "gap"), epochs=1), batches, metric="loss", smoothing=0.6)
    splits = [trace.meta["split"] for trace in figure.data]
    assert splits.index("train") > max(i for i, split in enumerate(splits) if split == "train_raw")
    raw, smoothed = (traces_by_split(figure)[("gap", split)] for split in ("train_raw", "train"))
    assert raw.opacity < 0.5 and raw.showlegend is False and raw.line.color == smoothed.line.color
    assert list(raw.y) == [1.0, 0.0] * 25
    assert np.ptp(smoothed.y[10:]) < 0.5 < np.ptp(raw.y)
    assert "smoothed 0.6" in figure.layout.title.text


def test_smoothing_zero_draws_the_raw_values_once():
    batches = make_batch_metrics(backends=("fc",), epochs=2, batches=20)
    figure = curves_figure(make_epoch_metrics(("fc",), epochs=2), batches, smoothing=0.0)
    assert sorted(trace.meta["split"] for trace in figure.data) == ["train", "validation"]
    np.testing.assert_array_equal(traces_by_split(figure)[("fc", "train")].y, batches["accuracy"].to_numpy())


def test_curves_take_series_arrays_as_well_as_rows():
    from gapdemo.training.curves import batch_series

    batches = make_batch_metrics(backends=("fc", "gap"), epochs=2, batches=30)
    epochs = make_epoch_metrics(("fc", "gap"), epochs=2)
    from_rows = curves_figure(epochs, batches, metric="loss")
    from_series = curves_figure(epochs, batch_series(batches), metric="loss")
    assert from_rows.to_json() == from_series.to_json()


def test_curves_without_batches_use_epoch_points():
    figure = curves_figure(make_epoch_metrics(backends=("fc", "gap")), metric="loss")
    train = traces_by_split(figure)[("gap", "train")]
    assert list(train.x) == [1.0, 2.0, 3.0]
    assert list(train.y) == pytest.approx([1.0, 0.5, 1 / 3])


def test_curves_keep_short_batch_series_whole():
    batches = make_batch_metrics(backends=("fc",), epochs=1, batches=10)
    figure = curves_figure(make_epoch_metrics(backends=("fc",), epochs=1), batches, max_points=600)
    assert len(traces_by_split(figure)[("fc", "train")].x) == 10


def test_the_first_batch_alone_is_drawn_and_narrow_accuracy_ticks_stay_distinct():
    first_batch = make_batch_metrics(epochs=1).groupby("backend").head(1)
    figure = curves_figure(make_epoch_metrics().iloc[:0], first_batch, metric="accuracy")
    for backend in BACKENDS:
        train = traces_by_split(figure)[(backend, "train")]
        assert len(train.x) == 1 and "markers" in train.mode
    assert figure.layout.yaxis.tickformat == ".1%"
    assert traces_by_split(curves_figure(make_epoch_metrics(), make_batch_metrics()))[("gap", "train")].mode == "lines"


def test_curves_reject_bad_arguments():
    with pytest.raises(ValueError, match="metric"):
        curves_figure(make_epoch_metrics(), metric="f1")
    with pytest.raises(ValueError, match="val_accuracy"):
        curves_figure(make_epoch_metrics().drop(columns="val_accuracy"))
    with pytest.raises(ValueError, match="max_points"):
        curves_figure(make_epoch_metrics(), max_points=1)
    with pytest.raises(ValueError, match="smoothing"):
        curves_figure(make_epoch_metrics(), smoothing=1.0)


def test_overlay_runs_colours_by_backend_and_dashes_by_run():
    runs = {"run A": make_epoch_metrics(("fc", "gap")), "run B": make_epoch_metrics(("fc", "gap"), seed=1)}
    figure = overlay_runs_figure(runs)
    assert len(figure.data) == 4
    dashes = {trace.meta["run"]: trace.line.dash for trace in figure.data}
    assert dashes["run A"] != dashes["run B"]
    for trace in figure.data:
        assert trace.line.color == backend_color(trace.meta["backend"])
    with pytest.raises(ValueError, match="metric"):
        overlay_runs_figure(runs, metric="epoch")


def test_feature_average_rows_group_cats_before_dogs():
    probes = make_probes(labels=(1, 0, 1, 0, 0))
    heatmap = feature_averages_figure(probes, "gap").data[0]
    assert list(heatmap.y) == ["cat 1", "cat 2", "cat 3", "dog 1", "dog 2"]
    expected = probes["feature_averages"][[1, 3, 4, 0, 2]]  # cats in probe order, then dogs
    np.testing.assert_allclose(np.array(heatmap.z), expected)
    assert np.array(heatmap.z).shape == (5, 8)


def test_feature_averages_reject_mismatched_shapes():
    probes = make_probes()
    probes["feature_averages"] = probes["feature_averages"][:3]
    with pytest.raises(ValueError, match="feature_averages"):
        feature_averages_figure(probes, "gap")


@pytest.mark.parametrize("with_weights", [True, False])
def test_class_means_are_per_class_means_plus_optional_dense_weights(with_weights):
    probes = make_probes(with_weights=with_weights)
    figure = class_means_figure(probes, backend="gap")
    names = [trace.name for trace in figure.data]
    assert names[:2] == ["cat mean", "dog mean"]
    assert len(figure.data) == (3 if with_weights else 2)
    labels = probes["labels"]
    np.testing.assert_allclose(figure.data[0].y, probes["feature_averages"][labels == 0].mean(axis=0))
    np.testing.assert_allclose(figure.data[1].y, probes["feature_averages"][labels == 1].mean(axis=0))
    if with_weights:
        np.testing.assert_allclose(figure.data[2].y, probes["dense_weights"])


def test_cam_grid_has_one_heatmap_per_probe_titled_by_class_and_centred_on_zero():
    probes = make_probes(labels=(1, 0, 1, 0, 0))
    figure = cam_grid_figure(probes, columns=3)
    assert len(figure.data) == 5
    titles = [annotation.text for annotation in figure.layout.annotations]
    assert [title.split()[0] for title in titles] == ["dog", "cat", "dog", "cat", "cat"]
    assert figure.layout.coloraxis.cmin == pytest.approx(-figure.layout.coloraxis.cmax)
    assert all(trace.coloraxis == "coloraxis" for trace in figure.data)  # one shared diverging scale


def test_cam_grid_without_cams_says_so():
    figure = cam_grid_figure(make_probes(with_weights=False))
    assert len(figure.data) == 0
    assert "No class activation maps" in figure.layout.annotations[0].text


PARAMETER_TABLE = {
    "fc": {"head_params": 28_896, "backend_params": 651_401, "total_params": 680_297, "trainable_params": 679_000},
    "gap": {"head_params": 28_896, "backend_params": 65, "total_params": 28_961, "trainable_params": 28_700},
}


def test_parameter_dataframe_and_ratio():
    frame = parameter_dataframe(PARAMETER_TABLE)
    assert list(frame.columns) == ["Back-end", "Head params", "Back-end params", "Total params", "Trainable params"]
    assert list(frame["Back-end"]) == ["FC", "GAP"]
    assert frame.loc["gap", "Back-end params"] == 65
    assert backend_parameter_ratio(PARAMETER_TABLE) == pytest.approx(651_401 / 65)
    assert backend_parameter_ratio({"gap": PARAMETER_TABLE["gap"]}) is None


def test_parameter_figure_has_head_and_backend_bars_in_backend_colours():
    figure = parameter_figure(PARAMETER_TABLE)
    head, backend = figure.data
    assert list(head.y) == [28_896, 28_896] and list(backend.y) == [651_401, 65]
    assert list(backend.marker.color) == [backend_color("fc"), backend_color("gap")]
    assert figure.layout.yaxis.type == "log"


def test_classification_figure_uses_backend_colours():
    overlay = np.zeros((8, 8, 3), np.uint8)
    result = {"fc": {"p_cat": 0.3, "p_dog": 0.7, "label": "dog", "method": "Grad-CAM", "overlay": overlay},
              "gap": {"p_cat": 0.9, "p_dog": 0.1, "label": "cat", "method": "CAM", "overlay": overlay}}
    figure = classification_figure(result)
    cat, dog = figure.data
    assert list(cat.y) == [0.3, 0.9] and list(dog.y) == [0.7, 0.1]
    assert list(dog.marker.color) == [backend_color("fc"), backend_color("gap")]


def test_results_dataframe_reports_best_final_and_gap_per_backend_without_a_time_column():
    metrics = make_epoch_metrics(backends=("fc", "gap"))
    frame = results_dataframe(metrics)
    fc_rows = metrics[metrics["backend"] == "fc"]
    assert frame.loc["fc", "Best val accuracy"] == pytest.approx(fc_rows["val_accuracy"].max())
    assert frame.loc["fc", "Best epoch"] == fc_rows.loc[fc_rows["val_accuracy"].idxmax(), "epoch"]
    assert frame.loc["fc", "Final val accuracy"] == pytest.approx(fc_rows["val_accuracy"].iloc[-1])
    assert frame.loc["fc", "Final train accuracy"] == pytest.approx(fc_rows["accuracy"].iloc[-1])
    gap = fc_rows["accuracy"].iloc[-1] - fc_rows["val_accuracy"].iloc[-1]
    assert frame.loc["fc", "Train − val gap"] == pytest.approx(gap)
    assert frame.loc["fc", "Epochs"] == EPOCHS
    # the back-ends train in lockstep: the run's time is one figure, shown outside the table
    assert not any("time" in column.lower() for column in frame.columns)
    assert list(frame["Back-end"]) == ["FC", "GAP"]
