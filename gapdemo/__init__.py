"""gapdemo: see and measure why Global Average Pooling beats a fully connected classifier."""

import os

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) would bury the CLI's own output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
