"""Datasets: real MNIST / Fashion-MNIST, CUB-200-2011, Tiny-ImageNet, synthetic cluttered digits.

Every localisation dataset yields ``(image, label, boxes)`` with ``boxes`` a ``(G, 4)`` float32
tensor of INCLUSIVE pixel coordinates ``x1, y1, x2, y2`` in the returned image (a box covers
the pixels ``x1..x2`` and ``y1..y2``; its width is ``x2 - x1 + 1``). The box-aware transforms
in :mod:`infocam.data.transforms` keep boxes consistent with resize, crop and flip.
"""

from infocam.data import transforms
from infocam.data._idx import IDXFormatError, read_idx
from infocam.data.cluttered import ClutteredDigits, render_cluttered
from infocam.data.cub import CUB200
from infocam.data.imbalance import balanced_subset, imbalanced_subset, stratified_split
from infocam.data.mnist import MNISTData, load_fashion_mnist, load_mnist
from infocam.data.tiny_imagenet import TinyImageNet

__all__ = [
    "CUB200",
    "ClutteredDigits",
    "IDXFormatError",
    "MNISTData",
    "TinyImageNet",
    "balanced_subset",
    "imbalanced_subset",
    "load_fashion_mnist",
    "load_mnist",
    "read_idx",
    "render_cluttered",
    "stratified_split",
    "transforms",
]
