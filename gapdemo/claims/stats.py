"""Paired differences between two back-ends over runs, with a 95% t-interval, and a verdict in words.

Every run trains all its back-ends in lockstep on the same batches, so the runs pair them: the difference
is taken within each run, and the interval is the paired t-interval of its mean,
mean(d) +- t(0.975, n - 1) * std(d) / sqrt(n), with the sample standard deviation (n - 1).

The t quantile comes from a table for 1 to 30 degrees of freedom and the Cornish-Fisher expansion above
that (within 1e-4 of the exact value there): SciPy is not among gapdemo's dependencies. Pure Python and numpy.
"""

from __future__ import annotations

import math
import statistics

INTERVAL_METHOD = "paired t-interval, 95%"
# t(0.975, df) for df = 1..30, to 4 decimals.
T_975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
         2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
         2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)
Z_975 = 1.959963984540054  # the standard normal's 97.5% quantile

HOLDS, DOES_NOT_HOLD = "holds", "does not hold"


def t_quantile_975(degrees_of_freedom: int) -> float:
    """t(0.975, degrees_of_freedom): the table up to 30, the Cornish-Fisher expansion beyond."""
    if isinstance(degrees_of_freedom, bool) or not isinstance(degrees_of_freedom, int) or degrees_of_freedom < 1:
        raise ValueError(f"degrees of freedom must be a whole number >= 1, got {degrees_of_freedom!r}")
    if degrees_of_freedom <= len(T_975):
        return T_975[degrees_of_freedom - 1]
    z, df = Z_975, degrees_of_freedom
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3))


def paired_difference(first, second) -> dict:
    """Mean of first[i] - second[i] over the runs where both were measured, with its 95% t-interval.

    Args:
        first, second: one number (or None: not measured) per run, in the same run order.

    Returns:
        {"n", "difference" (mean), "std" (sample std of the differences), "low", "high"}; every number is
        None with no pair measured, and low/high are None with a single pair (one run gives no interval).
    """
    if len(first) != len(second):
        raise ValueError(f"need one value per run on both sides, got {len(first)} and {len(second)}")
    differences = [a - b for a, b in zip(first, second, strict=True) if _is_number(a) and _is_number(b)]
    count = len(differences)
    if count == 0:
        return {"n": 0, "difference": None, "std": None, "low": None, "high": None}
    mean = statistics.fmean(differences)
    if count == 1:
        return {"n": 1, "difference": mean, "std": None, "low": None, "high": None}
    std = statistics.stdev(differences)
    half_width = t_quantile_975(count - 1) * std / math.sqrt(count)
    return {"n": count, "difference": mean, "std": std, "low": mean - half_width, "high": mean + half_width}


def describe_values(values) -> dict:
    """{"n", "mean", "std"} of one back-end's measure over runs (None values left out; std 0 for one)."""
    finite = [float(value) for value in values if _is_number(value)]
    if not finite:
        return {"n": 0, "mean": None, "std": None}
    return {"n": len(finite), "mean": statistics.fmean(finite),
            "std": statistics.stdev(finite) if len(finite) > 1 else 0.0}


def verdict(interval: dict, better: str) -> str:
    """"holds", "does not hold" or "not yet decided (n = 4; the interval crosses 0)" for a pair's interval.

    interval: paired_difference's dict, dense minus pooling back-end. better: "lower" when the claim says the
    pooling back-end's value is lower (so the difference should be > 0), "higher" when it says higher.
    """
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', got {better!r}")
    count, low, high = interval["n"], interval["low"], interval["high"]
    if count == 0:
        return "not yet decided (no run measured both back-ends)"
    if low is None or high is None:
        return f"not yet decided (n = {count}; one run gives no interval)"
    favoured_side = 1 if better == "lower" else -1
    if low > 0 or high < 0:
        side = 1 if low > 0 else -1
        return HOLDS if side == favoured_side else DOES_NOT_HOLD
    return f"not yet decided (n = {count}; the interval crosses 0)"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
