"""Loss and accuracy accumulated as sums on the device, reduced across processes once.

``accuracy = sum(correct) / sum(n)`` over the whole set (never an average of batch means);
per-class counts give per-class and balanced accuracy. Under DDP the sums are all-reduced
in one call, so the numbers equal a single process's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from infocam.training.distributed import DistContext, all_reduce_sum

__all__ = ["EpochMetrics", "MetricSums"]


@dataclass(frozen=True)
class EpochMetrics:
    """Loss (mean over samples), accuracy and per-class counts over one pass of a dataset."""

    loss: float
    accuracy: float
    n: int
    class_correct: tuple[int, ...] = field(default=(), repr=False)
    class_total: tuple[int, ...] = field(default=(), repr=False)

    @property
    def per_class_accuracy(self) -> list[float]:
        """Accuracy of each class (``nan`` for a class without samples)."""
        return [
            c / t if t else math.nan
            for c, t in zip(self.class_correct, self.class_total, strict=True)
        ]

    @property
    def balanced_accuracy(self) -> float:
        """Mean per-class accuracy over the classes that have samples."""
        accs = [a for a in self.per_class_accuracy if not math.isnan(a)]
        return sum(accs) / len(accs) if accs else math.nan

    def get(self, name: str) -> float:
        if name == "balanced_accuracy":
            return self.balanced_accuracy
        if name in ("loss", "accuracy"):
            return float(getattr(self, name))
        raise ValueError(f"metric must be 'loss', 'accuracy' or 'balanced_accuracy'; got {name!r}")

    @classmethod
    def from_dict(cls, record: dict[str, Any], prefix: str = "") -> EpochMetrics:
        """Inverse of ``to_dict(prefix, per_class=True)`` (e.g. from a history record)."""
        nan = math.nan
        return cls(
            loss=nan if record[f"{prefix}loss"] is None else record[f"{prefix}loss"],
            accuracy=nan if record[f"{prefix}accuracy"] is None else record[f"{prefix}accuracy"],
            n=record[f"{prefix}n"],
            class_correct=tuple(record.get(f"{prefix}class_correct", ())),
            class_total=tuple(record.get(f"{prefix}class_total", ())),
        )

    def to_dict(self, prefix: str = "", *, per_class: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            f"{prefix}loss": self.loss,
            f"{prefix}accuracy": self.accuracy,
            f"{prefix}balanced_accuracy": self.balanced_accuracy,
            f"{prefix}n": self.n,
        }
        if per_class:
            out[f"{prefix}class_correct"] = list(self.class_correct)
            out[f"{prefix}class_total"] = list(self.class_total)
        return out


class MetricSums:
    """Running sums of loss·n, correct and n (total and per class) on ``device``; no syncs."""

    def __init__(self, device: torch.device, num_classes: int = 0) -> None:
        self.device = device
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.float64, device=device)
        self.count = 0
        self.class_correct = torch.zeros(num_classes, dtype=torch.float64, device=device)
        self.class_total = torch.zeros(num_classes, dtype=torch.float64, device=device)

    @property
    def num_classes(self) -> int:
        return self.class_total.shape[0]

    def _grow(self, m: int) -> None:
        if m > self.num_classes:
            pad = m - self.num_classes
            self.class_correct = torch.cat([self.class_correct, self.class_correct.new_zeros(pad)])
            self.class_total = torch.cat([self.class_total, self.class_total.new_zeros(pad)])

    @torch.no_grad()
    def update(self, mean_loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``mean_loss`` is the batch mean, ``logits`` (n, M), ``target`` (n,)."""
        n = target.shape[0]
        if n == 0:
            return
        if logits.dim() != 2:
            raise ValueError(
                f"the model must return logits of shape (batch, classes); got {tuple(logits.shape)}"
            )
        m = logits.shape[1]
        self._grow(m)
        hit = (logits.argmax(dim=1) == target).double()
        self.loss_sum += mean_loss.detach().double() * n
        self.correct += hit.sum()
        self.count += n
        # One-hot sums rather than bincount(weights=...), which is non-deterministic on CUDA.
        onehot = torch.nn.functional.one_hot(target, self.num_classes).double()
        self.class_total += onehot.sum(dim=0)
        self.class_correct += hit @ onehot

    def state(self) -> dict[str, Any]:
        """Plain-data copy (for a mid-epoch checkpoint)."""
        return {
            "loss_sum": float(self.loss_sum),
            "correct": float(self.correct),
            "count": self.count,
            "class_correct": self.class_correct.cpu(),
            "class_total": self.class_total.cpu(),
        }

    def load(self, state: dict[str, Any]) -> None:
        self.loss_sum.fill_(state["loss_sum"])
        self.correct.fill_(state["correct"])
        self.count = int(state["count"])
        self.class_correct = state["class_correct"].to(self.device, torch.float64)
        self.class_total = state["class_total"].to(self.device, torch.float64)

    def running(self) -> tuple[float, float]:
        """(mean loss, accuracy) of this process so far; one device sync."""
        if self.count == 0:
            return math.nan, math.nan
        vals = torch.stack([self.loss_sum, self.correct]).tolist()
        return vals[0] / self.count, vals[1] / self.count

    def reduced_state(self, ctx: DistContext) -> dict[str, Any]:
        """:meth:`state` summed over all processes (every process gets it)."""
        if ctx.distributed:
            m = torch.tensor([float(self.num_classes)], device=self.device)
            torch.distributed.all_reduce(m, op=torch.distributed.ReduceOp.MAX)
            self._grow(int(m.item()))
        m = self.num_classes
        packed = torch.cat(
            [
                torch.stack(
                    [self.loss_sum, self.correct, self.loss_sum.new_tensor(float(self.count))]
                ),
                self.class_correct,
                self.class_total,
            ]
        )
        packed = all_reduce_sum(packed, ctx).cpu()
        loss_sum, correct, count = packed[:3].tolist()
        return {
            "loss_sum": loss_sum,
            "correct": correct,
            "count": round(count),
            "class_correct": packed[3 : 3 + m].clone(),
            "class_total": packed[3 + m :].clone(),
        }

    def reduce(self, ctx: DistContext) -> EpochMetrics:
        """Sum over all processes (one all-reduce) and return the metrics."""
        s = self.reduced_state(ctx)
        n, loss_sum, correct = s["count"], s["loss_sum"], s["correct"]
        return EpochMetrics(
            loss=loss_sum / n if n else math.nan,
            accuracy=correct / n if n else math.nan,
            n=n,
            class_correct=tuple(round(v) for v in s["class_correct"].tolist()),
            class_total=tuple(round(v) for v in s["class_total"].tolist()),
        )
