"""Ray, for single runs, claims and sweeps alike.

connection.py (join a cluster at an address, or start one on loopback; reachability), trials.py (the
remote training task and Ray Tune trials, results brought home), collector.py (the actor on this node
that writes run folders as they arrive), single_run.py (one run as one task in a placement group).
"""
