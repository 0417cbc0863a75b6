"""octo: an experiment and ablation platform for local (backprop-free) learning."""

__version__ = "0.1.0"
