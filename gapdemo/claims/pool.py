"""A class measures the claims together: the finished runs of one group of settings pooled into one claims table.

    scan = groups.scan_pool(runs_dir)                      # the groups to offer, largest first (no TensorFlow)
    pooled = pooled_claims(runs_dir, scan.groups[0].key)   # read-only: runs not measured yet are left out
    pooled = pooled_claims(runs_dir, key, measure_missing=True)   # the command: measure them first

Each run is one sample. Its per-run measures (gapdemo.claims.scoring) are read from its claims_measures.json
(gapdemo.claims.measured), and summarised by the same functions a claims job uses (summary.summarize: spread
and verdict sentences); on top, every claim's pooled measures (registry.Claim.pooled) are compared between the
global-pooling back-end and each dense one, paired within runs, with a 95% t-interval (gapdemo.claims.stats).
Reading measured runs imports no TensorFlow: 30 of them redraw in well under a second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gapdemo.claims import measured, stats, summary
from gapdemo.claims.groups import PoolScan, RunGroup, scan_pool
from gapdemo.claims.registry import CLAIMS
from gapdemo.model.backends import BACKENDS

Progress = Callable[[str, float], None]


def _localization_value(name: str):
    def read(run: dict, backend: str):
        localization = run["localization"]
        return localization["backends"][backend][name] if localization["available"] else None
    return read


# measure key -> (one run's measures, back-end) -> the number, or None when not measured
MEASURE_READERS = {
    "step_seconds": lambda run, backend: run["step_seconds"].get(backend),
    "final_gap": lambda run, backend: run["overfitting"][backend]["final_gap"],
    "val_loss_slope": lambda run, backend: run["overfitting"][backend]["val_loss_slope"],
    "pointing_game": _localization_value("pointing_game"),
    "energy_in_box": _localization_value("energy_in_box"),
    "largest_shift_drop": lambda run, backend: run["shift_accuracy"][backend][0] - run["shift_accuracy"][backend][-1],
    "consistency_1px": lambda run, backend: run["consistency"][backend][0],
}


def comparison_pairs(backends) -> list[tuple[str, str]]:
    """[(dense, pooling), ...]: each dense back-end against the global-pooling one (GAP when trained)."""
    pair = summary.comparison_pair(backends)
    if pair is None:
        return []
    pooling = pair[0]
    return [(backend, pooling) for backend in backends if not BACKENDS[backend].uses_cam]


def pair_key(pair: tuple[str, str]) -> str:
    """('fc', 'gap') -> 'fc_vs_gap': the difference is the first minus the second."""
    return f"{pair[0]}_vs_{pair[1]}"


def compare_measure(per_run: list[dict], measure, backends) -> dict:
    """One pooled measure: {"measure", "label", "better", "unit", "backends": {b: {"n", "mean", "std"}},
    "pairs": {"fc_vs_gap": {"n", "difference", "std", "low", "high", "verdict"}}}."""
    read = MEASURE_READERS[measure.key]
    values = {backend: [read(run, backend) for run in per_run] for backend in backends}
    pairs = {}
    for dense, pooling in comparison_pairs(backends):
        interval = stats.paired_difference(values[dense], values[pooling])
        pairs[pair_key((dense, pooling))] = {**interval, "verdict": stats.verdict(interval, measure.better)}
    return {"measure": measure.key, "label": measure.label, "better": measure.better, "unit": measure.unit,
            "backends": {backend: stats.describe_values(values[backend]) for backend in backends}, "pairs": pairs}


def compare_claims(per_run: list[dict], backends) -> dict:
    """Per claim: its first pooled measure's pairs (the claim's verdict) and every pooled measure in full.

    {claim: {"measure", "label", "better", "unit", "backends", "pairs": {pair: {..., "verdict"}},
             "measures": {measure key: compare_measure(...)}}}
    """
    compared = {}
    for key, claim in CLAIMS.items():
        measures = {measure.key: compare_measure(per_run, measure, backends) for measure in claim.pooled}
        compared[key] = {**measures[claim.pooled[0].key], "measures": measures}
    return compared


@dataclass
class PooledClaims:
    """One group's pooled claims table. to_public() is what any visitor may see; run_ids is for the operator."""

    group: RunGroup
    run_ids: list[str]  # the runs pooled (measured), newest first: operator and exports only
    unmeasured: list[str]  # run ids of the group not measured yet (the page's background job measures them)
    skipped: list[str] = field(default_factory=list)  # one sentence per run passed by (malformed measures ...)
    left_out: str = ""  # PoolScan.left_out_line(): runs not finished, in one line
    result: dict | None = None  # summary.summarize of the pooled runs (a claims job's sections and verdicts)
    claims: dict = field(default_factory=dict)  # compare_claims: per claim and pair, the paired difference
    accuracies: dict = field(default_factory=dict)  # run id -> {back-end: final validation accuracy}: one dot each

    @property
    def runs(self) -> int:
        return len(self.run_ids)

    def to_public(self) -> dict:
        """JSON-ready, naming no run: {"runs", "group", "interval", "claims", "verdicts", "summary",
        "not_measured", "left_out", "skipped" (count)}."""
        return summary.json_ready({
            "runs": self.runs, "group": self.group.public(), "interval": stats.INTERVAL_METHOD,
            "claims": self.claims, "verdicts": (self.result or {}).get("verdicts", {}),
            "summary": {key: value for key, value in (self.result or {}).items() if key != "verdicts"},
            "not_measured": len(self.unmeasured), "left_out": self.left_out, "skipped": len(self.skipped)})


def read_group(group: RunGroup) -> tuple[list[tuple[str, dict]], list[str], dict[str, str]]:
    """([(run id, measures)], unmeasured run ids, {run id: why its measures file was set aside}), reading only."""
    measured_runs, unmeasured, problems = [], [], {}
    for run_dir, config in zip(group.run_dirs, group.configs, strict=True):
        values, problem = measured.read_measures(run_dir, config)
        if values is not None:
            measured_runs.append((run_dir.name, values))
        else:
            unmeasured.append(run_dir.name)
            if problem:
                problems[run_dir.name] = problem
    return measured_runs, unmeasured, problems


def measure_group(group: RunGroup, run_ids: list[str], *, served: bool = False,
                  progress: Progress | None = None) -> dict[str, str]:
    """Measure the group's runs named in run_ids (measured.measure_run); {run id: why it failed}."""
    failures = {}
    for index, run_id in enumerate(run_ids):
        if progress:
            progress(f"measuring run {index + 1}/{len(run_ids)} of the group", index / len(run_ids))
        try:
            measured.measure_run(group.run_dirs[group.run_ids.index(run_id)], served=served)
        except Exception as error:  # noqa: BLE001 - a planted model file can make Keras raise anything; one run's failure must not end the table
            failures[run_id] = f"Run {run_id} could not be measured and was left out: {error}"
    if progress and run_ids:
        progress("runs measured", 1.0)
    return failures


def pooled_claims(runs_dir, group_key: str | None = None, *, measure_missing: bool = False, served: bool = False,
                  progress: Progress | None = None, scan: PoolScan | None = None) -> PooledClaims:
    """The pooled claims of one group of runs_dir's finished runs.

    Args:
        group_key: RunGroup.key of the group (None: the largest).
        measure_missing: measure the group's runs without (valid) measures first (TensorFlow; the command, a
            background job). False reads only: such runs are listed in PooledClaims.unmeasured, left out.
        served: measuring for a page served to others (the runs' data must lie under the data roots).
        progress: optional progress(message, fraction) while measuring.
        scan: a groups.scan_pool(runs_dir) already made (the page's redraw), else scanned here.

    Raises:
        ValueError (one sentence) when no settings have 2 finished runs, or group_key names no group.
    """
    scan = scan_pool(runs_dir) if scan is None else scan
    if not scan.groups:
        raise ValueError(f"no settings have at least 2 finished runs in {Path(runs_dir).name or runs_dir} yet, "
                         "so there is nothing to pool")
    group = scan.find(group_key) if group_key else scan.groups[0]
    measured_runs, unmeasured, problems = read_group(group)
    if measure_missing and unmeasured:
        failures = measure_group(group, unmeasured, served=served, progress=progress)
        # a file set aside and written again is said once, as measured again; a run that failed says why
        notes = {run_id: f"{problem} It was measured again." for run_id, problem in problems.items()}
        measured_runs, unmeasured, problems = read_group(group)
        problems = {**{run_id: notes[run_id] for run_id in notes if run_id not in unmeasured}, **problems, **failures}
    pooled = PooledClaims(group, [run_id for run_id, _ in measured_runs], unmeasured,
                          scan.skipped + list(problems.values()), scan.left_out_line())
    if measured_runs:
        per_run = [values for _, values in measured_runs]
        settings = group.settings
        pooled.result = summary.summarize(per_run, group.backends, settings["image_size"], settings["batch_size"])
        pooled.claims = compare_claims(per_run, group.backends)
        pooled.accuracies = {run_id: final_accuracies(values, group.backends) for run_id, values in measured_runs}
    return pooled


def final_accuracies(measures: dict, backends) -> dict[str, float]:
    """{back-end: the run's validation accuracy after its last epoch}, from its measures."""
    overfitting = measures.get("overfitting", {})
    return {backend: float(overfitting[backend]["final_val_accuracy"]) for backend in backends
            if backend in overfitting}
