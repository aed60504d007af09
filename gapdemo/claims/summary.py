"""From per-seed measurements to the four claims: mean and spread per back-end, and one verdict each.

Pure Python and numpy: every function takes the plain dicts gapdemo.claims.measures returns
(one per seed) and gives JSON-ready dicts. A spread is gapdemo.sweep.seeds.spread's {"mean", "std",
"min", "max", "count", "values"}, as a sweep's; std is the sample standard deviation (0 for one seed);
None stands for "not measured".
"""

from __future__ import annotations

import math

import numpy as np

from gapdemo.claims.registry import CLAIMS
from gapdemo.insight.evaluation import CONSISTENCY_SHIFTS
from gapdemo.model.backends import BACKENDS, HEAD_FILTERS
from gapdemo.sweep.seeds import spread

HEAD_STRIDE = 2 ** len(HEAD_FILTERS)  # each conv block ends in a 2x2 max pool: 8 px per feature-map cell
# A bump at the stride smaller than this is called faint: on a few hundred test images it is a
# handful of answers (one seed's 250 images moved both ways give 500, so 1 point = 5 of them).
STRIDE_GAIN_CLEAR = 0.01


NO_PAIR_VERDICT = "Train a global-pooling and a fully connected back-end to compare them."


def json_ready(value):
    """value with numpy scalars turned into Python numbers and NaN/inf into None, recursively."""
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    return value


def ranges_overlap(first: dict, second: dict) -> bool:
    """True when the min–max ranges of two spreads share at least one value."""
    if first["min"] is None or second["min"] is None:
        return True  # nothing measured on one side: no difference can be claimed
    return first["min"] <= second["max"] and second["min"] <= first["max"]


def comparison_pair(backends) -> tuple[str, str] | None:
    """(pooling back-end, dense back-end) the verdicts compare: GAP vs FC when both were trained."""
    backends = list(backends)
    pooling = [b for b in backends if BACKENDS[b].uses_cam]
    dense = [b for b in backends if not BACKENDS[b].uses_cam]
    if not pooling or not dense:
        return None
    return ("gap" if "gap" in pooling else pooling[0]), ("fc" if "fc" in dense else dense[0])


def spread_note(first: dict, second: dict) -> str:
    """How the two spreads compare, in words: the clause every verdict ends with."""
    seeds = min(first["count"], second["count"])
    if seeds < 2:
        return f"{seeds} seed, so no spread was measured"
    if ranges_overlap(first, second):
        return f"within the spread over {seeds} seeds, so not a clear difference"
    return f"{seeds} seeds; the ranges do not overlap"


def _points(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}"


def _range_points(values: dict) -> str:
    if values["count"] < 2:
        return ""
    return f" (range {_points(values['min'])} to {_points(values['max'])})"


def _label(backend: str) -> str:
    return BACKENDS[backend].label


# --- aggregation -------------------------------------------------------------------------------


def summarize_parameters(parameter_table: dict, step_seconds: dict, image_size: int, batch_size: int) -> dict:
    """Parameter counts (exact) and step time (spread over seeds) per back-end, plus the fc/gap ratio."""
    backends = {b: {"backend_params": int(counts["backend_params"]), "total_params": int(counts["total_params"]),
                    "step_seconds": spread(step_seconds.get(b, []))} for b, counts in parameter_table.items()}
    pair = comparison_pair(parameter_table)
    ratio = None
    if pair and parameter_table[pair[0]]["backend_params"] > 0:
        ratio = parameter_table[pair[1]]["backend_params"] / parameter_table[pair[0]]["backend_params"]
    return {"image_size": image_size, "batch_size": batch_size, "ratio": ratio, "pair": list(pair) if pair else None,
            "backends": backends}


def summarize_overfitting(per_seed: list[dict]) -> dict:
    """Train − validation accuracy gap per epoch and at the end, and the validation-loss slope."""
    backends = {}
    for backend in per_seed[0]:
        seeds = [measures[backend] for measures in per_seed if backend in measures]
        epochs = sorted({epoch for measures in seeds for epoch in measures["epochs"]})
        per_epoch = [{"epoch": epoch, "gap": spread([m["gap"][m["epochs"].index(epoch)] for m in seeds
                                                     if epoch in m["epochs"]])} for epoch in epochs]
        backends[backend] = {
            "per_epoch": per_epoch, "final_gap": spread([m["final_gap"] for m in seeds]),
            "val_loss_slope": spread([m["val_loss_slope"] for m in seeds]),
            "final_val_accuracy": spread([m["final_val_accuracy"] for m in seeds]),
        }
    return {"backends": backends}


def summarize_localization(per_seed: list[dict]) -> dict:
    """Pointing game and energy in box per back-end, or why they could not be measured."""
    if not per_seed or not per_seed[0].get("available"):
        reason = per_seed[0].get("reason") if per_seed else "no run was evaluated"
        return {"available": False, "reason": reason, "baseline": spread([]), "backends": {}}
    backends = {}
    for backend, first in per_seed[0]["backends"].items():
        scores = [seed["backends"][backend] for seed in per_seed]
        backends[backend] = {"method": first["method"],
                             "pointing_game": spread([s["pointing_game"] for s in scores]),
                             "energy_in_box": spread([s["energy_in_box"] for s in scores])}
    return {"available": True, "reason": None, "baseline": spread([seed["baseline"] for seed in per_seed]),
            "backends": backends}


def stride_gain(consistency_by_shift: dict[int, float], stride: int = HEAD_STRIDE) -> float | None:
    """Consistency at one full stride minus the mean of its two neighbours (stride - 1, stride + 1).

    The neighbours' mean cancels a steady decline with the shift, so what is left is the
    stride's own bump: > 0 when moving by a whole feature-map cell flips fewer predictions.
    None when a neighbour was not measured.
    """
    if not {stride - 1, stride, stride + 1} <= set(consistency_by_shift):
        return None
    return consistency_by_shift[stride] - (consistency_by_shift[stride - 1] + consistency_by_shift[stride + 1]) / 2


def summarize_consistency(consistency_per_seed: list[dict]) -> tuple[dict, dict]:
    """({backend: {shift (str): spread}}, {backend: spread of stride_gain}) from per-seed curves.

    Each seed gives {backend: [fraction per shift of gapdemo.insight.evaluation.CONSISTENCY_SHIFTS]}.
    """
    curves, gains = {}, {}
    for backend in consistency_per_seed[0]:
        per_seed = [dict(zip(CONSISTENCY_SHIFTS, seed[backend], strict=True)) for seed in consistency_per_seed]
        curves[backend] = {str(shift): spread([values[shift] for values in per_seed]) for shift in CONSISTENCY_SHIFTS}
        gains[backend] = spread([stride_gain(values) for values in per_seed])
    return curves, gains


def summarize_translation(shifts: list[int], shift_per_seed: list[dict], unseen_per_seed: list[dict],
                          consistency_per_seed: list[dict] | None = None) -> dict:
    """Accuracy per shift, the drop at the largest shift, the unseen-position drop and, when measured,
    shift consistency (per back-end: shift -> spread of the share of predictions unchanged)."""
    backends = {}
    for backend in shift_per_seed[0]:
        curves = [seed[backend] for seed in shift_per_seed]
        unseen = [seed[backend] for seed in unseen_per_seed if backend in seed]
        backends[backend] = {
            "shift_accuracy": [{"shift": shift, "accuracy": spread([curve[i] for curve in curves])}
                               for i, shift in enumerate(shifts)],
            "largest_shift_drop": spread([curve[0] - curve[-1] for curve in curves]),
            "unseen": {name: spread([values[name] for values in unseen])
                       for name in ("left_accuracy", "right_accuracy", "drop")},
        }
    translation = {"shifts": list(shifts), "backends": backends}
    if consistency_per_seed:
        translation["consistency"], gains = summarize_consistency(consistency_per_seed)
        for backend, gain in gains.items():
            backends[backend]["consistency_stride_gain"] = gain
    return translation


def summarize(per_run: list[dict], backends, image_size: int, batch_size: int) -> dict:
    """The four claims (spread per back-end) and their verdicts from per-run measures (gapdemo.claims.scoring's
    dicts; a claims job's seeds add "unseen"): what a claims job saves and what pooling shows alike."""
    backends = list(backends)
    step_seconds = {b: [run["step_seconds"].get(b) for run in per_run] for b in backends}
    result = {
        "parameters": summarize_parameters(per_run[0]["parameters"], step_seconds, image_size, batch_size),
        "overfitting": summarize_overfitting([run["overfitting"] for run in per_run]),
        "localization": summarize_localization([run["localization"] for run in per_run]),
        "translation": summarize_translation(per_run[0]["shifts"], [run["shift_accuracy"] for run in per_run],
                                             [run.get("unseen", {}) for run in per_run],
                                             [run["consistency"] for run in per_run]),
    }
    result["verdicts"] = verdicts(result)
    return result


# --- verdicts ----------------------------------------------------------------------------------


def comparison_sentence(quantity: str, pair: tuple[str, str], first: dict, second: dict,
                        unit: str = " points") -> str:
    """'GAP's <quantity> is 3.1 points (range ...) vs FC's 14.2 points (range ...) — <spread note>.'

    first and second are spreads of fractions (0.031 reads 3.1 points or 3.1%).
    """
    pooling, dense = pair
    return (f"{_label(pooling)}'s {quantity} is {_points(first['mean'])}{unit}{_range_points(first)} vs "
            f"{_label(dense)}'s {_points(second['mean'])}{unit}{_range_points(second)} — "
            f"{spread_note(first, second)}.")


def parameters_verdict(parameters: dict, pair) -> str:
    if not pair:
        return NO_PAIR_VERDICT
    pooling, dense = pair
    counts, size = parameters["backends"], parameters["image_size"]
    first, second = counts[pooling]["step_seconds"], counts[dense]["step_seconds"]
    timing = "not timed" if first["mean"] is None or second["mean"] is None else (
        f"{first['mean'] * 1000:.1f} ms for {_label(pooling)} vs {second['mean'] * 1000:.1f} ms for "
        f"{_label(dense)} (median of repeats; {spread_note(first, second)})")
    return (f"{_label(dense)}'s back-end has {parameters['ratio']:,.0f}× the parameters of {_label(pooling)}'s "
            f"({counts[dense]['backend_params']:,} vs {counts[pooling]['backend_params']:,}) at {size}×{size}; "
            f"one training step on a {parameters['batch_size']}-image batch takes {timing}.")


def overfitting_verdict(overfitting: dict, pair) -> str:
    if not pair:
        return NO_PAIR_VERDICT
    first, second = (overfitting["backends"][b] for b in pair)
    sentence = comparison_sentence("final train–validation accuracy gap", pair, first["final_gap"], second["final_gap"])
    slopes = [values["val_loss_slope"]["mean"] for values in (first, second)]
    if None in slopes:
        return sentence + " Validation-loss trend needs at least two epochs."
    return sentence + (f" Over the last half of training validation loss changes by {slopes[0]:+.3f} per epoch "
                       f"for {_label(pair[0])} and {slopes[1]:+.3f} for {_label(pair[1])} (rising = overfitting).")


def localization_verdict(localization: dict, pair) -> str:
    if not localization["available"]:
        return f"Not measured: {localization['reason']}"
    if not pair:
        return NO_PAIR_VERDICT
    (pooling, dense), (first, second) = pair, [localization["backends"][b] for b in pair]
    hits, other_hits = first["pointing_game"], second["pointing_game"]
    return (f"{_label(pooling)}'s {first['method']} peaks inside the object box for {_points(hits['mean'])}% of test "
            f"images{_range_points(hits)} vs {_points(other_hits['mean'])}%{_range_points(other_hits)} for "
            f"{_label(dense)}'s {second['method']} — {spread_note(hits, other_hits)}. Share of map energy inside "
            f"the box: {_points(first['energy_in_box']['mean'])}% vs {_points(second['energy_in_box']['mean'])}%; "
            f"a uniform map scores {_points(localization['baseline']['mean'])}% on both.")


def translation_verdict(translation: dict, pair) -> str:
    if not pair:
        return NO_PAIR_VERDICT
    first, second = (translation["backends"][b] for b in pair)
    largest = translation["shifts"][-1]
    shifted = comparison_sentence(f"accuracy loss when test images move {largest} px", pair,
                                  first["largest_shift_drop"], second["largest_shift_drop"])
    shifted += (f" Shifted by {largest} px, {_label(pair[0])} still scores "
                f"{_points(first['shift_accuracy'][-1]['accuracy']['mean'])}% vs {_label(pair[1])}'s "
                f"{_points(second['shift_accuracy'][-1]['accuracy']['mean'])}%.")
    if first["unseen"]["drop"]["count"] > 0:
        shifted += " " + comparison_sentence("accuracy loss on right-half objects after training on left-half ones",
                                             pair, first["unseen"]["drop"], second["unseen"]["drop"])
    if "consistency" in translation:
        shifted += " " + consistency_verdict(translation, pair)
    return shifted


def _stride_pattern(translation: dict, pair) -> str:
    """Whether consistency rises at one full stride, in words, from the stride gains' spreads."""
    gains = {backend: translation["backends"][backend]["consistency_stride_gain"] for backend in pair}
    if min(gain["count"] for gain in gains.values()) < 2:
        return "1 seed, so no spread was measured"
    every_seed = [backend for backend, gain in gains.items() if gain["min"] > 0]
    if not every_seed:
        return f"not higher in every seed, so no clear period-{HEAD_STRIDE} pattern"
    clear = [backend for backend in every_seed if gains[backend]["mean"] >= STRIDE_GAIN_CLEAR]
    if clear:
        return (f"higher in every seed for {' and '.join(map(_label, clear))}: the period-{HEAD_STRIDE} pattern of a "
                f"network whose pooling steps by {HEAD_STRIDE} px")
    return (f"higher in every seed for {' and '.join(map(_label, every_seed))} but by less than "
            f"{STRIDE_GAIN_CLEAR * 100:.0f} point, so at most a faint period-{HEAD_STRIDE} pattern")


def consistency_verdict(translation: dict, pair) -> str:
    """Shift consistency at 1 px and at the largest shift, and whether it rises at one full stride."""
    (pooling, dense), consistency = pair, translation["consistency"]
    largest = str(max(int(shift) for shift in consistency[pooling]))
    sentence = comparison_sentence("share of predictions unchanged by a 1 px shift", pair, consistency[pooling]["1"],
                                   consistency[dense]["1"], unit="%")
    sentence += (f" After {largest} px: {_points(consistency[pooling][largest]['mean'])}% vs "
                 f"{_points(consistency[dense][largest]['mean'])}%.")
    gains = [translation["backends"][b]["consistency_stride_gain"] for b in pair]
    if any(gain["mean"] is None for gain in gains):
        return sentence
    return sentence + (f" At {HEAD_STRIDE} px, one full stride of the head, consistency is {gains[0]['mean'] * 100:+.1f} "
                       f"points for {_label(pooling)} and {gains[1]['mean'] * 100:+.1f} for {_label(dense)} against the "
                       f"mean of {HEAD_STRIDE - 1} and {HEAD_STRIDE + 1} px — {_stride_pattern(translation, pair)}.")


VERDICTS = {"parameters": parameters_verdict, "overfitting": overfitting_verdict,
            "localization": localization_verdict, "translation": translation_verdict}


def verdicts(result: dict) -> dict[str, str]:
    """One computed sentence per claim, comparing GAP (or GMP) with FC (or the first dense back-end)."""
    pair = tuple(result["parameters"]["pair"]) if result["parameters"]["pair"] else None
    return {key: VERDICTS[key](result[key], pair) for key in CLAIMS}
