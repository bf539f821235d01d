"""Models: GAP backbones for CAM (VGG16-GAP, ResNet-GAP, a small GAP CNN), ADL, the paper's
MNIST CNN, the MLP of the MI estimator, Inception-V3 for CUB, weight loading and a lookup by
name."""

from infocam.models.adl import ADL
from infocam.models.gap import GAPClassifier, resnet18_gap, resnet50_gap, small_gap_cnn, vgg16_gap
from infocam.models.inception import inception_logits, inception_loss, inception_v3
from infocam.models.mlp import mlp
from infocam.models.mnist import MNISTCNN, mnist_cnn
from infocam.models.registry import ARCHITECTURES, MODELS, get_model, list_models, load_classifier
from infocam.models.weights import load_weights

__all__ = [
    "ADL",
    "ARCHITECTURES",
    "MNISTCNN",
    "MODELS",
    "GAPClassifier",
    "get_model",
    "inception_logits",
    "inception_loss",
    "inception_v3",
    "list_models",
    "load_classifier",
    "load_weights",
    "mlp",
    "mnist_cnn",
    "resnet18_gap",
    "resnet50_gap",
    "small_gap_cnn",
    "vgg16_gap",
]
