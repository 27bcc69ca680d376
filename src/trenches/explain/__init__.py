"""Explanations of single predictions with LIME, stored per (version, pattern).

LIME explains one prediction by asking the model about many perturbed copies of the
pattern and fitting a weighted linear model (the *surrogate*) to its answers near the
pattern. The surrogate's weights say which features (or words) pushed the prediction
toward the predicted class (or up, for regression) and which pushed against it.

Each explanation is built with a fresh explainer seeded with ``seed``, so it does not
depend on what was explained before it, and the same settings give the same weights.
It is stored once per (version, pattern, method, settings): ``explanations.py``.
How a pattern's inputs meet LIME's explainers: ``explainers.py``.
"""

from trenches.explain.explainers import MISSING
from trenches.explain.explanations import METHODS, TRAINING_SAMPLE, Explanation, Explanations

__all__ = ["METHODS", "MISSING", "TRAINING_SAMPLE", "Explanation", "Explanations"]
