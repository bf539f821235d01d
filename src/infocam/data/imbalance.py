"""Seeded class-wise subsets and splits: imbalanced and balanced subsets, stratified halves.

All functions are vectorised: each sample gets a random key from a seeded generator, samples
are sorted by (class, key), and a sample's rank within its class decides its fate. Results are
sorted index tensors (int64), so ``data[idx]`` keeps the original order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from infocam._validation import as_tensor, check_integer_labels
from infocam.mi._splits import rank_within_class

__all__ = ["balanced_subset", "imbalanced_subset", "stratified_split"]


def _labels(labels: Any) -> torch.Tensor:
    t = check_integer_labels(as_tensor(labels, "labels"), "labels")
    if t.dim() != 1:
        raise ValueError(f"labels must be 1-D; got shape {tuple(t.shape)}")
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"labels must be non-negative class indices; got min {int(t.min())}")
    return t.long().cpu()


def _class_ranks(labels: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random rank of each sample within its class (0..n_c-1), and the class counts."""
    g = torch.Generator().manual_seed(int(seed))
    keys = torch.rand(labels.numel(), generator=g, dtype=torch.float64)
    order = torch.argsort(keys)  # ranked by class, then random key
    in_order, counts = rank_within_class(labels[order], int(labels.max()) + 1)
    ranks = torch.empty_like(labels)
    ranks[order] = in_order
    return ranks, counts


def imbalanced_subset(
    labels: Any,
    classes: Sequence[int] = (0, 2, 4, 6, 8),
    keep: float = 0.5,
    seed: int = 0,
) -> torch.Tensor:
    """Indices keeping ``round(keep * n_c)`` random samples of each listed class and all others.

    The paper's imbalanced MNIST: "randomly drop one half of images for digit 0, 2, 4, 6 and 8"
    (``keep=0.5``). Rounding is half-to-even (as Python's ``round``).

    Args:
        labels: ``(N,)`` integer class indices (tensor, numpy array or sequence).
        classes: the classes to subsample.
        keep: fraction kept of each listed class, in [0, 1].
        seed: seed of the random choice.

    Returns:
        Sorted ``(K,)`` int64 index tensor into ``labels``.
    """
    y = _labels(labels)
    if not 0.0 <= float(keep) <= 1.0:
        raise ValueError(f"keep must be a fraction in [0, 1]; got {keep}")
    classes = list(classes)
    if any(isinstance(c, bool) or not isinstance(c, int | np.integer) for c in classes):
        raise TypeError(f"classes must be a sequence of ints; got {classes!r}")
    cls = torch.as_tensor(classes, dtype=torch.long)
    if cls.dim() != 1 or (cls.numel() and int(cls.min()) < 0):
        raise ValueError(f"classes must be a sequence of non-negative ints; got {classes!r}")
    if y.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    ranks, counts = _class_ranks(y, seed)
    n_classes = max(counts.numel(), int(cls.max()) + 1 if cls.numel() else 0)
    quota = torch.cat([counts, counts.new_zeros(n_classes - counts.numel())])
    listed = torch.zeros(n_classes, dtype=torch.bool)
    listed[cls] = True
    quota = torch.where(listed, torch.round(quota.double() * float(keep)).long(), quota)
    return torch.nonzero(ranks < quota[y]).flatten()


def balanced_subset(labels: Any, per_class: int | None = None, seed: int = 0) -> torch.Tensor:
    """Indices of ``per_class`` random samples of every class present.

    The paper's balanced MNIST: "a subset such that instance numbers for every class are all
    the same". ``per_class=None`` takes the size of the smallest class present.
    """
    y = _labels(labels)
    if y.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    ranks, counts = _class_ranks(y, seed)
    smallest = int(counts[counts > 0].min())
    if per_class is None:
        per_class = smallest
    if not isinstance(per_class, int) or isinstance(per_class, bool) or per_class < 0:
        raise TypeError(f"per_class must be a non-negative int or None; got {per_class!r}")
    if per_class > smallest:
        raise ValueError(
            f"per_class={per_class} exceeds the smallest class ({smallest} samples of class "
            f"{int(torch.nonzero(counts == smallest)[0])})"
        )
    return torch.nonzero(ranks < per_class).flatten()


def stratified_split(
    labels: Any, fraction: float = 0.5, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split every class at random into a first part of ``floor(fraction * n_c)`` and the rest.

    Used for the paper's split of an official validation/test set into a validation half and a
    test half ("we evenly split the original validation images to two data piles").

    Returns:
        ``(first, rest)``: sorted, disjoint int64 index tensors covering ``range(N)``.
    """
    y = _labels(labels)
    if not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"fraction must be in [0, 1]; got {fraction}")
    if y.numel() == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty.clone()
    ranks, counts = _class_ranks(y, seed)
    quota = torch.floor(counts.double() * float(fraction)).long()
    first = ranks < quota[y]
    return torch.nonzero(first).flatten(), torch.nonzero(~first).flatten()
