"""Models: GAP backbones for CAM and small classifiers (MLP, MNIST CNN)."""

from infocam.models.mlp import mlp  # noqa: F401
