"""Side-by-side parameter table for the chosen back-ends and image size."""

from __future__ import annotations

import streamlit as st

from dashboard.common import cached_parameter_table, export_buttons
from gapdemo.charts.parameters import backend_parameter_ratio, parameter_dataframe, parameter_figure
from gapdemo.model.backends import dense_after_flatten_params


# Head / back-end / total / trainable parameters, and how many times more fc has than gap.
def parameters_panel(config) -> None:
    backends, size = tuple(config.model.backends), config.data.image_size
    if not backends:
        st.info("Choose at least one back-end in the sidebar.")
        return
    table = cached_parameter_table(backends, size, config.model.dropout_rate)
    frame = parameter_dataframe(table)
    st.markdown(f"**Parameters at {size}×{size}** (every back-end sits on its own copy of the same conv head)")
    counts = {name: st.column_config.NumberColumn(format="localized") for name in frame.columns if "params" in name}
    st.dataframe(frame, column_config=counts, key="parameter_table")
    ratio = backend_parameter_ratio(table)
    if ratio is not None:
        st.markdown(f"FC's back-end has **{ratio:,.0f}×** the parameters of GAP's "
                    f"({table['fc']['backend_params']:,} vs {table['gap']['backend_params']:,}).")
    st.caption(f"The tutorial's example: a 7×7×64 map flattened into 500 dense units alone needs "
               f"{dense_after_flatten_params():,} parameters; GAP replaces all of that with 64 averages.")
    figure = parameter_figure(table)
    st.plotly_chart(figure, key="parameter_chart")
    export_buttons(figure, frame, f"parameters_{size}px", key="export_parameters")
