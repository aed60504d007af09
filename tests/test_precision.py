"""Mixed bfloat16 as an option: where the processor has it, computed in bfloat16, saved and probed in float32."""

import keras
import numpy as np
import pytest

from gapdemo import runs
from gapdemo.config import tiny_config
from gapdemo.model.precision import PRECISIONS, bfloat16_support, dtype_policy, precision_problems, processor_flags
from gapdemo.model.variable_dropout import VariableRateDropout
from gapdemo.training.trainer import Trainer
from toy_data import toy_loader

HAS_BFLOAT16 = bfloat16_support()[0]


def test_processor_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16\n\nprocessor\t: 1\n")
    assert {"avx512_bf16", "sse2"} <= processor_flags(cpuinfo)
    assert processor_flags(tmp_path / "missing") == set()


def test_support_and_its_absence_are_said_in_one_sentence():
    supported, sentence = bfloat16_support({"amx_bf16", "avx2"})
    assert supported and "amx_bf16" in sentence
    supported, sentence = bfloat16_support({"avx2"})
    assert not supported and "no bfloat16 instructions" in sentence and "slower than float32" in sentence
    assert precision_problems("mixed_bfloat16", {"avx2"}) == [sentence.replace("; float32 is used.", ": choose float32.")]
    assert precision_problems("mixed_bfloat16", {"avx512_bf16"}) == []
    assert precision_problems("float32", set()) == []
    assert "choose one of float32, mixed_bfloat16" in precision_problems("float16")[0]


def test_a_system_without_proc_cpuinfo_says_it_cannot_tell(tmp_path):
    """macOS and Windows: no flags to read is said as such, not as a processor without bfloat16."""
    flags = processor_flags(tmp_path / "no-proc" / "cpuinfo")
    supported, sentence = bfloat16_support(flags)
    assert not supported and "does not list its processor's features" in sentence
    assert "no bfloat16 instructions" not in sentence
    assert precision_problems("mixed_bfloat16", flags) == [sentence.replace("; float32 is used.", ": choose float32.")]
    assert precision_problems("mixed_bfloat16", flags)[0].endswith(": choose float32.")


@pytest.mark.skipif(not HAS_BFLOAT16, reason="this processor has no bfloat16 instructions")
def test_a_mixed_bfloat16_run_computes_in_bfloat16_and_saves_float32_models(runs_dir):
    config = tiny_config(str(runs_dir), ("fc", "fc_dropout", "gap"))  # fc_dropout: issue #37
    config.train.precision = "mixed_bfloat16"
    config.train.epochs = 2
    trainer = Trainer(config, runs_dir / "bf16", data_loader=toy_loader(64))
    assert trainer.train() == 2
    assert keras.config.dtype_policy().name == "float32"  # the thread's policy is restored
    conv = trainer.models.training_model.get_layer("gap_conv1")
    assert conv.compute_dtype == "bfloat16" and conv.kernel.dtype == "float32"
    batch = np.random.default_rng(0).random((4, 32, 32, 3)).astype("float32")
    trained = trainer.models.training_model(batch, training=False)
    assert {keras.backend.standardize_dtype(output.dtype) for output in trained.values()} == {"float32"}  # sigmoids
    saved = runs.load_models(runs_dir / "bf16")
    for backend, model in saved.items():
        assert {layer.compute_dtype for layer in model.layers if layer.weights} == {"float32"}
        np.testing.assert_allclose(model(batch, training=False), trained[backend], atol=0.05)
    assert runs.read_config(runs_dir / "bf16")["train"]["precision"] == "mixed_bfloat16"
    _, probes = runs.load_probes(runs_dir / "bf16")
    for name in ("feature_averages", "cams"):  # probed by the float32 twin, as any reader would
        assert probes["gap"][name].dtype in (np.float32, np.float64)


def dropped_under(precision: str, rate: float, seed: int = 7) -> np.ndarray:
    """A VariableRateDropout built under precision's policy, applied in training to ones (200, 100), as float32."""
    with dtype_policy(precision):
        layer = VariableRateDropout(rate, seed=seed)
    outputs = layer(keras.ops.ones((200, 100), dtype=layer.compute_dtype), training=True)
    assert keras.backend.standardize_dtype(outputs.dtype) == layer.compute_dtype  # (200, 100) in the inputs' dtype
    return np.asarray(keras.ops.cast(outputs, "float32"))


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.9])
def test_dropout_drops_at_its_rate_under_every_policy(precision, rate):
    """Under mixed bfloat16 the rate is not rounded to bfloat16 (0.9 would become 0.8984375): masks are drawn
    in float32."""
    dropped = dropped_under(precision, rate)
    assert np.mean(dropped == 0) == pytest.approx(rate, abs=0.01)
    np.testing.assert_allclose(dropped[dropped != 0], 1 / (1 - rate), rtol=1e-2)  # kept units scaled up


def test_a_seed_drops_the_same_units_in_float32_and_mixed_bfloat16():
    masks = {precision: dropped_under(precision, 0.5) != 0 for precision in PRECISIONS}
    np.testing.assert_array_equal(masks["mixed_bfloat16"], masks["float32"])


def test_a_dropout_layer_of_a_mixed_model_loads_as_float32():
    with dtype_policy("mixed_bfloat16"):
        model = keras.Sequential([keras.Input((10,)), VariableRateDropout(0.3, seed=1, name="dropout")])
    assert model.get_layer("dropout").compute_dtype == "bfloat16"
    config = {**model.get_layer("dropout").get_config(), "dtype": "float32"}  # as the float32 twin saves it
    loaded = VariableRateDropout.from_config(config)
    assert loaded.compute_dtype == "float32" and loaded.rate == 0.3
    assert keras.backend.standardize_dtype(loaded(np.ones((2, 10), "float32"), training=True).dtype) == "float32"
