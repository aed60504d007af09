"""gapdemo: see and measure why Global Average Pooling beats a fully connected classifier."""

from gapdemo.quiet import install_hook

# TensorFlow's start-up chatter (oneDNN, CUDA probing) would bury the CLI's own output and the
# app's terminal; GAPDEMO_TF_LOGS=1 or the CLI's --verbose shows it (gapdemo.quiet).
install_hook()

__version__ = "0.1.0"
