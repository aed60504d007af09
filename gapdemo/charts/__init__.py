"""Plotly figure builders: metrics DataFrames, probe arrays and parameter counts -> go.Figure, by what they draw.

    common          a back-end's colour and label (from its registry entry), checks of the input
    curves          accuracy and loss curves of a run (per batch, smoothed) and of runs overlaid
    probes          feature-map averages, class means and class activation maps of the probe images
    parameters      parameter counts: the conv head against each back-end, table and bars
    classification  one image's P(cat) and P(dog) per back-end
    results         a run's best and final accuracy per back-end, as a table

Nothing here imports TensorFlow, so runs on disk are charted from their CSV files alone. Import from the
module that draws what you need: this package re-exports nothing.
"""
