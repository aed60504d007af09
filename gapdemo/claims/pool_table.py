"""A pooled claims result (PooledClaims.to_public()) as rows and as a plain-text table: numbers in, text out.

pooled_rows gives one row per claim, measure and back-end or pair, ready for a CSV or a DataFrame; table_lines
prints the same numbers for the command line. A pair's row holds the paired difference (dense minus pooling
back-end) with its 95% interval and the verdict; a back-end's row its n, mean and std.
"""

from __future__ import annotations

from gapdemo.claims.registry import CLAIMS
from gapdemo.model.backends import BACKENDS

SCALES = {"points": 100.0, "ms": 1000.0, "per epoch": 1.0}  # a stored number times this reads in the unit


def scaled(value, unit: str):
    """value in the unit it is shown in (a fraction as points, seconds as ms); None stays None."""
    return None if value is None else value * SCALES[unit]


def _label(name: str) -> str:
    return BACKENDS[name].label if name in BACKENDS else name


def pair_label(pair_key: str) -> str:
    """'fc_vs_gap' -> 'FC - GAP'."""
    dense, _, pooling = pair_key.partition("_vs_")
    return f"{_label(dense)} - {_label(pooling)}"


def pooled_rows(public: dict) -> list[dict]:
    """[{"claim", "measure", "unit", "what" (back-end or pair label), "n", "mean", "std", "difference",
    "low", "high", "verdict"}], numbers in the measure's unit, claims in the registry's order."""
    rows = []
    for key, claim in CLAIMS.items():
        for measure in public["claims"].get(key, {}).get("measures", {}).values():
            unit, base = measure["unit"], {"claim": claim.heading, "measure": measure["label"], "unit": measure["unit"]}
            for backend, values in measure["backends"].items():
                rows.append({**base, "what": _label(backend), "n": values["n"], "mean": scaled(values["mean"], unit),
                             "std": scaled(values["std"], unit), "difference": None, "low": None, "high": None,
                             "verdict": ""})
            for pair, values in measure["pairs"].items():
                rows.append({**base, "what": pair_label(pair), "n": values["n"], "mean": None, "std": None,
                             "difference": scaled(values["difference"], unit), "low": scaled(values["low"], unit),
                             "high": scaled(values["high"], unit), "verdict": values["verdict"]})
    return rows


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.3g}" if abs(value) < 0.01 else f"{value:.2f}"


def table_lines(public: dict) -> list[str]:
    """The pooled table as text: the group, then per claim and measure its back-ends and pairs."""
    group = public["group"]
    lines = [f"Pooled claims over {public['runs']} run(s) of: {group['description']} (key {group['key']})",
             f"Differences are dense minus pooling back-end, with a {public['interval']}."]
    lines += [line for line in (public["left_out"],) if line]
    if public["not_measured"]:
        lines.append(f"{public['not_measured']} run(s) of the group are not measured yet and were left out.")
    current_claim = current_measure = None
    for row in pooled_rows(public):
        if row["claim"] != current_claim:
            current_claim, current_measure = row["claim"], None
            lines.append(f"\n{current_claim}")
        if row["measure"] != current_measure:
            current_measure = row["measure"]
            lines.append(f"  {current_measure} ({row['unit']})")
        if row["difference"] is None and not row["verdict"]:
            lines.append(f"    {row['what']:<20} n = {row['n']:<3} {_number(row['mean'])} ± {_number(row['std'])}")
        else:
            interval = "no interval" if row["low"] is None else f"[{_number(row['low'])}, {_number(row['high'])}]"
            lines.append(f"    {row['what']:<20} n = {row['n']:<3} difference {_number(row['difference'])} "
                         f"{interval}: {row['verdict']}")
    return lines


def claim_verdicts(public: dict) -> list[tuple[str, str]]:
    """[(claim heading, 'pointing game: FC - GAP -3.3 points [-8.1, 1.5]: not yet decided (...)')], one per
    claim: the measure that decides it, each pair's difference, interval and verdict in words."""
    verdicts = []
    for key, claim in CLAIMS.items():
        values = public["claims"].get(key)
        if not values or not values.get("pairs"):
            continue
        unit = values["unit"]
        pairs = [f"{pair_label(pair)} {_number(scaled(pair_values['difference'], unit))} {unit} "
                 + ("" if pair_values["low"] is None else
                    f"[{_number(scaled(pair_values['low'], unit))}, {_number(scaled(pair_values['high'], unit))}]")
                 + f": {pair_values['verdict']}" for pair, pair_values in values["pairs"].items()]
        verdicts.append((claim.heading, f"{values['label']}: " + "; ".join(pairs)))
    return verdicts
