"""A multi-layer perceptron classifier: the paper's MI estimator network (3 x 100 ReLU units)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["mlp"]


def mlp(in_features: int, num_classes: int, hidden: Sequence[int] = (100, 100, 100)) -> nn.Module:
    """``Linear -> ReLU`` for each width in ``hidden``, then ``Linear`` to ``num_classes`` logits.

    ``hidden=()`` gives a linear (multinomial logistic) model.
    """
    for name, value in (("in_features", in_features), ("num_classes", num_classes)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    widths = [int(h) for h in hidden]
    if any(h < 1 for h in widths):
        raise ValueError(f"hidden must hold positive layer widths; got {tuple(hidden)!r}")
    layers: list[nn.Module] = []
    fan_in = in_features
    for width in widths:
        layers += [nn.Linear(fan_in, width), nn.ReLU()]
        fan_in = width
    layers.append(nn.Linear(fan_in, num_classes))
    return nn.Sequential(*layers)
