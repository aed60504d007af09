"""The Claims tab's pooled view: every finished run that shares the chosen settings is one sample of the claims.

Reads run folders only (gapdemo.claims.pool); runs not measured yet are measured by a job of the page's one
queue (gapdemo.jobs.child_job.PoolMeasureJob), never in this process. Served, visitors see the shared
settings, the numbers and the dots, never another visitor's run ids; their own runs' dots are ringed.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.common import POLL_SECONDS, export_buttons
from dashboard.visitor import served_rules_apply, visitor_id
from gapdemo.claims import CLAIMS
from gapdemo.claims.charts import pooled_accuracy_figure, pooled_accuracy_frame
from gapdemo.claims.groups import scan_pool
from gapdemo.claims.pool import pooled_claims
from gapdemo.claims.pool_table import claim_verdicts, pooled_rows
from gapdemo.export.bundle import files_zip
from gapdemo.export.formats import dataframe_to_csv, figure_to_html

GROUP_KEY = "pool_group"  # the chosen group's settings key, in st.session_state
SHOWN_SKIPPED = 5  # sentences of skipped folders shown on a local page; more are counted


# The pooled view, redrawn every POLL_SECONDS while the tab is open (live: the class's runs finish meanwhile).
def pooled_claims_view(scheduler, runs_dir: str, live: bool) -> None:
    st.subheader("The class's runs, pooled")
    st.caption("Every finished run in the runs folder with the same settings (only the seed differs) is one sample: "
               "each back-end is compared with GAP within each run (same batches), and the 95% interval of that "
               "difference over the runs decides each claim. More runs, narrower intervals.")
    st.fragment(run_every=POLL_SECONDS if live else None)(_pooled_body)(scheduler, runs_dir)


def _pooled_body(scheduler, runs_dir: str) -> None:
    scan, served = scan_pool(runs_dir), served_rules_apply()
    _left_out_note(scan, served)
    if not scan.groups:
        st.info("No two finished runs share their settings yet. Runs with the same settings and different seeds "
                "pool here as they finish: a class that trains the defaults fills this table.")
        return
    group = _choose_group(scan)
    pooled = pooled_claims(runs_dir, group.key, scan=scan)  # reads only: no TensorFlow here
    _keep_measuring(scheduler, runs_dir, pooled, served)
    if pooled.runs == 0:
        return
    public = pooled.to_public()
    for heading, verdict in claim_verdicts(public):
        st.markdown(f"**{heading}** — {verdict}")
    st.caption(f"n = {pooled.runs} runs; difference = the back-end minus GAP, within each run, in brackets its "
               f"{public['interval']}.")
    table = pd.DataFrame(pooled_rows(public)).round(4)
    with st.expander("Every measure: each back-end's mean ± std, each pair's difference"):
        st.dataframe(table, hide_index=True, key="pooled_table")
    with st.expander("The claims in sentences (means and ranges over the runs)"):
        for key, claim in CLAIMS.items():
            st.markdown(f"**{claim.heading}** — {public['verdicts'].get(key, 'not measured')}")
    own = scheduler.run_ids_of(visitor_id()) if served else frozenset()
    figure = pooled_accuracy_figure(pooled.accuracies, group.backends, own, pooled.runs)
    st.plotly_chart(figure, key="pooled_strip")
    export_buttons(figure, pooled_accuracy_frame(pooled.accuracies, group.backends), f"pooled_{group.key}_accuracy",
                   key="export_pooled_strip")
    _table_downloads(table, figure, pooled, served)


def _left_out_note(scan, served: bool) -> None:
    """One line for the runs not pooled; served, skipped folders are counted, not named (their names are ids)."""
    lines = [scan.left_out_line()] if scan.left_out else []
    if scan.skipped and served:
        lines.append(f"{len(scan.skipped)} run folder(s) could not be read and were skipped.")
    elif scan.skipped:
        lines += scan.skipped[:SHOWN_SKIPPED] + ([f"…and {len(scan.skipped) - SHOWN_SKIPPED} more skipped."]
                                                 if len(scan.skipped) > SHOWN_SKIPPED else [])
    for line in filter(None, lines):
        st.caption(line)


# The settings groups with 2 or more finished runs, largest first; returns the chosen one.
def _choose_group(scan):
    labels = {group.key: f"{group.description()} — {group.runs} runs" for group in scan.groups}
    if st.session_state.get(GROUP_KEY) not in labels:
        st.session_state[GROUP_KEY] = scan.groups[0].key
    key = st.selectbox("Settings", list(labels), format_func=labels.get, key=GROUP_KEY,
                       help="Each choice pools the finished runs that share these settings; only the seed differs.")
    return scan.find(key)


def _keep_measuring(scheduler, runs_dir: str, pooled, served: bool) -> None:
    """Queue the measuring of the group's new runs unless a measuring job waits or runs already."""
    for sentence in pooled.skipped[:SHOWN_SKIPPED] if not served else []:
        st.caption(sentence)
    if not pooled.unmeasured:
        return
    busy = any(not job.is_done() for job in scheduler.jobs("pool"))
    if not busy:
        try:
            scheduler.submit_pool_measuring(runs_dir, pooled.group.key, served=served)
        except ValueError:  # the queue is full: the next redraw asks again
            pass
    st.caption(f"Measuring {len(pooled.unmeasured)} new run(s) in the background (a job in the queue, about "
               "25 s each at the default settings); the table grows as they are done." if pooled.runs else
               f"Measuring the group's {len(pooled.unmeasured)} runs in the background; the table shows when done.")


def _table_downloads(table: pd.DataFrame, figure, pooled, served: bool) -> None:
    """The table as CSV; on a local page (or for the operator) a zip that also lists the pooled run ids."""
    name = f"pooled_{pooled.group.key}"
    csv_column, zip_column = st.columns(2)
    csv_column.download_button("⬇ Table CSV", data=lambda: dataframe_to_csv(table), file_name=f"{name}.csv",
                               mime="text/csv", key="pooled_table_csv", on_click="ignore")
    if not served:
        zip_column.download_button(
            "⬇ Zip (table, chart, run ids)", file_name=f"{name}.zip", mime="application/zip", key="pooled_zip",
            on_click="ignore", data=lambda: files_zip(
                {f"{name}.csv": dataframe_to_csv(table), f"{name}_accuracy.html": figure_to_html(figure),
                 "run_ids.txt": ("\n".join(pooled.run_ids) + "\n").encode()},
                [f"gapdemo pooled claims: {pooled.group.description()}", f"{pooled.runs} runs pooled"]))
