"""Argument checks shared by the model factories."""

from __future__ import annotations

import numbers


def check_num_classes(num_classes: object, name: str = "num_classes") -> int:
    """Return ``num_classes`` as an int >= 1, or raise naming the argument."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"{name} must be a positive int; got {type(num_classes).__name__}")
    if num_classes < 1:
        raise ValueError(f"{name} must be >= 1; got {num_classes}")
    return int(num_classes)


def check_unit_interval(value: object, name: str) -> float:
    """Return ``value`` as a float in [0, 1], or raise naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1]; got {type(value).__name__}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1]; got {value}")
    return float(value)
