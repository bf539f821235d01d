"""Look models up by name, so that command lines can take ``--arch NAME``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from infocam.models.gap import resnet18_gap, resnet50_gap, small_gap_cnn, vgg16_gap
from infocam.models.inception import inception_v3
from infocam.models.mnist import mnist_cnn
from infocam.models.weights import WeightsLike

__all__ = ["MODELS", "get_model", "list_models"]

# name -> factory(num_classes, weights=None, **kwargs)
MODELS: dict[str, Callable[..., nn.Module]] = {
    "vgg16_gap": vgg16_gap,
    "resnet50_gap": resnet50_gap,
    "resnet18_gap": resnet18_gap,
    "small_gap_cnn": small_gap_cnn,
    "mnist_cnn": mnist_cnn,
    "inception_v3": inception_v3,
}


def list_models() -> list[str]:
    """The names :func:`get_model` knows, sorted."""
    return sorted(MODELS)


def get_model(name: str, num_classes: int, weights: WeightsLike = None, **kwargs) -> nn.Module:
    """Build the model called ``name``: ``MODELS[name](num_classes, weights=weights, **kwargs)``.

    Names: ``vgg16_gap``, ``resnet50_gap``, ``resnet18_gap``, ``small_gap_cnn`` (these four
    also take ``adl=True``), ``mnist_cnn``, ``inception_v3``. ``-`` is read as ``_`` and case
    is ignored, so ``--arch VGG16-GAP`` works.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str; got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    if key not in MODELS:
        raise ValueError(f"unknown model name {name!r}; known: {', '.join(list_models())}")
    factory = MODELS[key]
    try:
        return factory(num_classes, weights=weights, **kwargs)
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):
            raise TypeError(f"model {key!r}: {exc}") from exc
        raise
