r"""Mutual information from a classifier's logits.

A classifier trained with PC-softmax cross-entropy has logits ``n`` with
``log_pc_softmax(n, p)_y ~= log p(y|x) / p(y)``, the point-wise mutual information (PMI).
Its mean over **held-out** samples estimates ``I(X; Y)``. By Barber-Agakov it is a lower
bound in expectation, so valid values lie in ``[0, H(Y)]`` up to sampling error; on the
training data it is biased upward. Nothing is clipped: the mean and its standard error are
reported as measured.

* :mod:`~infocam.mi.estimate`: ``pointwise_mi``, ``mutual_information``, ``MIEstimate``,
  ``NonFiniteEstimateError``;
* :mod:`~infocam.mi.estimator`: ``ClassifierMIEstimator`` (its stacked-MLP trainer and
  stratified splits are the private ``_stacked`` and ``_splits``, its robust feature scale
  ``_scale``).

Nothing here imports torchvision.
"""

from infocam.mi.estimate import (
    MIEstimate,
    NonFiniteEstimateError,
    mutual_information,
    pointwise_mi,
)
from infocam.mi.estimator import ClassifierMIEstimator

__all__ = [
    "ClassifierMIEstimator",
    "MIEstimate",
    "NonFiniteEstimateError",
    "mutual_information",
    "pointwise_mi",
]
