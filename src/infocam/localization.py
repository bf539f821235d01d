"""From maps to boxes to weakly supervised localisation (WSOL) scores.

* ``upsample_maps`` / ``normalize_maps``: to image size; min-max per map (a constant map
  becomes zeros).
* ``boxes_from_maps``: the CAM paper's box (Zhou et al. 2016, used by the infoCAM paper): keep
  min-max normalised values ``> threshold``, take the largest 8-connected component (most
  pixels; ties go to the component met first in raster order) and return its tight box
  ``x1, y1, x2, y2`` in inclusive pixel coordinates. An empty mask (a constant map) gives
  ``[0, 0, 0, 0]``, as wsolevaluation does.
* ``box_iou``: pairwise IoU with inclusive-pixel areas ``(x2 - x1 + 1) * (y2 - y1 + 1)``;
  disjoint boxes score 0 (the original infoCAM code scored them > 0).
* ``LocalizationEvaluator``: GT-known Loc, Top-1 Loc, Top-1/Top-5 classification, counted over
  the whole set.
* ``MaxBoxAccEvaluator``: MaxBoxAccV2 of Choe et al. 2020 (clovaai/wsolevaluation), the same
  numbers as its ``BoxEvaluator`` (see the class docstring for the conventions it copies).

Evaluators keep integer counters (``counts``, int64 tensors): ``merge(other)`` adds another
evaluator's, ``all_reduce()`` sums them over the processes of a ``torch.distributed`` run.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from infocam._validation import (
    as_tensor,
    check_finite,
    check_floating,
    check_int,
    check_real,
    check_target,
)

try:  # compiled at install (setup.py); without a C compiler the OpenCV path does the work
    from infocam import _maxbox
except ImportError:  # pragma: no cover - exercised only on installs without the extension
    _maxbox = None

__all__ = [
    "LocalizationEvaluator",
    "MaxBoxAccEvaluator",
    "box_iou",
    "boxes_from_maps",
    "normalize_maps",
    "upsample_maps",
]

# torch's interpolation modes for (N, C, H, W) input
UPSAMPLE_MODES = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")


def _check_maps(maps: Any, name: str = "maps", *, finite: bool = True) -> torch.Tensor:
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
    x = _check_maps(maps)
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
    return _normalized(_check_maps(maps, finite=False))


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


def _normalized(x: torch.Tensor) -> torch.Tensor:
    """Min-max per map; NaN/inf anywhere shows in min or max, so one small check suffices."""
    lo = x.amin((1, 2), keepdim=True)
    span = x.amax((1, 2), keepdim=True) - lo
    if not bool(torch.isfinite(span).all()):
        check_finite(x, "maps")
    return torch.where(span > 0, (x - lo) / torch.where(span > 0, span, 1), 0)


def boxes_from_maps(maps: torch.Tensor, threshold: float = 0.2) -> torch.Tensor:
    """Tight box of the largest 8-connected component of ``normalize_maps(maps) > threshold``.

    Args:
        maps: (N, H, W) maps at image size (see ``upsample_maps``).
        threshold: fraction of the per-map range, a real number in [0, 1) (a Python or
            numpy number, or a 0-d tensor). The paper uses 0.2.

    Returns:
        (N, 4) int64 ``x1, y1, x2, y2``, inclusive pixel coordinates, on the maps' device;
        ``[0, 0, 0, 0]`` for an empty mask (a constant map). "Largest" counts pixels; ties go
        to the component whose first pixel comes first in raster order.
    """
    threshold = check_real(threshold, "threshold", 0, 1, high_open=True)
    x = _check_maps(maps, finite=False)
    norm = _normalized(x)
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


def _check_boxes(boxes: Any, name: str) -> torch.Tensor:
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


def _as_box_list(gt_boxes: Any, n: int, device: torch.device) -> list[torch.Tensor]:
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


def _best_iou(boxes: torch.Tensor, gts: list[torch.Tensor]) -> torch.Tensor:
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


def _check_mergeable(ev: Any, other: Any) -> None:
    """``merge`` adds counts only of evaluators whose settings give comparable counts."""
    if not isinstance(other, type(ev)):
        raise TypeError(f"other must be a {type(ev).__name__}; got {type(other).__name__}")
    mine, theirs = ev._settings(), other._settings()
    diff = [f"{k} {mine[k]!r} vs {theirs[k]!r} in other" for k in mine if mine[k] != theirs[k]]
    if diff:
        raise ValueError(
            f"cannot merge {type(ev).__name__}s with different settings: {'; '.join(diff)}"
        )


def _check_same_settings_everywhere(ev: Any, group: Any = None) -> None:
    """Before summing counters over processes, check every process has the same settings.

    One ``all_gather_object`` of the settings; every process compares all of them with rank
    0's, so either all raise (the message names the setting and the ranks) or none does.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group) == 1:
        return
    gathered: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, ev._settings(), group=group)
    first = gathered[0]
    for rank, theirs in enumerate(gathered[1:], 1):
        diff = [f"{k} {first[k]!r} on rank 0 vs {theirs[k]!r} on rank {rank}"
                for k in first if first[k] != theirs[k]]  # fmt: skip
        if diff:
            raise ValueError(
                f"all_reduce needs the same {type(ev).__name__} settings on every process: "
                + "; ".join(diff)
            )


def _all_reduce(tensors: list[torch.Tensor], group: Any = None) -> list[torch.Tensor]:
    """Sum CPU counters over a ``torch.distributed`` group (no-op outside distributed runs)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return tensors
    nccl = dist.get_backend(group) == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    out = []
    for t in tensors:
        t = t.to(device)
        dist.all_reduce(t, group=group)
        out.append(t.cpu())
    return out


class LocalizationEvaluator:
    """GT-known Loc, Top-1 Loc, Top-1 and Top-5 classification over a whole set.

    Per batch, ``update(maps, gt_boxes, target, logits)`` with ``maps`` (N, H, W) the true
    class's maps at image size, ``gt_boxes`` (N, 4) or a list of (G_i, 4) boxes (a hit is IoU
    >= ``iou_threshold`` with any of them), ``target`` (N,), ``logits`` (N, M). A box comes
    from ``boxes_from_maps(maps, threshold)``.

    * GT-known Loc = hits / n;
    * Top-1 Loc = (hit and top-1 prediction correct) / n;
    * Top-1 / Top-5 Cls = correct / n.

    The integer counters live in ``counts`` (a tensor: n, gt-known hits, top-1 loc, top-1 cls,
    top-5 cls); ``merge(other)`` adds another evaluator's, and ``all_reduce()`` sums them over
    the processes of a ``torch.distributed`` run. ``compute()`` returns percentages.
    """

    _KEYS = ("n", "gt_known_loc", "top1_loc", "top1_cls", "top5_cls")

    def __init__(self, threshold: float = 0.2, iou_threshold: float = 0.5) -> None:
        self.threshold = check_real(threshold, "threshold", 0, 1, high_open=True)
        self.iou_threshold = check_real(iou_threshold, "iou_threshold", 0, 1, low_open=True)
        self.reset()

    def _settings(self) -> dict[str, Any]:
        """What the counts depend on besides the data; ``merge`` and ``all_reduce`` compare it."""
        return {"threshold": self.threshold, "iou_threshold": self.iou_threshold}

    def reset(self) -> LocalizationEvaluator:
        self.counts = torch.zeros(len(self._KEYS), dtype=torch.long)
        return self

    def update(
        self, maps: torch.Tensor, gt_boxes: Any, target: Any, logits: torch.Tensor
    ) -> torch.Tensor:
        """Add a batch; returns the predicted boxes (N, 4)."""
        m = _check_maps(maps, finite=False)  # boxes_from_maps checks finiteness
        n = m.shape[0]
        lg = check_floating(as_tensor(logits, "logits", device=m.device), "logits")
        if lg.dim() != 2 or lg.shape[0] != n:
            raise ValueError(f"logits must have shape ({n}, M); got {tuple(lg.shape)}")
        t = check_target(target, "target", n=n, num_classes=lg.shape[1], device=m.device)
        if n == 0:  # an empty batch (the last of a sharded set): nothing to count
            return torch.zeros(0, 4, dtype=torch.long, device=m.device)
        gts = _as_box_list(gt_boxes, n, m.device)
        boxes = boxes_from_maps(m, self.threshold)
        hit = _best_iou(boxes, gts) >= self.iou_threshold
        k = min(5, lg.shape[1])
        topk = lg.topk(k, dim=1).indices
        top1 = topk[:, 0] == t
        top5 = (topk == t[:, None]).any(1)
        batch = torch.stack(
            [
                torch.tensor(n, device=m.device),
                hit.sum(),
                (hit & top1).sum(),
                top1.sum(),
                top5.sum(),
            ]
        )
        self.counts += batch.cpu()
        return boxes

    def all_reduce(self, group: Any = None) -> LocalizationEvaluator:
        """Sum the counters over all processes of a ``torch.distributed`` run (in place).

        Every process must use the same ``threshold`` and ``iou_threshold`` (checked first).
        """
        _check_same_settings_everywhere(self, group)
        (self.counts,) = _all_reduce([self.counts], group)
        return self

    def merge(self, other: LocalizationEvaluator) -> LocalizationEvaluator:
        """Add ``other``'s counts; its ``threshold`` and ``iou_threshold`` must be these."""
        _check_mergeable(self, other)
        self.counts += other.counts
        return self

    def compute(self) -> dict[str, float]:
        """Percentages over everything seen: gt_known_loc, top1_loc, top1_cls, top5_cls, n."""
        n = int(self.counts[0])
        if n == 0:
            raise ValueError("compute() needs at least one update() with a non-empty batch")
        out: dict[str, float] = {"n": n}
        for key, c in zip(self._KEYS[1:], self.counts[1:].tolist(), strict=True):
            out[key] = 100.0 * c / n
        return out


# --------------------------------------------------------------------------- MaxBoxAccV2


def _quantise(m: np.ndarray) -> np.ndarray:
    """wsolevaluation's ``(scoremap * 255).astype(np.uint8)`` in float64 (truncation)."""
    return (m * 255).astype(np.uint8)


def _boxes_at_levels(
    q: np.ndarray, levels: np.ndarray, multi_contour: bool
) -> tuple[np.ndarray, np.ndarray]:
    """wsolevaluation's boxes of the masks ``q > t`` for every t in ``levels`` (ascending).

    Each mask is cropped to the rows/columns it occupies and the crops are stacked, one
    zero row apart, into one image traced by a single ``cv2.findContours(RETR_TREE)``: a
    contour never crosses the zero rows and the outside of a crop is zero, so every contour
    (holes included) and its order within a crop are those of the full-size mask. Box of a
    contour: ``boundingRect`` x, y, w, h -> x, y, min(x + w, W - 1), min(y + h, H - 1). A level
    without any contour gets the box [0, 0, 0, 0].

    Returns boxes (B, 4) int64 and the index into ``levels`` of each box.
    """
    h, w = q.shape
    n_lv = len(levels)
    # Mask extents per level from row/column maxima: rows where max(q[row]) > t, etc.
    row_on = q.max(1)[None, :] > levels[:, None]  # (L, H)
    col_on = q.max(0)[None, :] > levels[:, None]  # (L, W)
    nonempty = row_on.any(1)
    y0 = row_on.argmax(1)
    y1 = h - row_on[:, ::-1].argmax(1)
    x0 = col_on.argmax(1)
    x1 = w - col_on[:, ::-1].argmax(1)
    hh = np.where(nonempty, y1 - y0, 0)
    cw = int(np.where(nonempty, x1 - x0, 0).max()) if n_lv else 0
    starts = np.concatenate([[0], np.cumsum(hh + 1)[:-1]])
    empty_levels = np.flatnonzero(~nonempty)
    empty = (np.zeros((len(empty_levels), 4), np.int64), empty_levels)
    if cw == 0:
        return empty
    canvas = np.zeros((int(starts[-1] + hh[-1] + 1), cw), np.uint8)
    for i in np.flatnonzero(nonempty).tolist():
        r, a, b, c, d = starts[i], y0[i], y1[i], x0[i], x1[i]
        np.greater(q[a:b, c:d], levels[i], out=canvas[r : r + b - a, : d - c].view(bool))
    contours = cv2.findContours(canvas, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    lengths = np.fromiter((len(c) for c in contours), np.int64, len(contours))
    pts = np.concatenate(contours).reshape(-1, 2).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    lo = np.minimum.reduceat(pts, first)
    hi = np.maximum.reduceat(pts, first) + 1  # x + w, y + h: one past the last pixel
    lv = np.searchsorted(starts, lo[:, 1], side="right") - 1
    if not multi_contour:
        # the largest contour of each level by cv2.contourArea, first one on ties
        area = np.fromiter((cv2.contourArea(c) for c in contours), np.float64, len(contours))
        order = np.lexsort((np.arange(len(lv)), -area, lv))
        keep = order[np.r_[True, lv[order][1:] != lv[order][:-1]]]
        lo, hi, lv = lo[keep], hi[keep], lv[keep]
    dx, dy = x0[lv], y0[lv] - starts[lv]
    boxes = np.stack(
        [
            lo[:, 0] + dx,
            lo[:, 1] + dy,
            np.minimum(hi[:, 0] + dx, w - 1),
            np.minimum(hi[:, 1] + dy, h - 1),
        ],
        1,
    )
    return np.concatenate([boxes, empty[0]]), np.concatenate([lv, empty[1]])


def _check_map_values(m: torch.Tensor) -> None:
    """MaxBoxAccV2 maps must be finite and in [0, 1]; the error names what came."""
    check_finite(m, "maps")
    if m.numel() and (float(m.min()) < 0 or float(m.max()) > 1):
        raise ValueError(
            f"maps must be in [0, 1] (use normalize_maps); got values in "
            f"[{float(m.min()):.4g}, {float(m.max()):.4g}]"
        )


def _iou_np(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """wsolevaluation's calculate_multiple_iou: int arithmetic, +1 areas, float64 ratio."""
    lt = np.maximum(boxes[:, None, :2], gt[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], gt[None, :, 2:])
    wh = np.maximum(0, rb - lt + 1)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    area_b = (gt[:, 2] - gt[:, 0] + 1) * (gt[:, 3] - gt[:, 1] + 1)
    den = area_a[:, None] + area_b[None, :] - inter
    out = inter / np.where(den <= 0, 1, den)
    out[den <= 0] = 0
    return out


class MaxBoxAccEvaluator:
    """MaxBoxAccV2 (Choe et al. 2020), identical to clovaai/wsolevaluation's ``BoxEvaluator``.

    For every CAM threshold ``tau`` in ``np.arange(0, 1, cam_curve_interval)`` and every IoU
    threshold ``delta`` in ``iou_thresholds`` (percent), BoxAcc(tau, delta) is the share of
    images where some estimated box has IoU >= delta/100 with some ground-truth box;
    MaxBoxAcc@delta = max over tau, and MaxBoxAccV2 their mean. The conventions are
    wsolevaluation's, exactly: the map is quantised as ``uint8(map * 255)`` (float64,
    truncating); a pixel is kept when ``q > int(tau * max(q))`` (strict); the estimated boxes
    are those of *all* contours of ``cv2.findContours(RETR_TREE)`` (holes included) with
    ``multi_contour=True``, or only the largest by ``cv2.contourArea`` otherwise; a box is
    ``x, y, min(x + w, W - 1), min(y + h, H - 1)`` from ``boundingRect``; IoU uses +1 areas;
    an empty mask gives the box [0, 0, 0, 0].

    No contour is traced. The contours of ``RETR_TREE`` are exactly one outer contour per
    8-connected component of the mask (``boundingRect`` = the component's box) and one per
    hole, a 4-connected background component not touching the border (the hole's box grown
    by one pixel each side), so only those boxes are needed, and only at the distinct cuts
    ``int(tau * max(q))`` (at most 256 per image). Two backends compute them:

    * ``"compiled"`` (the C extension ``infocam._maxbox``, built at install; the default when
      it is there and ``multi_contour=True``): per image, one pass over the rows finds the
      cuts at which some row's mask is more than one run. At every other cut there are no
      holes and the components are stretches of consecutive rows whose runs touch, found
      from per-row maxima in O(rows); the remaining cuts are labelled run by run. Maps with
      many such cuts (noise) go through two union-find sweeps over the pixels sorted by value
      instead (components grow as the cut descends, holes as it ascends). IoUs use the same
      int64 / float64 arithmetic as wsolevaluation, so the counts are identical.
    * ``"opencv"`` (``multi_contour=False``, or no compiler at install): contours traced once
      per distinct cut, on the crop holding the mask.

    ``backend="auto"`` picks the first that applies; the ``backend`` attribute says which one
    runs. Images run on ``num_threads`` threads (both backends release the GIL; the batch is
    split into one contiguous chunk per thread).

    Args (besides the metric's): ``num_threads`` (None, the default: ``torch.get_num_threads()``,
    i.e. the cores torch uses, one per process under torchrun unless OMP_NUM_THREADS says
    otherwise) and ``backend``
    ("auto" | "compiled" | "opencv"; "compiled" raises ImportError when the extension is not
    built and ValueError with ``multi_contour=False``).

    ``counts`` is an int64 tensor (len(iou_thresholds), len(thresholds)) of hits and ``n`` the
    number of images; ``merge(other)`` adds another evaluator's, ``all_reduce()`` sums them
    over the processes of a ``torch.distributed`` run.
    """

    def __init__(
        self,
        iou_thresholds: Sequence[float] = (30, 50, 70),
        cam_curve_interval: float = 0.01,
        multi_contour: bool = True,
        num_threads: int | None = None,
        backend: str = "auto",
    ) -> None:
        if backend not in ("auto", "compiled", "opencv"):
            raise ValueError(f"backend must be 'auto', 'compiled' or 'opencv'; got {backend!r}")
        if backend == "compiled" and _maxbox is None:
            raise ImportError(
                "backend='compiled' needs the C extension infocam._maxbox, which is not built "
                "(install with a C compiler, or use backend='opencv')"
            )
        if backend == "compiled" and not multi_contour:
            raise ValueError("backend='compiled' computes multi_contour=True only")
        if isinstance(iou_thresholds, str) or not isinstance(
            iou_thresholds, Sequence | torch.Tensor | np.ndarray
        ):
            raise TypeError(
                f"iou_thresholds must be a sequence of percentages in (0, 100] like (30, 50, 70);"
                f" got {type(iou_thresholds).__name__}"
            )
        ious = [
            check_real(x, f"iou_thresholds[{i}]", 0, 100, low_open=True)
            for i, x in enumerate(iou_thresholds)
        ]
        if not ious:
            raise ValueError("iou_thresholds must hold at least one percentage in (0, 100]")
        self.iou_thresholds = tuple(ious)
        self.cam_curve_interval = check_real(
            cam_curve_interval, "cam_curve_interval", 0, 1, low_open=True, high_open=True
        )
        if not isinstance(multi_contour, bool | np.bool_):
            raise TypeError(f"multi_contour must be True or False; got {multi_contour!r}")
        self.multi_contour = bool(multi_contour)
        if num_threads is None:
            self.num_threads = max(1, torch.get_num_threads())
        else:
            self.num_threads = check_int(num_threads, "num_threads", minimum=1)
        compiled = backend != "opencv" and _maxbox is not None and self.multi_contour
        self.backend = "compiled" if compiled else "opencv"
        self.cam_thresholds = np.arange(0, 1, self.cam_curve_interval)
        # wsolevaluation compares iou >= delta / 100 in float64
        self._iou_cut = np.asarray([x / 100 for x in self.iou_thresholds], dtype=np.float64)
        self.reset()

    def _settings(self) -> dict[str, Any]:
        """What the counts depend on besides the data (not the backend: both count alike)."""
        return {
            "iou_thresholds": self.iou_thresholds,
            "cam_curve_interval": self.cam_curve_interval,
            "multi_contour": self.multi_contour,
        }

    def reset(self) -> MaxBoxAccEvaluator:
        shape = (len(self.iou_thresholds), len(self.cam_thresholds))
        self.counts = torch.zeros(shape, dtype=torch.long)
        self.n = torch.zeros((), dtype=torch.long)
        return self

    def _image_hits(self, q: np.ndarray, gt: np.ndarray) -> np.ndarray:
        """(len(iou), len(cam_thresholds)) bool hits of one quantised map."""
        cuts = (self.cam_thresholds * int(q.max())).astype(np.int64)  # int() truncates
        levels, inverse = np.unique(cuts, return_inverse=True)
        boxes, level_of_box = _boxes_at_levels(q, levels, self.multi_contour)
        ious = _iou_np(boxes, gt).max(1)
        best = np.zeros(len(levels))
        np.maximum.at(best, level_of_box, ious)
        hits = best[None, :] >= self._iou_cut[:, None]  # (len(iou), len(levels))
        return hits[:, inverse.reshape(-1)]

    def update(self, maps: Any, gt_boxes: Any) -> None:
        """Add maps (N, H, W) at image size with values in [0, 1] and their boxes.

        ``gt_boxes``: (N, 4), (N, G, 4) or a list of (G_i, 4) inclusive x1, y1, x2, y2 integer
        pixel coordinates (float coordinates are truncated, as wsolevaluation's resize_bbox).
        """
        m = _check_maps(maps, finite=False)
        n, h, w = m.shape
        if n == 0:  # an empty batch (the last of a sharded set): nothing to count
            return
        if self.backend == "compiled" and max(h, w) <= _maxbox.MAX_SIDE:
            self._update_compiled(m, gt_boxes)
            return
        _check_map_values(m)
        gts = [g.cpu().numpy().astype(np.int64) for g in _as_box_list(gt_boxes, n, m.device)]
        qs = _quantise(m.detach().cpu().to(torch.float64).numpy())
        if self.num_threads > 1 and n > 1:
            with ThreadPoolExecutor(min(self.num_threads, n)) as pool:
                hits = list(pool.map(self._image_hits, qs, gts))
        else:
            hits = [self._image_hits(q, g) for q, g in zip(qs, gts, strict=True)]
        if hits:
            self.counts += torch.from_numpy(np.sum(hits, axis=0, dtype=np.int64))
        self.n += n

    def _update_compiled(self, m: torch.Tensor, gt_boxes: Any) -> None:
        """``update`` by ``infocam._maxbox.best_ious``: best IoU per image and threshold."""
        n = m.shape[0]
        gts = _as_box_list(gt_boxes, n, m.device)
        x = m.detach().cpu()
        if x.dtype not in (torch.float64, torch.float32):
            x = x.float()  # half / bfloat16 -> float32 is exact
        maps_np = np.ascontiguousarray(x.numpy())
        boxes = torch.cat(gts).cpu().numpy().astype(np.int64)  # truncates float boxes
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(g) for g in gts], out=offsets[1:])
        best = np.empty((n, len(self.cam_thresholds)))
        chunks = np.linspace(0, n, min(self.num_threads, n) + 1).astype(int) if n else [0]

        def run(a: int, b: int) -> None:
            off = offsets[a : b + 1] - offsets[a]
            gt = boxes[offsets[a] : offsets[b]]
            _maxbox.best_ious(maps_np[a:b], self.cam_thresholds, gt, off, best[a:b])

        try:
            if len(chunks) > 2:  # the C loop releases the GIL: chunks run in parallel
                with ThreadPoolExecutor(len(chunks) - 1) as pool:
                    list(pool.map(run, chunks[:-1], chunks[1:]))
            elif n:
                run(0, n)
        except ValueError:
            _check_map_values(m)  # the message names the bad values
            raise
        # wsolevaluation compares iou >= delta / 100 in float64, per threshold
        hits = best[:, None, :] >= self._iou_cut[None, :, None]  # (n, len(iou), len(tau))
        self.counts += torch.from_numpy(hits.sum(0, dtype=np.int64))
        self.n += n

    def all_reduce(self, group: Any = None) -> MaxBoxAccEvaluator:
        """Sum the counters over all processes of a ``torch.distributed`` run (in place).

        Every process must use the same ``iou_thresholds``, ``cam_curve_interval`` and
        ``multi_contour`` (checked first; the backend may differ).
        """
        _check_same_settings_everywhere(self, group)
        self.counts, self.n = _all_reduce([self.counts, self.n], group)
        return self

    def merge(self, other: MaxBoxAccEvaluator) -> MaxBoxAccEvaluator:
        """Add ``other``'s counts; its ``iou_thresholds``, ``cam_curve_interval`` and
        ``multi_contour`` must be these (the backend may differ)."""
        _check_mergeable(self, other)
        self.counts += other.counts
        self.n += other.n
        return self

    def box_accuracy(self) -> torch.Tensor:
        """BoxAcc (%) per IoU threshold and CAM threshold: (len(iou), len(cam_thresholds))."""
        self._check_nonempty()
        return self.counts.to(torch.float64) * 100.0 / float(self.n)

    def _check_nonempty(self) -> None:
        if int(self.n) == 0:
            raise ValueError("compute() needs at least one update() with a non-empty batch")

    def compute(self) -> dict[str, float]:
        """{"MaxBoxAccV2": mean, "MaxBoxAcc@30": ..., ...} in percent."""
        # numpy float64, in wsolevaluation's order: counts * 100 / n, max, then the average
        self._check_nonempty()
        best = (self.counts.numpy().astype(np.float64) * 100.0 / float(self.n)).max(1)
        out = {"MaxBoxAccV2": float(np.average(best))}
        for iou, v in zip(self.iou_thresholds, best.tolist(), strict=True):
            out[f"MaxBoxAcc@{iou:g}"] = v
        return out
