"""GT-known Loc, Top-1 Loc and Top-1 / Top-5 classification, counted over a whole set."""

from __future__ import annotations

from typing import Any

import torch

from infocam._validation import ArrayLike, as_tensor, check_floating, check_real, check_target
from infocam.localization._counting import CountingEvaluator
from infocam.localization.boxes import as_box_list, best_iou, boxes_from_maps
from infocam.localization.maps import check_maps, check_normalize

__all__ = ["LocalizationEvaluator"]


class LocalizationEvaluator(CountingEvaluator):
    """GT-known Loc, Top-1 Loc, Top-1 and Top-5 classification over a whole set.

    Per batch, ``update(maps, gt_boxes, target, logits)`` with ``maps`` (N, H, W) the true
    class's maps at image size, ``gt_boxes`` (N, 4) or a list of (G_i, 4) boxes (a hit is IoU
    >= ``iou_threshold`` with any of them), ``target`` (N,), ``logits`` (N, M). A box comes
    from ``boxes_from_maps(maps, threshold, normalize=normalize)`` (``"minmax"`` or ``"max"``).

    * GT-known Loc = hits / n;
    * Top-1 Loc = (hit and top-1 prediction correct) / n;
    * Top-1 / Top-5 Cls = correct / n.

    The integer counters live in ``counts`` (a tensor: n, gt-known hits, top-1 loc, top-1 cls,
    top-5 cls); ``merge(other)`` adds another evaluator's, and ``all_reduce()`` sums them over
    the processes of a ``torch.distributed`` run. ``compute()`` returns percentages.
    """

    _KEYS = ("n", "gt_known_loc", "top1_loc", "top1_cls", "top5_cls")

    def __init__(
        self, threshold: float = 0.2, iou_threshold: float = 0.5, *, normalize: str = "minmax"
    ) -> None:
        self.threshold = check_real(threshold, "threshold", 0, 1, high_open=True)
        self.iou_threshold = check_real(iou_threshold, "iou_threshold", 0, 1, low_open=True)
        self.normalize = check_normalize(normalize)
        self.reset()

    def _settings(self) -> dict[str, Any]:
        """What the counts depend on besides the data; ``merge`` and ``all_reduce`` compare it."""
        return {
            "threshold": self.threshold,
            "iou_threshold": self.iou_threshold,
            "normalize": self.normalize,
        }

    def reset(self) -> LocalizationEvaluator:
        self.counts = torch.zeros(len(self._KEYS), dtype=torch.long)
        return self

    def update(
        self, maps: ArrayLike, gt_boxes: ArrayLike, target: ArrayLike, logits: torch.Tensor
    ) -> torch.Tensor:
        """Add a batch; returns the predicted boxes (N, 4)."""
        m = check_maps(maps, finite=False)  # boxes_from_maps checks finiteness
        n = m.shape[0]
        lg = check_floating(as_tensor(logits, "logits", device=m.device), "logits")
        if lg.dim() != 2 or lg.shape[0] != n:
            raise ValueError(f"logits must have shape ({n}, M); got {tuple(lg.shape)}")
        t = check_target(target, "target", n=n, num_classes=lg.shape[1], device=m.device)
        if n == 0:  # an empty batch (the last of a sharded set): nothing to count
            return torch.zeros(0, 4, dtype=torch.long, device=m.device)
        gts = as_box_list(gt_boxes, n, m.device)
        boxes = boxes_from_maps(m, self.threshold, normalize=self.normalize)
        hit = best_iou(boxes, gts) >= self.iou_threshold
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

    def compute(self) -> dict[str, float]:
        """Percentages over everything seen: gt_known_loc, top1_loc, top1_cls, top5_cls, n."""
        n = int(self.counts[0])
        if n == 0:
            raise ValueError("compute() needs at least one update() with a non-empty batch")
        out: dict[str, float] = {"n": n}
        for key, c in zip(self._KEYS[1:], self.counts[1:].tolist(), strict=True):
            out[key] = 100.0 * c / n
        return out
