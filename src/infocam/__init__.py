"""infocam: a softmax classifier is a mutual-information estimator.

Measure I(X; Y) with a classifier (with a standard error), train fair to rare classes with
PC-softmax, and localise objects from class labels alone with infoCAM.
"""

from infocam.mi import MIEstimate, mutual_information, pointwise_mi
from infocam.softmax import (
    PCSoftmaxCrossEntropy,
    class_prior,
    log_pc_softmax,
    pc_softmax,
    pc_softmax_cross_entropy,
    predict,
)

__version__ = "0.1.0"

# Subpackages that import torchvision (slow) load on first use: `infocam.models.vgg16_gap`
# works after a plain `import infocam`.
_LAZY_SUBMODULES = ("data", "models", "training")


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"infocam.{name}")
    raise AttributeError(f"module 'infocam' has no attribute {name!r}")


__all__ = [
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
