"""The MNIST CGNs (colored, double-colored and Wildlife MNIST)."""

from cgn.mnist.model import MnistCGN, MnistCGNConfig

__all__ = ["MnistCGN", "MnistCGNConfig"]
