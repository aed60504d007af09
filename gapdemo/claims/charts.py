"""Plotly figures and CSV tables for the four claims, from a claims result (gapdemo.claims.run_claims).

Means are lines or bars; the spread over seeds is a shaded band or an error bar from the lowest
to the highest seed (min–max), as every title says. Import-light: no TensorFlow.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gapdemo.charts.common import backend_color, backend_label
from gapdemo.claims.registry import CLAIMS, check_claim
from gapdemo.model.backends import HEAD_STRIDE


def _spread_note(result: dict) -> str:
    seeds = result.get("seeds", 1)
    return "one seed, no spread" if seeds < 2 else f"mean of {seeds} seeds; bars and bands span min–max"


def _error_y(spreads: list[dict], scale: float = 1.0) -> dict:
    """Asymmetric error bars from each spread's mean down to its min and up to its max."""
    upper = [(s["max"] - s["mean"]) * scale if s["mean"] is not None else 0 for s in spreads]
    lower = [(s["mean"] - s["min"]) * scale if s["mean"] is not None else 0 for s in spreads]
    return {"type": "data", "symmetric": False, "array": upper, "arrayminus": lower, "thickness": 1.5}


def _means(spreads: list[dict], scale: float = 1.0) -> list:
    return [None if s["mean"] is None else s["mean"] * scale for s in spreads]


def _band_traces(x_values, spreads: list[dict], backend: str, name: str, scale: float = 1.0,
                 dash: str = "solid") -> list[go.Scatter]:
    """A mean line in the back-end's colour over a translucent min–max band."""
    points = [(x, s) for x, s in zip(x_values, spreads, strict=True) if s["mean"] is not None]
    xs = [x for x, _ in points]
    band = go.Scatter(
        x=xs + xs[::-1], y=[s["max"] * scale for _, s in points] + [s["min"] * scale for _, s in points][::-1],
        mode="lines", fill="toself", fillcolor=backend_color(backend), opacity=0.15, line={"width": 0},
        hoverinfo="skip",
        showlegend=False, legendgroup=backend, meta={"backend": backend, "part": "spread"},
    )
    line = go.Scatter(
        x=xs, y=[s["mean"] * scale for _, s in points], mode="lines+markers", name=name, legendgroup=backend,
        line={"color": backend_color(backend), "dash": dash, "width": 2}, meta={"backend": backend, "part": "mean"},
    )
    return [band, line]


def _style(figure: go.Figure, claim: str, title: str, result: dict) -> go.Figure:
    """Title the figure 'Claim <number>: <title>' over the spread note, in the house template."""
    text = f"Claim {CLAIMS[claim].number}: {title}<br><sup>{_spread_note(result)}</sup>"
    figure.update_layout(title={"text": text}, template="plotly_white", legend_title="back-end", margin={"t": 90})
    return figure


def parameters_figure(result: dict) -> go.Figure:
    """Back-end parameters (log scale) and the median training step time per back-end."""
    backends = result["parameters"]["backends"]
    labels, colors = [backend_label(b) for b in backends], [backend_color(b) for b in backends]
    steps = [values["step_seconds"] for values in backends.values()]
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Back-end parameters (log scale)",
                                                           "One training step (ms)"))
    figure.add_trace(go.Bar(x=labels, y=[v["backend_params"] for v in backends.values()], marker_color=colors,
                            text=[f"{v['backend_params']:,}" for v in backends.values()], textposition="outside",
                            name="back-end parameters", showlegend=False), row=1, col=1)
    figure.add_trace(go.Bar(x=labels, y=_means(steps, 1000), error_y=_error_y(steps, 1000), marker_color=colors,
                            name="step time (ms)", showlegend=False), row=1, col=2)
    figure.update_yaxes(type="log", row=1, col=1)
    figure.update_yaxes(title_text="ms per batch", row=1, col=2)
    size = result["parameters"]["image_size"]
    return _style(figure, "parameters", f"parameters and training speed at {size}×{size}", result)


def overfitting_figure(result: dict) -> go.Figure:
    """Train − validation accuracy gap per epoch, one line and band per back-end."""
    figure = go.Figure()
    for backend, values in result["overfitting"]["backends"].items():
        epochs = [row["epoch"] for row in values["per_epoch"]]
        figure.add_traces(_band_traces(epochs, [row["gap"] for row in values["per_epoch"]], backend,
                                       backend_label(backend)))
    figure.add_hline(y=0, line={"color": "#999999", "width": 1})
    figure.update_layout(xaxis_title="epoch", yaxis_title="train − validation accuracy", yaxis_tickformat=".0%")
    return _style(figure, "overfitting", "overfitting = training accuracy minus validation accuracy", result)


def _message_figure(text: str, claim: str, title: str, result: dict) -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    figure.update_layout(xaxis_visible=False, yaxis_visible=False)
    return _style(figure, claim, title, result)


def localization_figure(result: dict) -> go.Figure:
    """Pointing game and energy in box per back-end, against a uniform map's score (dashed)."""
    localization, title = result["localization"], "do the maps point at the object?"
    if not localization["available"]:
        return _message_figure(f"Not measured: {localization['reason']}", "localization", title, result)
    figure = go.Figure()
    metrics = {"pointing_game": "pointing game (peak in box)", "energy_in_box": "map energy in box"}
    for backend, values in localization["backends"].items():
        spreads = [values[key] for key in metrics]
        figure.add_trace(go.Bar(x=list(metrics.values()), y=_means(spreads), error_y=_error_y(spreads),
                                name=f"{backend_label(backend)} ({values['method']})",
                                marker_color=backend_color(backend), meta={"backend": backend}))
    baseline = localization["baseline"]["mean"]
    figure.add_hline(y=baseline, line={"dash": "dash", "color": "#555555"},
                     annotation_text=f"uniform map: {baseline:.0%}", annotation_position="top left")
    figure.update_layout(barmode="group", yaxis_tickformat=".0%", yaxis_range=[0, 1.05], yaxis_title="score")
    return _style(figure, "localization", title, result)


def _consistency_traces(figure: go.Figure, consistency: dict, column: int) -> None:
    """Share of predictions unchanged vs shift (1-16 px), dotted lines at every full stride (8 px)."""
    for backend, by_shift in consistency.items():
        shifts = [int(shift) for shift in by_shift]
        for trace in _band_traces(shifts, list(by_shift.values()), backend, backend_label(backend)):
            trace.showlegend = False  # the accuracy panel's legend already names the back-ends
            trace.meta = {**trace.meta, "measure": "consistency"}
            figure.add_trace(trace, row=1, col=column)
    largest = max((int(shift) for by_shift in consistency.values() for shift in by_shift), default=0)
    for stride in range(HEAD_STRIDE, largest + 1, HEAD_STRIDE):
        figure.add_vline(x=stride, line={"dash": "dot", "color": "#999999", "width": 1}, row=1, col=column)
    figure.update_xaxes(title_text=f"shift (pixels; dotted: every {HEAD_STRIDE} px, the head's stride)",
                        dtick=2, row=1, col=column)
    figure.update_yaxes(tickformat=".0%", title_text="predictions unchanged", row=1, col=column)


def translation_figure(result: dict) -> go.Figure:
    """Accuracy vs shift, seen vs unseen object positions and, when measured, shift consistency, per back-end."""
    translation = result["translation"]
    titles = ["Test accuracy, images shifted left/right", "Trained on left-half objects"]
    if "consistency" in translation:
        titles.append("Shift consistency: same answer after the shift")
    figure = make_subplots(rows=1, cols=len(titles), subplot_titles=titles)
    for backend, values in translation["backends"].items():
        shifts = [row["shift"] for row in values["shift_accuracy"]]
        for trace in _band_traces(shifts, [row["accuracy"] for row in values["shift_accuracy"]], backend,
                                  backend_label(backend)):
            figure.add_trace(trace, row=1, col=1)
    labels = [backend_label(b) for b in translation["backends"]]
    colors = [backend_color(b) for b in translation["backends"]]
    for name, key, pattern in (("left half (held out)", "left_accuracy", ""), ("right half (unseen)", "right_accuracy", "/")):
        spreads = [values["unseen"][key] for values in translation["backends"].values()]
        figure.add_trace(go.Bar(x=labels, y=_means(spreads), error_y=_error_y(spreads), name=name,
                                marker={"color": colors, "pattern_shape": pattern}), row=1, col=2)
    chance = {"y": 0.5, "line": {"dash": "dot", "color": "#999999", "width": 1}}
    figure.add_hline(**chance, annotation_text="chance", annotation_position="bottom right", row=1, col=1)
    figure.add_hline(**chance, row=1, col=2)
    figure.update_xaxes(title_text="shift (pixels)", row=1, col=1)
    for column in (1, 2):
        figure.update_yaxes(tickformat=".0%", range=[0, 1.05], title_text="test accuracy", row=1, col=column)
    if "consistency" in translation:
        _consistency_traces(figure, translation["consistency"], column=3)
    figure.update_layout(barmode="group")
    return _style(figure, "translation", "robustness to translation", result)


FIGURES = {"parameters": parameters_figure, "overfitting": overfitting_figure,
           "localization": localization_figure, "translation": translation_figure}


def claim_figure(result: dict, claim: str) -> go.Figure:
    """The chart of one claim (a key of the registry); ValueError for an unknown claim."""
    check_claim(claim)
    return FIGURES[claim](result)


def _spread_columns(prefix: str, values: dict) -> dict:
    return {f"{prefix}_{key}": values[key] for key in ("mean", "std", "min", "max", "count")}


def claim_frame(result: dict, claim: str) -> pd.DataFrame:
    """The numbers behind one claim's chart, one row per back-end (and epoch or shift), for CSV export."""
    check_claim(claim)
    section, rows = result[claim], []
    for backend, values in section.get("backends", {}).items():
        base = {"backend": backend, "label": backend_label(backend)}
        if claim == "parameters":
            rows.append({**base, "backend_params": values["backend_params"], "total_params": values["total_params"],
                         **_spread_columns("step_seconds", values["step_seconds"])})
        elif claim == "overfitting":
            rows += [{**base, "epoch": row["epoch"], **_spread_columns("gap", row["gap"])} for row in values["per_epoch"]]
        elif claim == "localization":
            rows.append({**base, "method": values["method"], **_spread_columns("pointing_game", values["pointing_game"]),
                         **_spread_columns("energy_in_box", values["energy_in_box"]),
                         "uniform_baseline": section["baseline"]["mean"]})
        else:
            rows += [{**base, "test": f"shift {row['shift']} px", **_spread_columns("accuracy", row["accuracy"])}
                     for row in values["shift_accuracy"]]
            rows += [{**base, "test": name, **_spread_columns("accuracy", values["unseen"][key])}
                     for name, key in (("left half (held out)", "left_accuracy"), ("right half (unseen)", "right_accuracy"))]
            rows += [{**base, "test": f"consistency, shift {shift} px", **_spread_columns("consistency", values)}
                     for shift, values in section.get("consistency", {}).get(backend, {}).items()]
    return pd.DataFrame(rows)


def pooled_accuracy_figure(accuracies: dict, backends, own_run_ids=frozenset(), runs: int | None = None) -> go.Figure:
    """One dot per pooled run for each back-end's final validation accuracy; own_run_ids' dots are ringed
    (a visitor's own runs on a served page). Dots are spread sideways by a fixed offset per run, not at random,
    so the same runs draw the same picture."""
    figure = go.Figure()
    run_ids = sorted(accuracies)
    for position, backend in enumerate(backends):
        points = [(index, run_id, accuracies[run_id][backend]) for index, run_id in enumerate(run_ids)
                  if backend in accuracies[run_id]]
        offsets = [position + 0.3 * ((index % 7) / 6 - 0.5) for index, _, _ in points]
        own = [run_id in own_run_ids for _, run_id, _ in points]
        figure.add_trace(go.Scatter(
            x=offsets, y=[value for _, _, value in points], mode="markers", name=backend_label(backend),
            marker={"color": backend_color(backend), "size": [13 if mine else 8 for mine in own],
                    "line": {"width": [2.5 if mine else 0 for mine in own], "color": "black"}},
            hovertemplate=f"{backend_label(backend)}: %{{y:.3f}}<extra></extra>", meta={"backend": backend}))
    count = runs if runs is not None else len(run_ids)
    ringed = " · ringed: your runs" if own_run_ids & set(run_ids) else ""
    figure.update_layout(
        title={"text": f"Final validation accuracy, one dot per run<br><sup>{count} pooled runs{ringed}</sup>"},
        template="plotly_white", showlegend=False, margin={"t": 90}, yaxis_title="validation accuracy",
        xaxis={"tickvals": list(range(len(backends))), "ticktext": [backend_label(b) for b in backends],
               "range": [-0.6, len(backends) - 0.4]})
    return figure


def pooled_accuracy_frame(accuracies: dict, backends) -> pd.DataFrame:
    """The strip plot's numbers, one row per run and back-end (runs numbered, not named)."""
    rows = [{"run": index + 1, "backend": backend, "final_val_accuracy": accuracies[run_id][backend]}
            for index, run_id in enumerate(sorted(accuracies)) for backend in backends if backend in accuracies[run_id]]
    return pd.DataFrame(rows, columns=["run", "backend", "final_val_accuracy"])
