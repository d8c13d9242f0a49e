"""The invariant-classifier training job: real MNIST-variant data plus counterfactuals from cgn-service.

Depends only on the client SDK (cgn_client), torch and numpy, like any user's training job would.
"""

from cgn_classifier.model import HEADS, InvariantEnsemble

__all__ = ["HEADS", "InvariantEnsemble"]
