"""Maps at image size: upsampling and per-map min-max normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from infocam._validation import ArrayLike, as_tensor, check_finite, check_floating, check_int

__all__ = ["UPSAMPLE_MODES", "normalize_maps", "upsample_maps"]

# torch's interpolation modes for (N, C, H, W) input
UPSAMPLE_MODES = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")


def check_maps(maps: ArrayLike, name: str = "maps", *, finite: bool = True) -> torch.Tensor:
    x = check_floating(as_tensor(maps, name), name)
    if x.dim() != 3:
        raise ValueError(f"{name} must have shape (N, H, W); got {tuple(x.shape)}")
    return check_finite(x, name) if finite else x


def upsample_maps(
    maps: torch.Tensor, size: int | Sequence[int], mode: str = "bilinear"
) -> torch.Tensor:
    """Resize maps (N, h, w) to ``size`` = (H, W) (or an int for square), ``align_corners=False``.

    ``mode`` is one of ``UPSAMPLE_MODES`` (torch's 2-D interpolation modes). Half-precision
    maps are resized in float32 (CPU kernels lack half support).
    """
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"mode must be one of {UPSAMPLE_MODES}; got {mode!r}")
    x = check_maps(maps)
    hw = _check_size(size)
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(x.unsqueeze(1), size=hw, mode=mode, **kwargs).squeeze(1)


def _check_size(size: Any) -> tuple[int, int]:
    """``size`` (an int, or (H, W) of ints) as (H, W), every side >= 1."""
    what = "size must be a positive int or a pair (H, W) of positive ints"
    pair = isinstance(size, Sequence) and not isinstance(size, str)
    if pair or (isinstance(size, torch.Tensor | np.ndarray) and size.ndim == 1):
        sides = list(size)
        if len(sides) != 2:
            raise ValueError(f"{what}; got {len(sides)} values {size!r}")
    else:
        sides = [size]
    try:
        hw = [check_int(v, "size", minimum=1) for v in sides]
    except TypeError:
        raise TypeError(f"{what}; got {size!r}") from None
    except ValueError:
        raise ValueError(f"{what}; got {size!r}") from None
    return (hw[0], hw[-1])


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each map of (N, H, W) to [0, 1]: ``(m - min) / (max - min)``.

    A constant map (max == min) becomes all zeros. NaN or inf raises ``ValueError``.
    """
    return normalized(check_maps(maps, finite=False))


def normalized(x: torch.Tensor) -> torch.Tensor:
    """Min-max per map; NaN/inf anywhere shows in min or max, so one small check suffices."""
    lo = x.amin((1, 2), keepdim=True)
    span = x.amax((1, 2), keepdim=True) - lo
    if not bool(torch.isfinite(span).all()):
        check_finite(x, "maps")
    return torch.where(span > 0, (x - lo) / torch.where(span > 0, span, 1), 0)
