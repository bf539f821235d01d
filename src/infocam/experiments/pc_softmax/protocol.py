"""Table 3's protocol: the methods, their losses and prediction rules, the paper's numbers.

Methods (``p`` = the empirical class prior of the training set, ``class_prior(train_labels)``):

* ``softmax``: cross-entropy; prediction ``predict(n) = argmax_y n_y``.
* ``pc-softmax``: PC-softmax cross-entropy ``-log_pc_softmax(n, p)_y``; prediction
  ``predict(n) = argmax_y n_y`` (balanced target distribution).
* ``weighted-ce``: cross-entropy with class weights ``w_y = (1/p_y) / mean_k(1/p_k)``
  (imbalanced settings only: on a balanced set the weights are all 1 and it *is* softmax).
* ``logit-adjusted``: no training of its own; the ``softmax`` model's test logits with
  post-hoc logit adjustment ``predict(n, train_prior=p) = argmax_y (n_y - log p_y)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from infocam._validation import ArrayLike
from infocam.softmax import PCSoftmaxCrossEntropy, class_prior

METHODS = ("softmax", "pc-softmax", "weighted-ce", "logit-adjusted")
TRAINED = ("softmax", "pc-softmax", "weighted-ce")
SETTINGS = ("balanced", "imbalanced")

PRIOR_RULE = (
    "PC-softmax is trained with the empirical class prior of the training set, "
    "p = class_prior(train_labels)"
)
PREDICTION_RULES = {
    "softmax": "predict(logits) = argmax_y n_y",
    "pc-softmax": "predict(logits) = argmax_y n_y (balanced target distribution)",
    "weighted-ce": "predict(logits) = argmax_y n_y; loss weights w_y = (1/p_y) / mean_k(1/p_k)",
    "logit-adjusted": "softmax model, predict(logits, train_prior=p) = argmax_y (n_y - log p_y)",
}
SELECTION_RULE = (
    "best epoch by validation balanced accuracy (each model's own argmax rule); the test "
    "data is used once, at the end"
)

# Table 3 of the paper (percent): (softmax, PC-softmax); a star marks p < 0.05 (Mann-Whitney).
PAPER_TABLE3: dict[str, dict[str, dict[str, tuple[str, str]]]] = {
    "mnist": {
        "balanced": {"micro": ("97.95", "97.91"), "per_class": ("97.95", "97.91")},
        "imbalanced": {"micro": ("96.81", "96.86"), "per_class": ("95.05", "96.30*")},
    },
    "cub": {
        "balanced": {"micro": ("89.23", "89.18"), "per_class": ("89.21", "89.16")},
        "imbalanced": {"micro": ("89.21", "89.73*"), "per_class": ("84.63", "87.69*")},
    },
}


@dataclass
class Setting:
    """One training set of one seed, with its validation and test data.

    ``train``/``val``/``test`` are what :func:`infocam.training.fit` takes (``(x, y)``
    tensors or Datasets). ``train_labels`` gives the prior; ``rare_classes`` are the classes
    that were subsampled (empty when balanced).
    """

    name: str
    seed: int
    train: Any
    val: Any
    test: Any
    train_labels: torch.Tensor
    num_classes: int
    rare_classes: list[int] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def prior(self) -> torch.Tensor:
        return class_prior(self.train_labels, self.num_classes, dtype=torch.float64)


def class_weights(prior: ArrayLike) -> torch.Tensor:
    """Inverse-frequency class weights ``w_y = (1/p_y) / mean_k(1/p_k)`` (mean weight 1)."""
    p = torch.as_tensor(prior, dtype=torch.float64)
    if p.dim() != 1 or p.numel() == 0 or not bool((p > 0).all()):
        raise ValueError(f"prior must be a 1-D tensor of positive frequencies; got {p.tolist()}")
    inv = 1.0 / p
    return (inv / inv.mean()).to(torch.float32)


class _WeightedCrossEntropy(nn.Module):
    """Class-weighted cross-entropy, ``sum_i w_{y_i} l_i / sum_i w_{y_i}`` (torch's mean)."""

    weight: torch.Tensor

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, weight=self.weight.to(logits.dtype))


class _FollowDevice:
    """Call a loss module, moving it to the logits' device first (fit moves only the model)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        buf = next(self.module.buffers(), None)
        if buf is not None and buf.device != logits.device:
            self.module.to(logits.device)
        return self.module(logits, target)


def make_loss(method: str, prior: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], Any]:
    """The training loss of ``method`` on logits (prior: the training set's class prior)."""
    if method == "softmax":
        return F.cross_entropy
    if method == "pc-softmax":
        return _FollowDevice(PCSoftmaxCrossEntropy(prior))
    if method == "weighted-ce":
        return _FollowDevice(_WeightedCrossEntropy(class_weights(prior)))
    raise ValueError(f"method must be one of {', '.join(TRAINED)}; got {method!r}")
