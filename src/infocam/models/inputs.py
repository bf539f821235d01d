"""How a model's inputs are made: channels and the normalisation of [0, 1] pixels.

Training stores it with the weights (``"input"`` in ``best.pt`` / ``last.pt``, see
:func:`infocam.training.fit`) so that whoever feeds the model images later (``infocam
localize``) converts them alike: grayscale for a 1-channel model, ``(x - mean) / std``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from infocam._imagenet import IMAGENET_MEAN, IMAGENET_STD
from infocam.errors import CheckpointError

__all__ = ["IMAGENET_INPUT", "InputSpec", "first_conv_channels"]

# ITU-R 601-2 luma, as PIL's convert("L"): RGB -> one channel for 1-channel models.
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class InputSpec:
    """``channels`` (1 or 3) and per-channel ``mean`` / ``std`` applied to [0, 1] pixels."""

    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if isinstance(self.channels, bool) or self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3; got {self.channels!r}")
        for name in ("mean", "std"):
            v = tuple(float(x) for x in getattr(self, name))
            if len(v) != self.channels or not all(math.isfinite(x) for x in v):
                raise ValueError(
                    f"{name} must be {self.channels} finite number(s), one per channel; got {v}"
                )
            object.__setattr__(self, name, v)
        if min(self.std) <= 0:
            raise ValueError(f"std must be positive; got {self.std}")

    @classmethod
    def unit(cls, channels: int) -> InputSpec:
        """[0, 1] pixels as they are (mean 0, std 1): e.g. cluttered digits."""
        return cls(channels, (0.0,) * channels, (1.0,) * channels)

    def to_dict(self) -> dict[str, Any]:
        return {"channels": self.channels, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_record(cls, record: Any, source: str) -> InputSpec:
        """The spec stored in a checkpoint; a malformed one raises ``CheckpointError``."""
        if not isinstance(record, Mapping):
            raise CheckpointError(f"{source}: its 'input' record is not a dict: {record!r}")
        try:
            return cls(int(record["channels"]), tuple(record["mean"]), tuple(record["std"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: its 'input' record is unusable ({exc})") from exc

    def prepare(self, rgb: torch.Tensor) -> torch.Tensor:
        """(3, H, W) RGB in [0, 1] -> the model's (channels, H, W) input."""
        x = rgb
        if self.channels == 1:
            luma = torch.tensor(_LUMA, dtype=x.dtype, device=x.device)[:, None, None]
            x = (x * luma).sum(0, keepdim=True)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device)[:, None, None]
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device)[:, None, None]
        return (x - mean) / std


IMAGENET_INPUT = InputSpec(3, IMAGENET_MEAN, IMAGENET_STD)


def first_conv_channels(model: nn.Module) -> int | None:
    """Input channels of the first ``Conv2d`` of ``model`` (None without one)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    return None
