r"""The maps of CAM, infoCAM and infoCAM+ from features and head weights (see :mod:`infocam.cam`).

One ``einsum`` with no backward pass, under ``torch.inference_mode()`` on the features'
device; float16/bfloat16 inputs are accumulated and returned in float32.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from infocam._validation import (
    ArrayLike,
    as_tensor,
    check_finite,
    check_floating,
    check_int,
    check_target,
)

__all__ = [
    "DEFAULT_REGION_PADDING",
    "LEAST_LIKELY",
    "METHODS",
    "REGION_PADDINGS",
    "check_region",
    "class_activation_maps",
    "contrast_weights",
    "region_filter",
]

METHODS = ("cam", "infocam", "infocam+")
Method = Literal["cam", "infocam", "infocam+"]
REGION_PADDINGS = ("same", "centered", "full")
RegionPadding = Literal["same", "centered", "full"]
# The one place the default is decided (every function, evaluator and CLI flag refers here):
# "centered" places even windows (the paper's R = 4 on ResNet) on the cell; "same" (torch's
# padding="same") is half a cell up-left of the features (issue 14: ~20 points lower).
DEFAULT_REGION_PADDING: RegionPadding = "centered"
LEAST_LIKELY = ("global", "region")
LeastLikely = Literal["global", "region"]


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16/bfloat16 accumulate in float32; float32/float64 stay as they are."""
    return torch.promote_types(dtype, torch.float32)


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    return method


def check_least_likely(least_likely: Any) -> str:
    """``least_likely`` as one of :data:`LEAST_LIKELY` (``"global"`` or ``"region"``)."""
    if not isinstance(least_likely, str) or least_likely not in LEAST_LIKELY:
        raise ValueError(f"least_likely must be one of {LEAST_LIKELY}; got {least_likely!r}")
    return least_likely


def check_region(region: Any, region_padding: str) -> int:
    """``region`` as an int >= 1 (numpy integers and 0-d integer tensors too; 1 = no filter)."""
    region = check_int(region, "region", minimum=1)
    if region_padding not in REGION_PADDINGS:
        raise ValueError(f"region_padding must be one of {REGION_PADDINGS}; got {region_padding!r}")
    return region


def contrast_weights(
    fc_weight: torch.Tensor,
    target: torch.Tensor | None,
    method: Method = "cam",
    logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """Contrast vectors ``c`` (one per sample, or one per class when ``target`` is None).

    Returns (N, K) for a target of shape (N,), or (N, M, K) for ``target=None`` with method
    ``"infocam+"`` (its least likely class depends on the sample), else (M, K).
    """
    _check_method(method)
    w = fc_weight
    m = w.shape[0]
    if method != "cam" and m < 2:
        raise ValueError(f"fc_weight must have at least 2 classes for {method!r}; got M={m}")
    if method == "cam":
        return w if target is None else w[target]
    if method == "infocam":
        # W_y - mean_{j != y} W_j = (M W_y - sum_j W_j) / (M - 1)
        total = w.sum(0)
        all_c = (m * w - total) / (m - 1)
        return all_c if target is None else all_c[target]
    assert logits is not None
    z = logits.argmin(1)
    wz = w[z]  # (N, K)
    if target is None:
        return w.unsqueeze(0) - wz.unsqueeze(1)  # (N, M, K)
    return w[target] - wz


def region_filter(
    maps: torch.Tensor, region: int, region_padding: RegionPadding = DEFAULT_REGION_PADDING
) -> torch.Tensor:
    """Sum each map over an ``region x region`` window (zero outside the map).

    ``maps`` has shape (..., h, w). ``"centered"`` (the default) keeps (h, w) and, for even
    ``r``, weights the window ``k k^T`` with ``k = [1/2, 1, ..., 1, 1/2]`` (r + 1 taps) centred
    on the cell (for odd ``r`` the plain centred r x r sum); ``"same"`` keeps (h, w) and
    equals ``conv2d(map, ones(r, r), padding="same")`` (an even window reaches one more cell
    right/down); ``"full"`` returns (h + r - 1, w + r - 1).
    """
    region = check_region(region, region_padding)
    if region == 1:
        return maps
    lead, (h, w) = maps.shape[:-2], maps.shape[-2:]
    x = maps.reshape(-1, 1, h, w)
    taps = torch.ones(region, dtype=x.dtype, device=x.device)
    if region_padding == "centered" and region % 2 == 0:
        taps = torch.cat([taps.new_tensor([0.5]), taps[1:], taps.new_tensor([0.5])])
        lo = hi = region // 2
    elif region_padding == "full":
        lo = hi = region - 1
    else:  # "same" (and "centered" for odd r)
        lo, hi = (region - 1) // 2, region // 2
    x = F.pad(x, (lo, hi, lo, hi))
    kernel = torch.outer(taps, taps)[None, None]
    out = F.conv2d(x, kernel)
    return out.reshape(*lead, *out.shape[-2:])


def class_activation_maps(
    features: torch.Tensor,
    fc_weight: torch.Tensor,
    target: ArrayLike,
    method: Method = "cam",
    region: int = 1,
    logits: torch.Tensor | None = None,
    *,
    region_padding: RegionPadding = DEFAULT_REGION_PADDING,
    least_likely: LeastLikely = "global",
) -> torch.Tensor:
    r"""CAM / infoCAM / infoCAM+ maps of ``target`` for features (N, K, h, w).

    With ``R`` the region filter (:func:`region_filter`) and ``CAM_m = sum_k W_mk g_k``:
    CAM is ``R(CAM_y)``, infoCAM (Eq. 14) ``R(CAM_y) - mean_{m != y} R(CAM_m)``, and infoCAM+
    (Eq. 15)

    .. math:: M_y^{Diff+}(R) = \sum_{(a,b) \in R} w^y g(a, b) - w^{y'} g(a, b)

    with the least likely class ``y'`` chosen by ``least_likely``:

    * ``"global"`` (default; the paper's prose and the original code): ``y' = argmin_m
      logits_m``, one class per image, so the map is ``R(CAM_y - CAM_{y'})``;
    * ``"region"`` (Eq. 15 as written): ``y' = argmin_m sum_{(a,b) in R} w^m g(a, b)``, one
      class per region, so the map is ``R(CAM_y) - min_m R(CAM_m)`` cell by cell (the
      logits are not used). It costs every class's map: (N, M, h, w) memory.

    Args:
        features: (N, K, h, w) last spatial feature map (before global average pooling).
        fc_weight: (M, K) weight of the final linear layer (its bias does not enter a map).
        target: (N,) class index per sample, or ``"all"`` for every class's map.
        method: ``"cam"``, ``"infocam"`` or ``"infocam+"`` (see the module docstring).
        region: side ``r`` of the paper's region R (1 = none).
        logits: (N, M) the model's logits, used by ``"infocam+"`` to find the least likely
            class. When None it is ``mean_hw(features) @ fc_weight.T`` (bias ignored: pass the
            real logits if the head has a bias that could change the argmin).
        region_padding: ``"centered"`` (default: even windows centred on the cell),
            ``"same"`` (torch's ``padding="same"``: even windows reach one cell right/down) or
            ``"full"`` (the original code's convolution).
        least_likely: ``"global"`` or ``"region"``: how infoCAM+ picks its least likely
            class (see above); no effect on ``"cam"`` / ``"infocam"``.

    Returns:
        (N, h, w) maps, or (N, M, h, w) for ``target="all"`` (bigger with ``"full"`` padding),
        on the features' device, float32 for half inputs.
    """
    method = _check_method(method)
    region = check_region(region, region_padding)
    least_likely = check_least_likely(least_likely)
    g = check_floating(as_tensor(features, "features"), "features")
    if g.dim() != 4:
        raise ValueError(f"features must have shape (N, K, h, w); got {tuple(g.shape)}")
    w = check_floating(as_tensor(fc_weight, "fc_weight", device=g.device), "fc_weight")
    if w.dim() != 2:
        raise ValueError(f"fc_weight must have shape (M, K); got {tuple(w.shape)}")
    n, k = g.shape[:2]
    if w.shape[1] != k:
        raise ValueError(
            f"fc_weight must have K={k} columns to match features (N, K, h, w) = "
            f"{tuple(g.shape)}; got fc_weight of shape {tuple(w.shape)}"
        )
    m = w.shape[0]
    all_classes = isinstance(target, str)
    if all_classes and target != "all":
        raise ValueError(f"target must be class indices of shape ({n},) or 'all'; got {target!r}")
    if not isinstance(target, str | torch.Tensor | np.ndarray | list | tuple):
        raise TypeError(
            f"target must be class indices of shape ({n},) (a tensor, array or list) or 'all' "
            f"for every class's map; got {type(target).__name__}"
        )
    t = None
    if not all_classes:
        t = check_target(
            target,
            "target",
            n=n,
            num_classes=m,
            device=g.device,
            match=f"features (N, K, h, w) = {tuple(g.shape)}",
        )

    dtype = _compute_dtype(torch.promote_types(g.dtype, w.dtype))
    g = g.to(dtype)
    w = w.to(dtype)
    per_region = method == "infocam+" and least_likely == "region"
    if method == "infocam+" and not per_region:
        if logits is None:
            logits = g.mean((2, 3)) @ w.T
        else:
            logits = check_floating(as_tensor(logits, "logits", device=g.device), "logits")
            if logits.shape != (n, m):
                raise ValueError(
                    f"logits must have shape (N, M) = ({n}, {m}); got {tuple(logits.shape)}"
                )
            check_finite(logits, "logits")  # argmin of NaN logits picks an arbitrary class
    with torch.no_grad():
        if per_region:
            # Eq. 15: R(CAM_y) - min_m R(CAM_m), the least likely class found per region
            sums = region_filter(torch.einsum("mk,nkhw->nmhw", w, g), region, region_padding)
            least = sums.amin(1, keepdim=True)
            if t is None:
                return sums - least
            return sums[torch.arange(n, device=g.device), t] - least.squeeze(1)
        if t is not None:
            maps = torch.einsum("nk,nkhw->nhw", contrast_weights(w, t, method, logits), g)
        elif method == "infocam+":
            # CAM_y - CAM_z for every y: no (N, M, K) tensor of contrast vectors
            cams = torch.einsum("mk,nkhw->nmhw", w, g)
            z = logits.argmin(1)
            maps = cams - cams[torch.arange(n, device=g.device), z].unsqueeze(1)
        else:
            maps = torch.einsum("mk,nkhw->nmhw", contrast_weights(w, None, method), g)
        return region_filter(maps, region, region_padding)
