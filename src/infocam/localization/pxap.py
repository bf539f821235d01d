"""PxAP (Choe et al. 2020), the same numbers as clovaai/wsolevaluation's ``MaskEvaluator``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from infocam._validation import ArrayLike, as_tensor, check_real
from infocam.localization._counting import CountingEvaluator
from infocam.localization.maps import check_maps
from infocam.localization.maxboxacc import _check_map_values

__all__ = ["PxAPEvaluator"]


def _check_binary(value: ArrayLike, name: str, shape: tuple[int, ...], device: Any) -> torch.Tensor:
    """``value`` as a bool tensor of ``shape`` on ``device``; only 0/1 (or bool) values."""
    x = as_tensor(value, name)
    if tuple(x.shape) != shape:
        raise ValueError(
            f"{name} must have the maps' shape {shape} (N, H, W); got {tuple(x.shape)}"
        )
    if x.dtype == torch.bool:
        return x.to(device)
    if x.is_complex():
        raise TypeError(f"{name} must be binary (bool or 0 / 1 numbers); got dtype {x.dtype}")
    bad = (x != 0) & (x != 1)  # NaN is != 0 and != 1: refused too
    if bool(bad.any()):
        odd = x[bad]
        raise ValueError(
            f"{name} must be binary (bool or 0 / 1 values); got {int(odd.numel())} other "
            f"value(s), e.g. {odd[:3].tolist()}"
        )
    return (x == 1).to(device)


class PxAPEvaluator(CountingEvaluator):
    """PxAP (Choe et al. 2020), identical to clovaai/wsolevaluation's ``MaskEvaluator``.

    Pixel-wise average precision of the maps against ground-truth masks: every pixel is a
    detection scored by its map value, foreground pixels are the positives. The CAM thresholds
    are ``np.arange(0, 1, cam_curve_interval)`` and the histogram bin edges those thresholds
    followed by 1.0, 2.0 and 3.0 (wsolevaluation's ``threshold_list_right_edge``): bins
    ``[t_0, t_1), ..., [t_last, 1), [1, 2), [2, 3]``, so a value equal to a threshold counts
    in the bin it opens (``t_k <= x < t_k+1``, in float64: float32 maps are compared exactly)
    and a value of exactly 1 in ``[1, 2)``. Per image the map values of the foreground pixels
    and of the background pixels are histogrammed separately (as ``np.histogram``), pixels of
    the ignore region left out; ``compute`` then follows ``MaskEvaluator.compute`` in float64:
    ``tp`` / ``fp`` are the reversed cumulative sums of the foreground / background histograms
    (pixels with value >= 2, >= 1, >= t_last, ..., >= 0), ``precision = tp / (tp + fp)``,
    ``recall = tp / (number of foreground pixels)``, and
    ``PxAP = 100 * sum(precision[1:] * diff(recall))`` over the points where ``tp + fp > 0``
    (where nothing is predicted, precision is NaN and the point is left out).

    Maps (N, H, W) must be in [0, 1], min-max normalised per image as wsolevaluation's scoremaps
    are (use :func:`~infocam.normalize_maps`). A perfect map (1 on the foreground, 0 elsewhere)
    scores 100; a constant map scores the foreground's share of the counted pixels.

    ``fg_hist`` and ``bg_hist`` are int64 tensors (len(cam_thresholds) + 2,) of pixel counts
    and ``n`` the number of images; ``merge(other)`` adds another evaluator's, ``all_reduce()``
    sums them over the processes of a ``torch.distributed`` run. The histograms are computed
    on the maps' device (one ``bucketize`` and one ``bincount`` per batch) and added to the
    counters on the CPU.
    """

    _COUNTERS = ("fg_hist", "bg_hist", "n")

    def __init__(self, cam_curve_interval: float = 0.01) -> None:
        self.cam_curve_interval = check_real(
            cam_curve_interval, "cam_curve_interval", 0, 1, low_open=True, high_open=True
        )
        self.cam_thresholds = np.arange(0, 1, self.cam_curve_interval)
        self.bin_edges = np.append(self.cam_thresholds, [1.0, 2.0, 3.0])
        self.num_bins = len(self.bin_edges) - 1
        self.reset()

    def _settings(self) -> dict[str, Any]:
        return {"cam_curve_interval": self.cam_curve_interval}

    def reset(self) -> PxAPEvaluator:
        """Forget every count."""
        self.fg_hist = torch.zeros(self.num_bins, dtype=torch.long)
        self.bg_hist = torch.zeros(self.num_bins, dtype=torch.long)
        self.n = torch.zeros((), dtype=torch.long)
        return self

    def update(self, maps: ArrayLike, masks: ArrayLike, ignore: ArrayLike | None = None) -> None:
        """Add maps (N, H, W) in [0, 1] with their foreground ``masks`` (N, H, W).

        ``masks`` and ``ignore`` are bool or 0 / 1 tensors (numpy arrays accepted) of the maps'
        shape. ``ignore`` marks pixels left out of the counts; as in wsolevaluation's
        ``get_mask`` (ignore box minus foreground), a foreground pixel always counts.
        """
        m = check_maps(maps, finite=False)
        shape = tuple(m.shape)
        fg = _check_binary(masks, "masks", shape, m.device)
        off = None if ignore is None else _check_binary(ignore, "ignore", shape, m.device)
        if shape[0] == 0:  # an empty batch (the last of a sharded set): nothing to count
            return
        _check_map_values(m)
        x = m.detach()
        if x.device.type == "mps":  # no float64 there: the exact comparison runs on the CPU
            x, fg = x.cpu(), fg.cpu()
            off = None if off is None else off.cpu()
        edges = torch.as_tensor(self.bin_edges, dtype=torch.float64, device=x.device)
        # bin k holds edges[k] <= x < edges[k + 1], np.histogram's convention on [0, 1]
        bins = torch.bucketize(x.to(torch.float64), edges, right=True) - 1
        index = bins + fg.long() * self.num_bins
        if off is not None:  # ignored background pixels go to one extra bin, dropped below
            index = torch.where(off & ~fg, 2 * self.num_bins, index)
        counts = torch.bincount(index.reshape(-1), minlength=2 * self.num_bins + 1).cpu()
        self.bg_hist += counts[: self.num_bins]
        self.fg_hist += counts[self.num_bins : 2 * self.num_bins]
        self.n += shape[0]

    def precision_recall(self) -> tuple[np.ndarray, np.ndarray]:
        """wsolevaluation's precision and recall (float64), from pixels >= 2, >= 1, >= t_last
        down to >= 0; precision is NaN where nothing is predicted."""
        if int(self.n) == 0:
            raise ValueError("compute() needs at least one update() with a non-empty batch")
        fg = self.fg_hist.numpy().astype(np.float64)
        bg = self.bg_hist.numpy().astype(np.float64)
        num_fg = fg.sum()
        if num_fg <= 0:
            raise ValueError(
                "PxAP needs at least one foreground pixel in the masks (outside ignore); got none"
            )
        tp = fg[::-1].cumsum()
        fp = bg[::-1].cumsum()
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = tp / (tp + fp)
        recall = tp / (tp + (num_fg - tp))
        return precision, recall

    def compute(self) -> dict[str, float]:
        """{"PxAP": area under the pixel precision-recall curve, in percent}."""
        precision, recall = self.precision_recall()
        predicted = ~np.isnan(precision)  # tp + fp != 0
        auc = (precision[1:] * np.diff(recall))[predicted[1:]].sum()
        return {"PxAP": float(auc * 100)}
