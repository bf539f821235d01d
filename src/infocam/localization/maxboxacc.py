"""MaxBoxAccV2 (Choe et al. 2020), the same counts as clovaai/wsolevaluation's ``BoxEvaluator``."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import cv2
import numpy as np
import torch

from infocam._validation import ArrayLike, check_finite, check_int, check_real
from infocam.localization._counting import CountingEvaluator
from infocam.localization.boxes import as_box_list
from infocam.localization.maps import check_maps

try:  # compiled at install (setup.py); without a C compiler the OpenCV path does the work
    from infocam import _maxbox
except ImportError:  # pragma: no cover - exercised only on installs without the extension
    _maxbox = None

__all__ = ["MaxBoxAccEvaluator"]


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


class MaxBoxAccEvaluator(CountingEvaluator):
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

    _COUNTERS = ("counts", "n")

    def __init__(
        self,
        iou_thresholds: Sequence[float] = (30, 50, 70),
        cam_curve_interval: float = 0.01,
        multi_contour: bool = True,
        num_threads: int | None = None,
        backend: Literal["auto", "compiled", "opencv"] = "auto",
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

    def update(self, maps: ArrayLike, gt_boxes: ArrayLike) -> None:
        """Add maps (N, H, W) at image size with values in [0, 1] and their boxes.

        ``gt_boxes``: (N, 4), (N, G, 4) or a list of (G_i, 4) inclusive x1, y1, x2, y2 integer
        pixel coordinates (float coordinates are truncated, as wsolevaluation's resize_bbox).
        """
        m = check_maps(maps, finite=False)
        n, h, w = m.shape
        if n == 0:  # an empty batch (the last of a sharded set): nothing to count
            return
        if self.backend == "compiled" and max(h, w) <= _maxbox.MAX_SIDE:
            self._update_compiled(m, gt_boxes)
            return
        _check_map_values(m)
        gts = [g.cpu().numpy().astype(np.int64) for g in as_box_list(gt_boxes, n, m.device)]
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
        gts = as_box_list(gt_boxes, n, m.device)
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
