"""infocam: a softmax classifier is a mutual-information estimator.

Measure I(X; Y) with a classifier (with a standard error), train fair to rare classes with
PC-softmax, and localise objects from class labels alone with infoCAM.
"""

from infocam.cam import CAMExtractor, class_activation_maps
from infocam.localization import (
    LocalizationEvaluator,
    MaxBoxAccEvaluator,
    box_iou,
    boxes_from_maps,
    normalize_maps,
    upsample_maps,
)
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

# Subpackages that import torchvision (slow) load on first use: `infocam.models.vgg16_gap`
# works after a plain `import infocam`.
_LAZY_SUBMODULES = ("data", "models", "training")


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"infocam.{name}")
    raise AttributeError(f"module 'infocam' has no attribute {name!r}")


__all__ = [
    "CAMExtractor",
    "ClassifierMIEstimator",
    "GaussianMixture",
    "LocalizationEvaluator",
    "MIEstimate",
    "MaxBoxAccEvaluator",
    "PCSoftmaxCrossEntropy",
    "__version__",
    "box_iou",
    "boxes_from_maps",
    "class_activation_maps",
    "class_prior",
    "log_pc_softmax",
    "mutual_information",
    "normalize_maps",
    "pc_softmax",
    "pc_softmax_cross_entropy",
    "pointwise_mi",
    "predict",
    "upsample_maps",
]
