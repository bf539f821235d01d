"""A faithful re-statement of clovaai/wsolevaluation's MaxBoxAccV2 per-image loop (and PxAP).

Written from ``evaluation.py`` (``compute_bboxes_from_scoremaps``, ``calculate_multiple_iou``,
``BoxEvaluator.accumulate`` / ``compute``) of https://github.com/clovaai/wsolevaluation, with
the same operations in the same order: one ``cv2.threshold`` + ``cv2.findContours`` +
``boundingRect`` per CAM threshold, per image. Used by ``benchmarks/cam_pipeline.py`` (as the
speed baseline) and ``tests/test_maxboxacc.py`` (as the oracle for equal scores);
``ReferenceMaskEvaluator`` restates ``MaskEvaluator`` (PxAP) for ``tests/test_pxap.py``.
"""

from __future__ import annotations

import cv2
import numpy as np


def reference_boxes(scoremap: np.ndarray, thresholds, multi_contour: bool):
    """Estimated boxes and box counts at each CAM threshold (compute_bboxes_from_scoremaps)."""
    height, width = scoremap.shape
    image = np.expand_dims((scoremap * 255).astype(np.uint8), 2)
    boxes_per_thr, counts = [], []
    for threshold in thresholds:
        _, binary = cv2.threshold(
            src=image, thresh=int(threshold * np.max(image)), maxval=255, type=cv2.THRESH_BINARY
        )
        contours = cv2.findContours(
            image=binary, mode=cv2.RETR_TREE, method=cv2.CHAIN_APPROX_SIMPLE
        )[0]
        if len(contours) == 0:
            boxes_per_thr.append(np.asarray([[0, 0, 0, 0]]))
            counts.append(1)
            continue
        if not multi_contour:
            contours = [max(contours, key=cv2.contourArea)]
        boxes = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
        boxes_per_thr.append(np.asarray(boxes))
        counts.append(len(contours))
    return boxes_per_thr, counts


def reference_iou(box_a: np.ndarray, box_b: np.ndarray) -> np.ndarray:
    """calculate_multiple_iou: pairwise IoU with +1 areas, 0 where the union is <= 0."""
    min_xy = np.maximum(box_a[:, None, :2], box_b[None, :, :2])
    max_xy = np.minimum(box_a[:, None, 2:], box_b[None, :, 2:])
    inter = np.maximum(0, max_xy[..., 0] - min_xy[..., 0] + 1) * np.maximum(
        0, max_xy[..., 1] - min_xy[..., 1] + 1
    )
    area_a = (box_a[:, 2] - box_a[:, 0] + 1) * (box_a[:, 3] - box_a[:, 1] + 1)
    area_b = (box_b[:, 2] - box_b[:, 0] + 1) * (box_b[:, 3] - box_b[:, 1] + 1)
    den = area_a[:, None] + area_b[None, :] - inter
    degenerate = np.where(den <= 0)
    den[degenerate] = 1
    ious = inter / den
    ious[degenerate] = 0
    return ious


class ReferenceBoxEvaluator:
    """wsolevaluation's BoxEvaluator without its metadata plumbing: accumulate(map, gt_boxes)."""

    def __init__(self, iou_thresholds=(30, 50, 70), cam_curve_interval=0.01, multi_contour=True):
        self.cam_thresholds = list(np.arange(0, 1, cam_curve_interval))
        self.iou_thresholds = list(iou_thresholds)
        self.multi_contour = multi_contour
        self.num_correct = {t: np.zeros(len(self.cam_thresholds)) for t in self.iou_thresholds}
        self.cnt = 0

    def accumulate(self, scoremap: np.ndarray, gt_boxes) -> None:
        scoremap = np.asarray(scoremap, dtype=np.float64)  # t2n(cam): float64
        boxes, counts = reference_boxes(scoremap, self.cam_thresholds, self.multi_contour)
        ious = reference_iou(np.concatenate(boxes, axis=0), np.asarray(gt_boxes))
        best_per_box = ious.max(1)
        sliced, idx = [], 0
        for nr in counts:
            sliced.append(max(best_per_box[idx : idx + nr]))
            idx += nr
        for t in self.iou_thresholds:
            self.num_correct[t][np.where(np.asarray(sliced) >= (t / 100))[0]] += 1
        self.cnt += 1

    def compute(self) -> dict[str, float]:
        best = [(self.num_correct[t] * 100.0 / float(self.cnt)).max() for t in self.iou_thresholds]
        out = {"MaxBoxAccV2": float(np.average(best))}
        for t, b in zip(self.iou_thresholds, best, strict=True):
            out[f"MaxBoxAcc@{t:g}"] = float(b)
        return out


class ReferenceMaskEvaluator:
    """wsolevaluation's ``MaskEvaluator`` (PxAP): ``accumulate(scoremap, mask)`` / ``compute``.

    ``mask`` is ``get_mask``'s encoding: 1 foreground, 0 background, 255 ignored.
    """

    def __init__(self, cam_curve_interval: float = 0.01):
        self.cam_threshold_list = list(np.arange(0, 1, cam_curve_interval))
        self.num_bins = len(self.cam_threshold_list) + 2
        self.threshold_list_right_edge = np.append(self.cam_threshold_list, [1.0, 2.0, 3.0])
        self.gt_true_score_hist = np.zeros(self.num_bins, dtype=np.float64)
        self.gt_false_score_hist = np.zeros(self.num_bins, dtype=np.float64)

    def accumulate(self, scoremap: np.ndarray, gt_mask: np.ndarray) -> None:
        gt_true_scores = scoremap[gt_mask == 1]
        gt_false_scores = scoremap[gt_mask == 0]
        gt_true_hist, _ = np.histogram(gt_true_scores, bins=self.threshold_list_right_edge)
        self.gt_true_score_hist += gt_true_hist.astype(np.float64)
        gt_false_hist, _ = np.histogram(gt_false_scores, bins=self.threshold_list_right_edge)
        self.gt_false_score_hist += gt_false_hist.astype(np.float64)

    def compute(self) -> float:
        num_gt_true = self.gt_true_score_hist.sum()
        tp = self.gt_true_score_hist[::-1].cumsum()
        fn = num_gt_true - tp
        fp = self.gt_false_score_hist[::-1].cumsum()
        if ((tp + fn) <= 0).all():
            raise RuntimeError("No positive ground truth in the eval set.")
        if ((tp + fp) <= 0).all():
            raise RuntimeError("No positive prediction in the eval set.")
        non_zero_indices = (tp + fp) != 0
        with np.errstate(invalid="ignore"):
            precision = tp / (tp + fp)
        recall = tp / (tp + fn)
        auc = (precision[1:] * np.diff(recall))[non_zero_indices[1:]].sum()
        return auc * 100
