"""The optimiser and learning-rate schedule of a run, from its :class:`TrainConfig`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from infocam.training.config import TrainConfig

__all__ = ["build_optimizer", "build_scheduler", "make_optimizer"]


def build_optimizer(model: nn.Module, config: TrainConfig, optimizer: Any) -> torch.optim.Optimizer:
    """``optimizer`` as given (an Optimizer, or ``params -> Optimizer`` called on the model's
    parameters), else :func:`make_optimizer` over the trainable parameters."""
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if optimizer is not None:
        if not callable(optimizer):
            raise TypeError(
                "optimizer must be a torch.optim.Optimizer or a function params -> Optimizer; "
                f"got {type(optimizer).__name__}"
            )
        return optimizer(model.parameters())
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters (all have requires_grad=False)")
    return make_optimizer(params, config)


def make_optimizer(params: Iterable[Any], config: TrainConfig) -> torch.optim.Optimizer:
    """``config.optimizer`` (SGD with ``momentum``, Adam or AdamW) over ``params``: tensors or
    parameter groups (dicts), at ``config.lr`` and ``config.weight_decay``."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def build_scheduler(opt: torch.optim.Optimizer, config: TrainConfig, scheduler: Any) -> Any:
    if scheduler is not None:
        if hasattr(scheduler, "step") and hasattr(scheduler, "state_dict"):
            return scheduler
        if callable(scheduler):
            return scheduler(opt)
        raise TypeError(
            f"scheduler must be an LR scheduler or a function optimizer -> scheduler; "
            f"got {type(scheduler).__name__}"
        )
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=config.lr_step, gamma=config.lr_gamma)
    return None
