"""Sweeps: run settings x seeds as trials on Ray, summarised as mean and spread over seeds.

grid.py (what may be swept, the trials), seeds.py (each repeat's seed, shared with the claims),
cluster.py (Ray joined, or started on loopback), engine.py (Ray Tune, results brought home), store.py
(the sweep folder), summary.py (numbers), charts.py (figures), run.py (start to summary).
"""
