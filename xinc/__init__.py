"""xinc: explain implicit neural representations by their per-neuron contribution maps."""

__version__ = "0.1.0"
