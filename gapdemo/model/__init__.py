"""The networks: the tutorial's conv head and the back-end registry (backends), the lockstep training model,
batch-norm recalibration, arithmetic precision, the variable dropout layer and the cache of compiled models."""
