"""From per-seed measurements to the four claims: mean and spread per back-end, and one verdict each.

Pure Python and numpy: every function takes the plain dicts gapdemo.claims.measures returns
(one per seed) and gives JSON-ready dicts. A spread is gapdemo.sweep.seeds.spread's {"mean", "std",
"min", "max", "count", "values"}, as a sweep's; std is the sample standard deviation (0 for one seed);
None stands for "not measured". The sentences come from gapdemo.claims.verdicts.
"""

from __future__ import annotations

import math

import numpy as np

from gapdemo.claims.verdicts import verdicts
from gapdemo.insight.evaluation import CONSISTENCY_SHIFTS
from gapdemo.model.backends import BACKENDS, HEAD_STRIDE
from gapdemo.sweep.seeds import spread


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


def comparison_pair(backends) -> tuple[str, str] | None:
    """(pooling back-end, dense back-end) the verdicts compare: GAP vs FC when both were trained."""
    backends = list(backends)
    pooling = [b for b in backends if BACKENDS[b].uses_cam]
    dense = [b for b in backends if not BACKENDS[b].uses_cam]
    if not pooling or not dense:
        return None
    return ("gap" if "gap" in pooling else pooling[0]), ("fc" if "fc" in dense else dense[0])


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
