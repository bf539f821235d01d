"""infocam: a softmax classifier is a mutual-information estimator.

Measure I(X; Y) with a classifier (with a standard error), train fair to rare classes with
PC-softmax, and localise objects from class labels alone with infoCAM.
"""

from infocam.mi import ClassifierMIEstimator, MIEstimate, mutual_information, pointwise_mi
from infocam.mixtures import GaussianMixture
from infocam.softmax import (
    PCSoftmaxCrossEntropy,
    class_prior,
    log_pc_softmax,
    pc_softmax,
    pc_softmax_cross_entropy,
    predict,
)

__version__ = "0.1.0"

__all__ = [
    "ClassifierMIEstimator",
    "GaussianMixture",
    "MIEstimate",
    "PCSoftmaxCrossEntropy",
    "__version__",
    "class_prior",
    "log_pc_softmax",
    "mutual_information",
    "pc_softmax",
    "pc_softmax_cross_entropy",
    "pointwise_mi",
    "predict",
]
