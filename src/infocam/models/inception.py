"""torchvision Inception-V3 for fine-tuning on CUB-200-2011 (the paper's Table 3)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn
from torchvision.models import Inception_V3_Weights
from torchvision.models.inception import Inception3, InceptionOutputs

from infocam.models._common import check_num_classes
from infocam.models.weights import TorchvisionSource, WeightsLike, load_weights

__all__ = ["inception_logits", "inception_loss", "inception_v3"]

_HEAD_PREFIXES = ("fc.", "AuxLogits.fc.")


def inception_v3(
    num_classes: int,
    weights: WeightsLike = None,
    aux_logits: bool = True,
    *,
    transform_input: bool | None = None,
) -> Inception3:
    """torchvision's Inception-V3 (299x299 input) with new ``fc`` and ``AuxLogits.fc`` heads.

    In train mode with ``aux_logits=True`` the model returns torchvision's
    ``InceptionOutputs(logits, aux_logits)``; in eval mode a logits tensor. Use
    :func:`inception_loss` and :func:`inception_logits` to handle both in a generic loop.

    Args:
        num_classes: number of classes.
        weights: ``None``, a torchvision ``Inception_V3_Weights`` name (``"IMAGENET1K_V1"``),
            or a path / state dict. torchvision weights fill everything but ``fc`` and
            ``AuxLogits.fc`` (their auxiliary head is dropped when ``aux_logits=False``).
        aux_logits: keep the auxiliary classifier (used in training only).
        transform_input: torchvision's re-normalisation of ImageNet-normalised input to the
            [-1, 1] range the original Google weights expect. ``None`` means ``True`` when
            ``weights`` are given (as torchvision does for pretrained weights), else ``False``.
    """
    num_classes = check_num_classes(num_classes)
    if transform_input is None:
        transform_input = weights is not None
    model = Inception3(
        num_classes=num_classes,
        aux_logits=bool(aux_logits),
        transform_input=bool(transform_input),
        # torchvision's truncated-normal initialisation, skipped (as torchvision does) when
        # weights will overwrite it; the new heads then keep nn.Linear's default init.
        init_weights=weights is None,
    )

    def from_torchvision(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        drop = _HEAD_PREFIXES if aux_logits else (*_HEAD_PREFIXES, "AuxLogits.")
        return {k: v for k, v in state.items() if not k.startswith(drop)}

    load_weights(
        model,
        weights,
        torchvision=TorchvisionSource(Inception_V3_Weights, from_torchvision),
        head_prefixes=_HEAD_PREFIXES,
        arch="inception_v3",
    )
    return model


def inception_logits(outputs: torch.Tensor | InceptionOutputs) -> torch.Tensor:
    """The main logits of a model output: ``outputs.logits`` for ``InceptionOutputs``."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, InceptionOutputs):
        return outputs.logits
    raise TypeError(
        f"outputs must be a tensor or torchvision InceptionOutputs; got {type(outputs).__name__}"
    )


def inception_loss(
    outputs: torch.Tensor | InceptionOutputs,
    target: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | nn.Module,
    aux_weight: float = 0.4,
) -> torch.Tensor:
    """``loss_fn(logits, target) + aux_weight * loss_fn(aux_logits, target)``.

    The auxiliary term is added only when ``outputs`` carries auxiliary logits (train mode
    with ``aux_logits=True``); a plain tensor gives ``loss_fn(outputs, target)``, so any model
    can go through this function. 0.4 is the weight of torchvision's reference recipe.
    """
    if isinstance(aux_weight, bool) or not isinstance(aux_weight, int | float):
        raise TypeError(f"aux_weight must be a number; got {type(aux_weight).__name__}")
    if aux_weight < 0:
        raise ValueError(f"aux_weight must be >= 0; got {aux_weight}")
    loss = loss_fn(inception_logits(outputs), target)
    aux = outputs.aux_logits if isinstance(outputs, InceptionOutputs) else None
    if aux is not None:
        loss = loss + aux_weight * loss_fn(aux, target)
    return loss
