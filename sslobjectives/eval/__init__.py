"""Evaluation of frozen representations: k-NN, linear probe, retrieval mAP, factor MI.

- :mod:`sslobjectives.eval.metrics`: :func:`knn_accuracy` (DINO's weighted k-NN,
  arXiv 2104.14294), :func:`linear_probe` (fixed logistic-regression protocol),
  :func:`retrieval_map` (mAP@all, cosine or Hamming, tie-aware), and
  :func:`evaluate_representation` which runs them all and returns a JSON-serialisable dict.
- :mod:`sslobjectives.eval.information`: mutual information between code bits / cluster
  assignments and latent factors, and :func:`bits_reused_across_classes` (the BITS claim
  that bits track attributes shared across classes, arXiv 2602.09764).

All functions are pure: torch tensors or numpy arrays in, floats, numpy arrays or dicts out;
bad input raises :class:`ValueError` naming the problem.
"""

from sslobjectives.eval.information import (
    FactorMI,
    assignment_factor_mutual_information,
    bit_factor_mutual_information,
    bits_reused_across_classes,
    discretize_factors,
)
from sslobjectives.eval.metrics import (
    evaluate_representation,
    knn_accuracy,
    linear_probe,
    retrieval_map,
)

__all__ = [
    "FactorMI",
    "assignment_factor_mutual_information",
    "bit_factor_mutual_information",
    "bits_reused_across_classes",
    "discretize_factors",
    "evaluate_representation",
    "knn_accuracy",
    "linear_probe",
    "retrieval_map",
]
