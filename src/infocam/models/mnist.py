"""The paper's MNIST classifier (Section 4, Table 3)."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from infocam.models._common import check_num_classes, check_unit_interval
from infocam.models.weights import WeightsLike, load_weights

__all__ = ["MNISTCNN", "mnist_cnn"]


class MNISTCNN(nn.Module):
    """Two convolutions, each followed by max-pooling and ReLU, then two linear layers.

    The paper gives only this structure; the sizes are those of the classic PyTorch MNIST
    example (pytorch/examples ``mnist/main.py``, 2017-2018), which has exactly it:

    ``conv1`` 1->10 (5x5) -> ``pool1`` 2x2 -> ``relu1`` -> ``conv2`` 10->20 (5x5) -> ``pool2``
    -> ``relu2`` -> flatten (20*4*4 = 320 at 28 px) -> ``fc1`` 320->50 -> ``relu3`` -> ``fc2``
    50->num_classes. The paper mentions no dropout, so ``dropout=0.0`` by default; a positive
    value adds the example's ``Dropout2d`` after ``conv2`` and ``Dropout`` after ``relu3``.

    Attributes:
        features: the convolutional part, ``(N, in_channels, S, S) -> (N, 20, s, s)``.
        classifier: flatten + the two linear layers; ``classifier.fc2`` gives the logits.
    """

    def __init__(
        self,
        num_classes: int = 10,
        *,
        in_channels: int = 1,
        image_size: int = 28,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        num_classes = check_num_classes(num_classes)
        in_channels = check_num_classes(in_channels, "in_channels")
        image_size = check_num_classes(image_size, "image_size")
        dropout = check_unit_interval(dropout, "dropout")
        side = ((image_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(
                f"image_size must be >= 16 for two 5x5 convs and pools; got {image_size}"
            )
        conv: list[tuple[str, nn.Module]] = [
            ("conv1", nn.Conv2d(in_channels, 10, kernel_size=5)),
            ("pool1", nn.MaxPool2d(2)),
            ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(10, 20, kernel_size=5)),
        ]
        if dropout > 0:
            conv.append(("drop2", nn.Dropout2d(dropout)))
        conv += [("pool2", nn.MaxPool2d(2)), ("relu2", nn.ReLU())]
        head: list[tuple[str, nn.Module]] = [
            ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(20 * side * side, 50)),
            ("relu3", nn.ReLU()),
        ]
        if dropout > 0:
            head.append(("drop3", nn.Dropout(dropout)))
        head.append(("fc2", nn.Linear(50, num_classes)))
        self.features = nn.Sequential(OrderedDict(conv))
        self.classifier = nn.Sequential(OrderedDict(head))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def mnist_cnn(
    num_classes: int = 10,
    weights: WeightsLike = None,
    *,
    in_channels: int = 1,
    image_size: int = 28,
    dropout: float = 0.0,
) -> MNISTCNN:
    """:class:`MNISTCNN` (21,840 parameters for 10 classes), optionally loaded from a file."""
    model = MNISTCNN(num_classes, in_channels=in_channels, image_size=image_size, dropout=dropout)
    load_weights(model, weights, arch="mnist_cnn")
    return model
