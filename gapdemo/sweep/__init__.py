"""Sweeps: run settings x seeds as trials, summarised as mean and spread over seeds.

grid.py (what may be swept, the trials), seeds.py (each repeat's seed, shared with the claims),
store.py (the sweep folder), summary.py (numbers), charts.py (figures), execution.py (plan, gate,
resume, train, result). The trials themselves train on Ray through gapdemo.cluster.
"""
