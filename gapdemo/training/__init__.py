"""Training a run: the Keras loop and its parts, its event hooks, the background job and its queue, the run
a cluster trains, curves as arrays and a failure told in one sentence."""
