"""What :func:`~infocam.training.fit` and :func:`~infocam.training.evaluate` return or raise."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from infocam.training.metrics import EpochMetrics

__all__ = ["EvalResult", "TrainResult", "TrainingInterrupted", "TrainingOutOfMemoryError"]


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped :func:`fit` after a checkpoint was saved (``checkpoint``)."""

    def __init__(self, message: str, checkpoint: Path | None, signum: int) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint
        self.signum = signum


class TrainingOutOfMemoryError(torch.OutOfMemoryError):
    """The GPU ran out of memory; the message says which batch size to lower."""


@dataclass
class EvalResult:
    """Outputs of :func:`evaluate`: logits (N, M), targets (N,) in dataset order, metrics."""

    logits: torch.Tensor | None
    targets: torch.Tensor | None
    metrics: EpochMetrics


@dataclass
class TrainResult:
    """What :func:`fit` returns. Epochs are numbered from 1; ``history`` has one dict each."""

    model: nn.Module
    history: list[dict[str, Any]]
    metric: str
    best_epoch: int | None
    best_metric: float | None
    out: Path | None = None
    resumed_from: Path | None = None
    skipped: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def last(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}

    @property
    def best(self) -> dict[str, Any]:
        """The record of the epoch chosen on validation data (the last without it)."""
        if self.best_epoch is None:
            return self.last
        return next(r for r in self.history if r["epoch"] == self.best_epoch)

    @property
    def train_metrics(self) -> EpochMetrics | None:
        """Training metrics of the last epoch."""
        return EpochMetrics.from_dict(self.last, "train_") if self.history else None

    @property
    def val_metrics(self) -> EpochMetrics | None:
        """Validation metrics of the best epoch (per-class counts included)."""
        rec = self.best
        return EpochMetrics.from_dict(rec, "val_") if "val_n" in rec else None
