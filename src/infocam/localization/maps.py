"""Maps at image size: upsampling and per-map normalisation (min-max, or by the maximum)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from infocam._validation import ArrayLike, as_tensor, check_finite, check_floating, check_int

__all__ = ["NORMALIZATIONS", "UPSAMPLE_MODES", "normalize_maps", "upsample_maps"]

# How a map is brought to [0, 1] before a box threshold: "minmax" (wsolevaluation's, default)
# or "max" (the paper's "more than 20% of the maximum"; negative values never kept).
NORMALIZATIONS = ("minmax", "max")

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


def check_normalize(normalize: Any) -> str:
    """``normalize`` as one of :data:`NORMALIZATIONS`."""
    if not isinstance(normalize, str) or normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}; got {normalize!r}")
    return normalize


def normalize_maps(maps: torch.Tensor, normalize: str = "minmax") -> torch.Tensor:
    """Normalise each map of (N, H, W) to [0, 1].

    * ``"minmax"`` (default, as clovaai/wsolevaluation): ``(m - min) / (max - min)``; a
      constant map (max == min) becomes all zeros. Then ``> t`` keeps ``m > min + t (max -
      min)``, which is the paper's "more than t of the maximum" only when ``min == 0``.
    * ``"max"``: ``max(m, 0) / max`` (all zeros when ``max <= 0``). Then ``> t`` keeps exactly
      ``m > t * max``: the paper's rule on signed maps, negative values never kept.

    NaN or inf raises ``ValueError``.
    """
    return normalized(check_maps(maps, finite=False), check_normalize(normalize))


def normalized(x: torch.Tensor, normalize: str = "minmax") -> torch.Tensor:
    """Per-map normalisation; NaN/inf anywhere shows in min or max, so one small check suffices."""
    hi = x.amax((1, 2), keepdim=True)
    if normalize == "max":
        if not bool(torch.isfinite(hi).all()) or not bool(torch.isfinite(x.amin()).all()):
            check_finite(x, "maps")
        return torch.where(hi > 0, x.clamp(min=0) / torch.where(hi > 0, hi, 1), 0)
    lo = x.amin((1, 2), keepdim=True)
    span = hi - lo
    if not bool(torch.isfinite(span).all()):
        check_finite(x, "maps")
    return torch.where(span > 0, (x - lo) / torch.where(span > 0, span, 1), 0)
