"""Attention-based Dropout Layer (Choe & Shim, CVPR 2019).

Matches the authors' PyTorch implementation (``wsol/method/adl.py`` in clovaai/wsolevaluation,
the maintained PyTorch port of junsukchoe/ADL) with two deliberate differences, neither of which
changes the distribution of the output:

- the Bernoulli draw is made on the input's device (the original draws on the CPU), so a CUDA
  forward pass needs no host tensor; on CPU the same seed gives the same draw as the original;
- the drop mask takes the input's dtype (the original casts to float32, which would upcast a
  float16/bfloat16 activation under autocast).
"""

from __future__ import annotations

import torch
from torch import nn

from infocam.models._common import check_unit_interval

__all__ = ["ADL"]


class ADL(nn.Module):
    """Attention-based Dropout Layer: identity in eval mode; in train mode, for ``x (N, C, H, W)``

    - attention ``a = mean_c x[:, c]`` of shape (N, 1, H, W);
    - drop mask ``d = 1[a < drop_threshold * max_{h,w} a]`` (the max is taken per sample);
    - importance map ``s = sigmoid(a)``;
    - one Bernoulli draw ``b ~ B(drop_rate)`` per forward call (shared by the whole batch):
      output ``x * (b * d + (1 - b) * s)``.

    The draw is ``b = floor(u + drop_rate)`` with ``u ~ U[0, 1)`` from the global torch
    generator, as in the original, so ``torch.manual_seed`` makes it repeatable. As in the
    original, gradients flow through the importance map, and when the per-sample maximum of
    ``a`` is negative the drop mask keeps every position (ADL normally follows a ReLU or a
    max-pool of ReLU maps, so ``a >= 0``).

    Args:
        drop_rate: probability of applying the drop mask (the paper's ``1 - keep_prob``),
            in [0, 1].
        drop_threshold: fraction of the per-sample maximum attention above which positions
            are dropped, in [0, 1].
    """

    def __init__(self, drop_rate: float = 0.75, drop_threshold: float = 0.8) -> None:
        super().__init__()
        self.drop_rate = check_unit_interval(drop_rate, "drop_rate")
        self.drop_threshold = check_unit_interval(drop_threshold, "drop_threshold")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        if x.dim() != 4:
            raise ValueError(f"ADL input must be 4-D (N, C, H, W); got shape {tuple(x.shape)}")
        attention = x.mean(dim=1, keepdim=True)
        importance_map = torch.sigmoid(attention)
        drop_mask = self.drop_mask(attention)
        # floor(u + p) is 1 with probability p: the original's draw, kept for seed parity.
        use_drop = torch.floor(torch.rand((), device=x.device) + self.drop_rate).to(x.dtype)
        return x * (use_drop * drop_mask + (1.0 - use_drop) * importance_map)

    def drop_mask(self, attention: torch.Tensor) -> torch.Tensor:
        """``1[a < drop_threshold * max a]`` per sample, for ``attention (N, 1, H, W)``."""
        peak = attention.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
        return (attention < peak * self.drop_threshold).to(attention.dtype)

    def extra_repr(self) -> str:
        return f"drop_rate={self.drop_rate}, drop_threshold={self.drop_threshold}"
