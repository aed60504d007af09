"""Where each back-end goes wrong: confusion matrices of a finished run and a gallery of its mistakes."""

from __future__ import annotations

import streamlit as st

from dashboard.common import export_buttons
from dashboard.run_models import cached_models
from dashboard.visitor import page_is_served, served_rules_apply
from gapdemo.data.audience import serving_visitors
from gapdemo.insight.evaluation import check_evaluable, evaluate_run, explain_images
from gapdemo.insight.evaluation_charts import confusion_figure, per_class_frame
from gapdemo.insight.predictions import filter_mistakes, rank_by_confidence
from gapdemo.model.backends import BACKENDS
from gapdemo.runs import list_runs, models_signature
from gapdemo.validation import stored_data_config

GALLERY_SIZE = 12  # mistakes shown at once, most confident first
GALLERY_COLUMNS = 4
TILE_WIDTH = 200  # pixels on the page; small test images are scaled up by the browser


# The evaluation stays in memory per run (the test images are in it: no copy per rerun); the models are the
# Classify tab's too (dashboard.run_models). signature: gapdemo.runs.models_signature, changing with the models.
@st.cache_resource(max_entries=2, show_spinner="Evaluating every back-end on the test split…")
def _cached_evaluation(run_dir: str, signature: tuple, served: bool):
    return evaluate_run(run_dir, cached_models(run_dir, signature), served=served)


@st.cache_data(max_entries=64, show_spinner=False)
def _cached_overlays(run_dir: str, signature: tuple, backend: str, indices: tuple, served: bool):
    evaluation = _cached_evaluation(run_dir, signature, served)
    return explain_images(cached_models(run_dir, signature)[backend], backend, evaluation.images[list(indices)])


def _label(backend: str) -> str:
    return BACKENDS[backend].label if backend in BACKENDS else backend


def newest_finished_index(candidates: list) -> int | None:
    """Where the newest finished run stands among the candidates (newest first), or None when none finished."""
    return next((index for index, summary in enumerate(candidates) if summary.state == "finished"), None)


# The run to evaluate (the newest finished one unless the user picks another),
# or None (with a message) when none can be.
def _choose_run(runs_dir: str):
    candidates = [summary for summary in list_runs(runs_dir) if models_signature(str(summary.run_dir))]
    if not candidates:
        st.info("No run with saved models yet: train one, then see here where each back-end goes wrong.")
        return None
    # Plain strings (AppTest drives them reliably) that stay the same when the run's state changes.
    by_name = {f"{s.run_id} · {', '.join(s.backends)}": s for s in candidates}
    chosen = st.selectbox("Run", list(by_name), index=newest_finished_index(candidates), key="evaluation_run",
                          placeholder="Choose a run to evaluate")
    if chosen is None:
        return None
    summary = by_name[chosen]
    try:
        check_evaluable(summary.run_dir)
    except ValueError as error:
        st.info(f"{str(error)[0].upper()}{str(error)[1:]}.")
        return None
    if summary.state != "finished":
        ended = {"stopped": "was stopped", "interrupted": "was interrupted", "failed": "failed"}.get(summary.state,
                                                                                                    summary.state)
        st.warning(f"This run {ended} after {summary.epochs_completed} of {summary.epochs} epochs: "
                   "these are the models of its last completed epoch.")
    return summary


# Evaluate the run (cached); None with an error message when its models or data cannot be loaded, or its stored
# settings may not draw data here (a planted config.json: gapdemo.validation.stored_data_config, asked at every draw).
def _evaluate(summary):
    run_dir = str(summary.run_dir)
    # Served, a data error reads as its public sentence: every visitor sees it, the operator too.
    with serving_visitors(page_is_served()):
        try:
            stored_data_config(run_dir, served=served_rules_apply())
            return _cached_evaluation(run_dir, models_signature(run_dir), served_rules_apply())  # data under the roots
        except (ValueError, OSError) as error:  # data gone, unreadable model files: say so, no traceback
            st.error(f"Cannot evaluate run {summary.run_id}: {error}")
        except Exception as error:  # anything else still reaches the user as one sentence
            st.error(f"Cannot evaluate run {summary.run_id}: {type(error).__name__}: {error}")
    return None


# The confusion matrices side by side and the per-class numbers under them.
def _confusion_section(evaluation) -> None:
    confusions = {backend: report["confusion"] for backend, report in evaluation.reports.items()}
    figure = confusion_figure(confusions, evaluation.class_names)
    st.plotly_chart(figure, key="confusion_chart")
    frame = per_class_frame(evaluation.reports, evaluation.class_names)
    st.dataframe(frame, hide_index=True, key="per_class_table", column_config={
        name: st.column_config.NumberColumn(format="%.3f") for name in ("Per-class accuracy (recall)", "Precision")})
    export_buttons(figure, frame, f"{evaluation.run_id}_confusion", key="export_confusion")
    st.caption(f"{len(evaluation.labels)} test images, loaded again with the run's data settings, "
               f"after epoch {evaluation.epochs_completed}. Rows: the true class; columns: the class predicted.")


# Which mistakes to show: whose, which cell, and what another back-end said.
def _gallery_filters(evaluation) -> tuple[str, int | None, str | None]:
    backend_column, cell_column, other_column = st.columns(3)
    backends = {_label(backend): backend for backend in evaluation.reports}
    backend = backends[backend_column.radio("Mistakes of", list(backends), horizontal=True, key="mistakes_backend")]
    names = evaluation.class_names
    cells = {"every mistake": None, **{f"true {name} called {names[1 - index]}": index for index, name in enumerate(names)}}
    true_class = cells[cell_column.selectbox("Cell", list(cells), key="mistakes_cell")]
    others = {"said anything": None,
              **{f"{label} got it right": key for label, key in backends.items() if key != backend}}
    right_backend = others[other_column.selectbox("Another back-end", list(others), key="mistakes_right")]
    return backend, true_class, right_backend


def _tile_caption(evaluation, backend: str, index: int) -> str:
    answers = evaluation.answers(index)
    own = answers[backend]
    lines = [f"**#{index}** · true **{evaluation.class_names[evaluation.labels[index]]}** · "
             f"{_label(backend)}: {own['label']} {own['probability']:.0%}"]
    for other, answer in answers.items():
        if other != backend:
            verdict = ":green[right]" if answer["correct"] else ":red[wrong]"
            lines.append(f"{_label(other)}: {answer['label']} {answer['probability']:.0%} · {verdict}")
    return "  \n".join(lines)


# The gallery: each mistake with its heat map and what the other back-ends said.
def _gallery(evaluation, run_dir: str) -> None:
    st.subheader("Misclassified test images")
    backend, true_class, right_backend = _gallery_filters(evaluation)
    chosen = filter_mistakes(evaluation.labels, evaluation.predicted(), backend, true_class, right_backend)
    ranked = rank_by_confidence(chosen, evaluation.probabilities[backend])
    if len(ranked) == 0:
        st.info("No test image matches: this back-end makes no such mistake on this run.")
        return
    shown = tuple(int(index) for index in ranked[:GALLERY_SIZE])
    tiles, method = _cached_overlays(run_dir, models_signature(run_dir), backend, shown, served_rules_apply())
    heat_maps = st.toggle("Heat maps", value=True, key="mistakes_heat_maps")
    st.caption(f"{len(shown)} of {len(ranked)} matching images, the most confident mistakes first. "
               + (f"Heat map: {method} of {_label(backend)} for the class it predicted (red = where it looked most)."
                  if heat_maps else "Heat maps off: the test images as the models saw them."))
    if not heat_maps:
        tiles = evaluation.images[list(shown)]
    for start in range(0, len(shown), GALLERY_COLUMNS):
        for column, position in zip(st.columns(GALLERY_COLUMNS), range(start, min(start + GALLERY_COLUMNS, len(shown))),
                                    strict=False):
            column.image(tiles[position], width=TILE_WIDTH)
            column.markdown(_tile_caption(evaluation, backend, shown[position]))


# The mistakes tab.
def evaluation_panel(runs_dir: str) -> None:
    st.caption("Where each back-end goes wrong on the test split of a finished run: the confusion matrices, "
               "then the misclassified images with where the back-end looked, and what the others said. "
               "Images that one back-end gets wrong and another right are the most telling.")
    summary = _choose_run(runs_dir)
    if summary is None:
        return
    evaluation = _evaluate(summary)
    if evaluation is None:
        return
    _confusion_section(evaluation)
    _gallery(evaluation, str(summary.run_dir))
