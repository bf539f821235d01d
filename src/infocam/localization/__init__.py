"""From maps to boxes to weakly supervised localisation (WSOL) scores.

* ``upsample_maps`` / ``normalize_maps``: to image size; min-max per map (a constant map
  becomes zeros), or ``normalize="max"``: ``max(m, 0) / max``.
* ``boxes_from_maps``: the CAM paper's box (Zhou et al. 2016, used by the infoCAM paper): keep
  normalised values ``> threshold`` (min-max by default, as wsolevaluation; ``normalize="max"``
  is the paper's "more than 20% of the maximum" on signed maps), take the largest 8-connected
  component (most pixels; ties go to the component met first in raster order) and return its
  tight box ``x1, y1, x2, y2`` in inclusive pixel coordinates. An empty mask (a constant map) gives
  ``[0, 0, 0, 0]``, as wsolevaluation does.
* ``box_iou``: pairwise IoU with inclusive-pixel areas ``(x2 - x1 + 1) * (y2 - y1 + 1)``;
  disjoint boxes score 0 (the original infoCAM code scored them > 0).
* ``LocalizationEvaluator``: GT-known Loc, Top-1 Loc, Top-1/Top-5 classification, counted over
  the whole set.
* ``MaxBoxAccEvaluator``: MaxBoxAccV2 of Choe et al. 2020 (clovaai/wsolevaluation), the same
  numbers as its ``BoxEvaluator`` (see the class docstring for the conventions it copies).
* ``PxAPEvaluator``: PxAP of Choe et al. 2020, pixel-wise average precision against
  ground-truth masks with ignore regions, the same numbers as wsolevaluation's ``MaskEvaluator``.

Evaluators keep integer counters (``counts``, int64 tensors): ``merge(other)`` adds another
evaluator's, ``all_reduce()`` sums them over the processes of a ``torch.distributed`` run, and
``sum_over_processes(evaluators)`` sums many evaluators' in one collective (their common base,
``CountingEvaluator``, owns all three).

Modules: :mod:`~infocam.localization.maps`, :mod:`~infocam.localization.boxes`,
:mod:`~infocam.localization.evaluator` (GT-known / Top-1),
:mod:`~infocam.localization.maxboxacc` (MaxBoxAccV2),
:mod:`~infocam.localization.pxap` (PxAP); the private ``_counting`` holds the base.
"""

from infocam.localization._counting import CountingEvaluator, sum_over_processes
from infocam.localization.boxes import box_iou, boxes_from_maps
from infocam.localization.evaluator import LocalizationEvaluator
from infocam.localization.maps import (
    NORMALIZATIONS,
    UPSAMPLE_MODES,
    normalize_maps,
    upsample_maps,
)
from infocam.localization.maxboxacc import MaxBoxAccEvaluator
from infocam.localization.pxap import PxAPEvaluator

__all__ = [
    "NORMALIZATIONS",
    "UPSAMPLE_MODES",
    "CountingEvaluator",
    "LocalizationEvaluator",
    "MaxBoxAccEvaluator",
    "PxAPEvaluator",
    "box_iou",
    "boxes_from_maps",
    "normalize_maps",
    "sum_over_processes",
    "upsample_maps",
]
