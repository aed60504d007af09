"""The four claims' verdicts: one computed sentence each, comparing the pooling back-end with the dense one.

Every function reads gapdemo.claims.summary's JSON-ready dicts; a spread is gapdemo.sweep.seeds.spread's
{"mean", "std", "min", "max", "count", "values"}, and two spreads whose min-max ranges overlap are not
called a clear difference.
"""

from __future__ import annotations

from gapdemo.claims.registry import CLAIMS
from gapdemo.model.backends import BACKENDS, HEAD_STRIDE

# A bump at the stride smaller than this is called faint: on a few hundred test images it is a
# handful of answers (one seed's 250 images moved both ways give 500, so 1 point = 5 of them).
STRIDE_GAIN_CLEAR = 0.01
NO_PAIR_VERDICT = "Train a global-pooling and a fully connected back-end to compare them."


def ranges_overlap(first: dict, second: dict) -> bool:
    """True when the min–max ranges of two spreads share at least one value."""
    if first["min"] is None or second["min"] is None:
        return True  # nothing measured on one side: no difference can be claimed
    return first["min"] <= second["max"] and second["min"] <= first["max"]


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
    first, second = (overfitting["backends"][b] for b in pair)
    sentence = comparison_sentence("final train–validation accuracy gap", pair, first["final_gap"], second["final_gap"])
    slopes = [values["val_loss_slope"]["mean"] for values in (first, second)]
    if None in slopes:
        return sentence + " Validation-loss trend needs at least two epochs."
    return sentence + (f" Over the last half of training validation loss changes by {slopes[0]:+.3f} per epoch "
                       f"for {_label(pair[0])} and {slopes[1]:+.3f} for {_label(pair[1])} (rising = overfitting).")


def localization_verdict(localization: dict, pair) -> str:
    (pooling, dense), (first, second) = pair, [localization["backends"][b] for b in pair]
    hits, other_hits = first["pointing_game"], second["pointing_game"]
    return (f"{_label(pooling)}'s {first['method']} peaks inside the object box for {_points(hits['mean'])}% of test "
            f"images{_range_points(hits)} vs {_points(other_hits['mean'])}%{_range_points(other_hits)} for "
            f"{_label(dense)}'s {second['method']} — {spread_note(hits, other_hits)}. Share of map energy inside "
            f"the box: {_points(first['energy_in_box']['mean'])}% vs {_points(second['energy_in_box']['mean'])}%; "
            f"a uniform map scores {_points(localization['baseline']['mean'])}% on both.")


def translation_verdict(translation: dict, pair) -> str:
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
    """One computed sentence per claim, comparing GAP (or GMP) with FC (or the first dense back-end).

    A claim that could not be measured says why, and without such a pair every claim asks for one: the
    verdict functions above are called only with a measured claim and a pair.
    """
    pair = tuple(result["parameters"]["pair"]) if result["parameters"]["pair"] else None
    return {key: verdict(key, result[key], pair) for key in CLAIMS}


def verdict(key: str, measured: dict, pair: tuple[str, str] | None) -> str:
    """The sentence of claim key: why it was not measured, NO_PAIR_VERDICT, or VERDICTS[key]'s comparison."""
    if measured.get("available") is False:  # the localization claim, without boxes to score against
        return f"Not measured: {measured['reason']}"
    return VERDICTS[key](measured, pair) if pair else NO_PAIR_VERDICT
