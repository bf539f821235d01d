"""Datasets: real MNIST / Fashion-MNIST, CUB-200-2011, Tiny-ImageNet, synthetic cluttered digits.

Every localisation dataset yields ``(image, label, boxes)`` with ``boxes`` a ``(G, 4)`` float32
tensor of INCLUSIVE pixel coordinates ``x1, y1, x2, y2`` in the returned image (a box covers
the pixels ``x1..x2`` and ``y1..y2``; its width is ``x2 - x1 + 1``). The box-aware transforms
in :mod:`infocam.data.transforms` keep boxes consistent with resize, crop and flip.
"""

import importlib
from typing import Any

# Each public name and the module it lives in, imported on first use: reading a table
# (infocam mi) or MNIST does not load torchvision, which only the image datasets need.
_WHERE = {
    "CUB200": "cub",
    "ClutteredDigits": "cluttered",
    "IDXFormatError": "_idx",
    "MNISTData": "mnist",
    "TinyImageNet": "tiny_imagenet",
    "balanced_subset": "imbalance",
    "imbalanced_subset": "imbalance",
    "load_fashion_mnist": "mnist",
    "load_mnist": "mnist",
    "read_idx": "_idx",
    "render_cluttered": "cluttered",
    "stratified_split": "imbalance",
}


def __getattr__(name: str) -> Any:
    if name == "transforms":
        return importlib.import_module(f"{__name__}.transforms")
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
