"""Counterfactual Generative Networks: independent mechanisms, the analytic composer, seeded noise.

This package is the core ML library: no web, queue or storage code lives here.
"""

from cgn.compose import compose
from cgn.mechanisms import MECHANISMS, CounterfactualModel, Mechanism

__all__ = ["MECHANISMS", "CounterfactualModel", "Mechanism", "compose"]
