"""Boxes from maps (the CAM paper's largest connected component) and their IoU."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from infocam._validation import ArrayLike, as_tensor, check_finite, check_real
from infocam.localization.maps import check_maps, check_normalize, normalized

__all__ = ["box_iou", "boxes_from_maps"]


def _largest_component_box(mask: np.ndarray, y0: int, x0: int) -> list[int]:
    """Box of the largest 8-connected component of a (cropped) mask, shifted by (x0, y0)."""
    n, labels = cv2.connectedComponents(mask, connectivity=8, ltype=cv2.CV_32S)
    if n <= 1:
        return [0, 0, 0, 0]
    flat = labels.ravel()
    sizes = np.bincount(flat, minlength=n)
    largest = 1 + np.flatnonzero(sizes[1:] == sizes[1:].max())
    if len(largest) == 1:
        k = int(largest[0])
    else:
        # A tie goes to the component whose first pixel comes first in raster order. OpenCV's
        # block-based labelling does not number components in that order, so find it.
        first = np.full(n, flat.size, dtype=np.int64)
        np.minimum.at(first, flat, np.arange(flat.size))
        k = int(largest[np.argmin(first[largest])])
    on = labels == k
    rows, cols = np.flatnonzero(on.any(1)), np.flatnonzero(on.any(0))
    return [x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]), y0 + int(rows[-1])]


def boxes_from_maps(
    maps: torch.Tensor, threshold: float = 0.2, *, normalize: str = "minmax"
) -> torch.Tensor:
    """Tight box of the largest 8-connected component of
    ``normalize_maps(maps, normalize) > threshold``.

    Args:
        maps: (N, H, W) maps at image size (see ``upsample_maps``).
        threshold: a real number in [0, 1) (a Python or numpy number, or a 0-d tensor): the
            fraction of the per-map range (``"minmax"``) or of the maximum (``"max"``). The
            paper uses 0.2 of the maximum.
        normalize: ``"minmax"`` (default, as wsolevaluation) or ``"max"`` (the paper's
            "20% of the maximum": keeps ``map > threshold * max``, never a negative value);
            see :func:`normalize_maps`. The two agree when a map's minimum is 0.

    Returns:
        (N, 4) int64 ``x1, y1, x2, y2``, inclusive pixel coordinates, on the maps' device;
        ``[0, 0, 0, 0]`` for an empty mask (a constant map). "Largest" counts pixels; ties go
        to the component whose first pixel comes first in raster order.
    """
    threshold = check_real(threshold, "threshold", 0, 1, high_open=True)
    normalize = check_normalize(normalize)
    x = check_maps(maps, finite=False)
    norm = normalized(x, normalize)
    on = norm > threshold
    # crop each mask to the rows / columns it occupies before labelling (on the device);
    # a row holds a kept pixel iff its maximum is kept (a float max is faster than a bool any)
    rows, cols = norm.amax(2) > threshold, norm.amax(1) > threshold
    h, w = on.shape[1:]
    y0 = rows.int().argmax(1)
    y1 = h - rows.flip(1).int().argmax(1)
    x0 = cols.int().argmax(1)
    x1 = w - cols.flip(1).int().argmax(1)
    masks = on.cpu().numpy().view(np.uint8)
    extents = torch.stack([y0, y1, x0, x1], 1).tolist()
    boxes = [
        _largest_component_box(np.ascontiguousarray(m[a:b, c:d]), a, c)
        for m, (a, b, c, d) in zip(masks, extents, strict=True)
    ]
    return torch.tensor(boxes, dtype=torch.long, device=x.device).reshape(-1, 4)


def _check_boxes(boxes: ArrayLike, name: str) -> torch.Tensor:
    b = as_tensor(boxes, name)
    if b.dim() != 2 or b.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) as x1, y1, x2, y2; got {tuple(b.shape)}")
    if torch.is_floating_point(b):
        check_finite(b, name)
    if b.numel() and bool(((b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])).any()):
        bad = torch.nonzero((b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])).flatten()[:5].tolist()
        raise ValueError(
            f"{name} must be x1, y1, x2, y2 with x2 >= x1 and y2 >= y1; rows {bad} are not"
        )
    return b


def box_iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of inclusive-pixel boxes: (N, 4) x (M, 4) -> (N, M).

    ``area = (x2 - x1 + 1) * (y2 - y1 + 1)``; the intersection is clamped at 0, so disjoint
    boxes score exactly 0 and boxes sharing an edge pixel row overlap by that row. Integer
    boxes give float64 IoU (the exact ratio, as wsolevaluation's numpy code); float boxes keep
    their floating dtype.
    """
    a = _check_boxes(boxes_a, "boxes_a")
    b = _check_boxes(boxes_b, "boxes_b").to(a.device)
    dtype = torch.promote_types(a.dtype, b.dtype)
    dtype = dtype if dtype.is_floating_point else torch.float64
    a, b = a.to(dtype), b.to(dtype)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt + 1).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def as_box_list(gt_boxes: ArrayLike, n: int, device: torch.device) -> list[torch.Tensor]:
    """gt_boxes as a list of (G_i, 4): accepts (N, 4), (N, G, 4) or a list of (G_i, 4)/(4,)."""
    if isinstance(gt_boxes, torch.Tensor | np.ndarray):
        t = as_tensor(gt_boxes, "gt_boxes")
        if t.dim() == 2:
            t = t.unsqueeze(1)
        if t.dim() != 3 or t.shape[-1] != 4:
            raise ValueError(
                f"gt_boxes must be (N, 4), (N, G, 4) or a list of (G_i, 4); got {tuple(t.shape)}"
            )
        items = list(t)
    elif isinstance(gt_boxes, list | tuple):
        items = [as_tensor(g, "gt_boxes[i]") for g in gt_boxes]
    else:
        raise TypeError(f"gt_boxes must be a tensor or a list of tensors; got {type(gt_boxes)}")
    if len(items) != n:
        raise ValueError(f"gt_boxes must hold boxes for each of the {n} maps; got {len(items)}")
    for i, g in enumerate(items):
        if g.dim() not in (1, 2) or g.shape[-1] != 4 or g.numel() == 0:
            raise ValueError(
                f"gt_boxes[{i}] must hold at least one x1, y1, x2, y2 box; got {tuple(g.shape)}"
            )
    items = [g.reshape(-1, 4) for g in items]
    # one validation pass over all boxes; errors name the image they belong to
    flat = torch.cat([g.to(device) for g in items])
    owner = torch.repeat_interleave(torch.tensor([len(g) for g in items]))
    if torch.is_floating_point(flat):
        check_finite(flat, "gt_boxes")
    bad = (flat[:, 2] < flat[:, 0]) | (flat[:, 3] < flat[:, 1]) | (flat < 0).any(1)
    if bool(bad.any()):
        j = int(torch.nonzero(bad)[0])
        raise ValueError(
            f"gt_boxes[{int(owner[j])}] must be x1, y1, x2, y2 with non-negative coordinates, "
            f"x2 >= x1 and y2 >= y1; got {flat[j].tolist()}"
        )
    return list(flat.split([len(g) for g in items]))


def best_iou(boxes: torch.Tensor, gts: list[torch.Tensor]) -> torch.Tensor:
    """max_j IoU(boxes[i], gts[i][j]) for every i, in one batched computation."""
    n = boxes.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.float64, device=boxes.device)
    g = torch.nn.utils.rnn.pad_sequence([t.to(torch.float64) for t in gts], batch_first=True)
    valid = torch.nn.utils.rnn.pad_sequence(
        [torch.ones(len(t), dtype=torch.bool, device=boxes.device) for t in gts],
        batch_first=True,
    )
    b = boxes.to(torch.float64)[:, None, :]  # (N, 1, 4) vs (N, G, 4)
    wh = torch.minimum(b[..., 2:], g[..., 2:]) - torch.maximum(b[..., :2], g[..., :2]) + 1
    inter = wh.clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2] + 1).prod(-1)
    area_g = (g[..., 2:] - g[..., :2] + 1).prod(-1)
    iou = inter / (area_b + area_g - inter)
    return torch.where(valid, iou, -1.0).amax(1)
