"""Boxes from maps, IoU, normalisation/upsampling and the LocalizationEvaluator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from infocam.localization import (
    LocalizationEvaluator,
    box_iou,
    boxes_from_maps,
    normalize_maps,
    upsample_maps,
)


def _mask(shape, *pixels_or_slices):
    m = torch.zeros(shape)
    for s in pixels_or_slices:
        m[s] = 1.0
    return m


def _scipy_box(mask: np.ndarray) -> list[int]:
    """Independent oracle: scipy 8-connected labels, largest by pixel count."""
    lab, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return [0, 0, 0, 0]
    sizes = ndimage.sum_labels(mask, lab, index=range(1, n + 1))
    k = 1 + int(np.argmax(sizes))
    ys, xs = np.nonzero(lab == k)
    return [xs.min(), ys.min(), xs.max(), ys.max()]


# ------------------------------------------------------------------------------- boxes


def test_two_blobs_keep_the_larger():
    m = _mask((10, 12), (slice(1, 3), slice(1, 3)), (slice(5, 9), slice(6, 11)))
    assert boxes_from_maps(m[None]).tolist() == [[6, 5, 10, 8]]


def test_ring_gives_its_outer_box():
    m = _mask((9, 9), (slice(2, 7), slice(2, 7)))
    m[3:6, 3:6] = 0
    assert boxes_from_maps(m[None]).tolist() == [[2, 2, 6, 6]]


def test_blob_touching_the_border():
    m = _mask((8, 8), (slice(0, 3), slice(5, 8)))
    assert boxes_from_maps(m[None]).tolist() == [[5, 0, 7, 2]]


def test_diagonal_neighbours_are_connected():
    m = torch.zeros(7, 7)
    for i in range(1, 6):
        m[i, i] = 1  # a diagonal line: one 8-connected component of 5 pixels
    m[0, 6] = 1
    assert boxes_from_maps(m[None]).tolist() == [[1, 1, 5, 5]]


def test_single_pixel_and_empty_mask():
    m = torch.zeros(2, 5, 6)
    m[0, 3, 4] = 0.7
    # map 1 is constant: normalised to zeros, empty mask -> the documented [0, 0, 0, 0]
    assert boxes_from_maps(m).tolist() == [[4, 3, 4, 3], [0, 0, 0, 0]]


def test_threshold_is_strict_and_relative_to_the_range():
    m = torch.tensor([[[10.0, 12.0, 20.0, 30.0]]])  # normalised: 0, 0.1, 0.5, 1
    assert boxes_from_maps(m, threshold=0.1).tolist() == [[2, 0, 3, 0]]
    assert boxes_from_maps(m, threshold=0.05).tolist() == [[1, 0, 3, 0]]


def test_random_masks_match_scipy_oracle():
    g = torch.Generator().manual_seed(3)
    maps = torch.rand(20, 17, 23, generator=g)
    got = boxes_from_maps(maps, threshold=0.6)
    norm = normalize_maps(maps).numpy()
    for i in range(20):
        assert got[i].tolist() == _scipy_box(norm[i] > 0.6)


def test_boxes_bad_input():
    with pytest.raises(ValueError, match="maps must have shape"):
        boxes_from_maps(torch.rand(4, 4))
    with pytest.raises(ValueError, match="maps must be finite; found 1 NaN"):
        boxes_from_maps(torch.tensor([[[0.0, float("nan")]]]))
    with pytest.raises(ValueError, match="threshold must be"):
        boxes_from_maps(torch.rand(1, 4, 4), threshold=1.5)


# --------------------------------------------------------------------------------- IoU


def test_iou_identical_nested_touching_disjoint():
    a = torch.tensor([[0, 0, 9, 9]])
    b = torch.tensor(
        [
            [0, 0, 9, 9],  # identical
            [2, 2, 6, 6],  # nested: 25 / 100
            [9, 0, 18, 9],  # shares the column x = 9: 10 / 190
            [10, 0, 19, 9],  # adjacent, disjoint
            [50, 50, 60, 60],  # far away
        ]
    )
    iou = box_iou(a, b)
    assert iou.dtype == torch.float64 and iou.shape == (1, 5)
    assert iou[0].tolist() == [1.0, 25 / 100, 10 / 190, 0.0, 0.0]


def test_iou_pairwise_shape_and_symmetry():
    g = torch.Generator().manual_seed(0)
    xy = torch.randint(0, 20, (6, 2), generator=g)
    wh = torch.randint(0, 10, (6, 2), generator=g)
    boxes = torch.cat([xy, xy + wh], 1)
    iou = box_iou(boxes[:4], boxes)
    assert iou.shape == (4, 6)
    torch.testing.assert_close(iou, box_iou(boxes, boxes[:4]).T)
    assert bool(((iou >= 0) & (iou <= 1)).all())


def test_iou_bad_boxes():
    with pytest.raises(ValueError, match="boxes_a must have shape"):
        box_iou(torch.zeros(3), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="x2 >= x1"):
        box_iou(torch.tensor([[5, 0, 2, 3]]), torch.zeros(1, 4))


# ---------------------------------------------------------------- normalise / upsample


def test_normalize_constant_map_is_zero_and_range_is_unit():
    m = torch.stack([torch.full((3, 3), 4.0), torch.arange(9.0).reshape(3, 3) - 3])
    out = normalize_maps(m)
    assert out[0].eq(0).all()
    assert float(out[1].min()) == 0.0 and float(out[1].max()) == 1.0


def test_upsample_matches_interpolate_and_keeps_half_inputs():
    m = torch.rand(2, 4, 5)
    out = upsample_maps(m, (8, 10))
    ref = torch.nn.functional.interpolate(
        m[:, None], size=(8, 10), mode="bilinear", align_corners=False
    )[:, 0]
    torch.testing.assert_close(out, ref)
    assert upsample_maps(m.half(), 7).shape == (2, 7, 7)
    with pytest.raises(ValueError, match="size must be"):
        upsample_maps(m, (0, 3))


# ------------------------------------------------------------------------- evaluator


def _blob_maps():
    maps = torch.zeros(4, 20, 20)
    maps[0, 2:8, 2:8] = 1  # box [2,2,7,7]
    maps[1, 10:18, 10:18] = 1  # box [10,10,17,17]
    maps[2, 0:4, 0:4] = 1  # box [0,0,3,3]
    maps[3, 5:15, 5:15] = 1  # box [5,5,14,14]
    gt = [
        torch.tensor([[2, 2, 7, 7]]),  # hit
        torch.tensor([[0, 0, 3, 3], [10, 10, 17, 16]]),  # second box hits
        torch.tensor([[10, 10, 19, 19]]),  # miss
        torch.tensor([[5, 5, 14, 14]]),  # hit
    ]
    target = torch.tensor([0, 1, 2, 3])
    logits = torch.tensor(
        [
            [9.0, 0, 0, 0, 0, 0],  # top-1 correct
            [9.0, 8, 0, 0, 0, 0],  # top-1 wrong (class 0), in top-5
            [0.0, 0, 9, 0, 0, 0],  # top-1 correct
            [9.0, 8, 7, 0, 6, 5],  # class 3 is sixth: not in the top 5
        ]
    )
    return maps, gt, target, logits


def test_localization_evaluator_counts():
    maps, gt, target, logits = _blob_maps()
    ev = LocalizationEvaluator()
    boxes = ev.update(maps, gt, target, logits)
    assert boxes.tolist() == [[2, 2, 7, 7], [10, 10, 17, 17], [0, 0, 3, 3], [5, 5, 14, 14]]
    res = ev.compute()
    assert res == {
        "n": 4,
        "gt_known_loc": 75.0,
        "top1_loc": 25.0,
        "top1_cls": 50.0,
        "top5_cls": 75.0,
    }


def test_localization_evaluator_counts_over_the_set_and_merges():
    maps, gt, target, logits = _blob_maps()
    whole = LocalizationEvaluator()
    whole.update(maps, gt, target, logits)
    # uneven batches: a mean of batch means would give a different number
    a, b = LocalizationEvaluator(), LocalizationEvaluator()
    a.update(maps[:1], gt[:1], target[:1], logits[:1])
    b.update(maps[1:], gt[1:], target[1:], logits[1:])
    assert a.merge(b).compute() == whole.compute()
    assert torch.equal(a.counts, whole.counts)
    # an empty batch (the last shard of a set split over processes) counts nothing
    boxes = a.update(maps[:0], gt[:0], target[:0], logits[:0])
    assert boxes.shape == (0, 4) and torch.equal(a.counts, whole.counts)


def test_localization_evaluator_bad_input():
    maps, gt, target, logits = _blob_maps()
    ev = LocalizationEvaluator()
    with pytest.raises(ValueError, match="compute"):
        ev.compute()
    with pytest.raises(ValueError, match="gt_boxes must hold boxes for each of the 4"):
        ev.update(maps, gt[:3], target, logits)
    with pytest.raises(ValueError, match="target must hold class indices"):
        ev.update(maps, gt, torch.tensor([0, 1, 2, 9]), logits)
    with pytest.raises(ValueError, match=r"logits must have shape \(4, M\)"):
        ev.update(maps, gt, target, logits[:2])
    bad = maps.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="maps must be finite"):
        ev.update(bad, gt, target, logits)


@settings(max_examples=60, deadline=None)
@given(
    mask=st.integers(1, 10).flatmap(
        lambda h: st.lists(st.lists(st.booleans(), min_size=h, max_size=h), min_size=1, max_size=10)
    )
)
def test_property_boxes_match_scipy(mask):
    maps = torch.tensor(mask, dtype=torch.float32)[None]
    # a constant map (all True or all False) normalises to zeros: the empty-mask box
    kept = normalize_maps(maps)[0].numpy() > 0.5
    assert boxes_from_maps(maps, threshold=0.5)[0].tolist() == _scipy_box(kept)


def test_tie_between_largest_components_goes_to_first_in_raster_order():
    # OpenCV labels in 2x2 blocks: (1, 0) would get label 1 before (0, 2). Raster order wins.
    maps = torch.tensor([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]])
    assert boxes_from_maps(maps, threshold=0.5)[0].tolist() == [2, 0, 2, 0]


# ------------------------------------------------------------ numbers from users


@pytest.mark.parametrize(
    "threshold", [np.float32(0.25), np.float64(0.25), torch.tensor(0.25), np.array(0.25), 0]
)
def test_threshold_accepts_any_real_number(threshold):
    maps = torch.rand(3, 9, 7, generator=torch.Generator().manual_seed(4))
    expect = boxes_from_maps(maps, float(threshold))
    assert torch.equal(boxes_from_maps(maps, threshold), expect)
    ev = LocalizationEvaluator(threshold=threshold, iou_threshold=np.float32(0.5))
    assert type(ev.threshold) is float and type(ev.iou_threshold) is float
    ev.update(maps, [torch.tensor([[0, 0, 3, 3]])] * 3, torch.tensor([0, 1, 0]), torch.randn(3, 2))
    assert ev.compute()["n"] == 3


def test_threshold_errors_name_what_came():
    maps = torch.rand(1, 4, 4)
    cases = [
        (True, TypeError, r"threshold must be a real number in \[0, 1\); got bool True"),
        ("0.2", TypeError, r"threshold must be a real number in \[0, 1\); got str '0.2'"),
        (torch.tensor([0.2]), TypeError, r"got Tensor of shape \(1,\)"),
        (1.0, ValueError, r"threshold must be a real number in \[0, 1\); got 1\.0"),
        (float("nan"), ValueError, "got nan"),
    ]
    for value, exc, needle in cases:
        with pytest.raises(exc, match=needle):
            boxes_from_maps(maps, value)
        with pytest.raises(exc, match=needle):  # at construction, not at the first update
            LocalizationEvaluator(threshold=value)
    with pytest.raises(TypeError, match=r"iou_threshold must be a real number in \(0, 1\]"):
        LocalizationEvaluator(iou_threshold=True)
    with pytest.raises(ValueError, match=r"iou_threshold must be .*; got 0\.0"):
        LocalizationEvaluator(iou_threshold=0)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"threshold": 0.3}, r"threshold 0\.2 vs 0\.3"),
        ({"iou_threshold": 0.7}, r"0\.5 vs 0\.7"),
        ({"normalize": "max"}, r"normalize 'minmax' vs 'max'"),
    ],
)
def test_localization_evaluator_merge_refuses_other_settings(kwargs, needle):
    maps, gt, target, logits = _blob_maps()
    a, b = LocalizationEvaluator(), LocalizationEvaluator(**kwargs)
    a.update(maps, gt, target, logits)
    b.update(maps, gt, target, logits)
    before = a.counts.clone()
    with pytest.raises(ValueError, match="cannot merge LocalizationEvaluators with different"):
        a.merge(b)
    with pytest.raises(ValueError, match=needle):
        a.merge(b)
    assert torch.equal(a.counts, before)
    with pytest.raises(TypeError, match="other must be a LocalizationEvaluator"):
        a.merge(object())


def test_upsample_mode_and_size_are_checked():
    m = torch.rand(2, 3, 4)
    with pytest.raises(ValueError, match=r"mode must be one of \('nearest', .*'area'\); got 'foo'"):
        upsample_maps(m, 4, mode="foo")
    with pytest.raises(ValueError, match="mode must be one of"):
        upsample_maps(m, 4, mode="linear")  # a 1-D mode
    for mode in ("nearest", "nearest-exact", "bicubic", "area"):
        assert upsample_maps(m, 5, mode=mode).shape == (2, 5, 5)
    assert upsample_maps(m, np.int64(6)).shape == (2, 6, 6)
    assert upsample_maps(m, torch.tensor([5, 7])).shape == (2, 5, 7)
    with pytest.raises(TypeError, match=r"size must be a positive int .*; got \(2\.5, 3\)"):
        upsample_maps(m, (2.5, 3))  # was truncated to 2
    with pytest.raises(ValueError, match="got 3 values"):
        upsample_maps(m, (2, 3, 4))


# ------------------------------------------------------------------ normalize="max" (issue 14)


def test_normalize_max_is_the_share_of_the_maximum_float64_reference():
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(4, 9, 11, generator=g, dtype=torch.float64)
    maps[2] = -maps[2].abs()  # no positive value: nothing is kept
    maps[3] = maps[3].abs() + 1  # minimum > 0: min-max stretches it, "max" does not
    got = normalize_maps(maps, "max")
    x = maps.numpy()
    for i in range(4):
        top = x[i].max()
        ref = np.maximum(x[i], 0) / top if top > 0 else np.zeros_like(x[i])
        np.testing.assert_allclose(got[i].numpy(), ref, rtol=1e-12, atol=0)
    assert float(got.min()) >= 0 and float(got.max()) <= 1
    # the default is min-max (wsolevaluation's), unchanged
    torch.testing.assert_close(normalize_maps(maps), normalize_maps(maps, "minmax"))
    lo = maps.amin((1, 2), keepdim=True)
    ref = (maps - lo) / (maps.amax((1, 2), keepdim=True) - lo)
    torch.testing.assert_close(normalize_maps(maps), ref)


def test_boxes_max_keeps_values_over_a_share_of_the_maximum_never_negatives():
    # a signed map: background 0, a blob at 1, one pixel at -1 (minimum != 0)
    m = torch.zeros(1, 20, 20)
    m[0, 5:10, 6:12] = 1.0
    m[0, 18, 18] = -1.0
    # min-max: the background (0) becomes 0.5 > 0.2: the box is nearly the whole map
    assert boxes_from_maps(m, 0.2).tolist() == [[0, 0, 19, 19]]
    # the paper's rule: > 0.2 x max keeps the blob only
    assert boxes_from_maps(m, 0.2, normalize="max").tolist() == [[6, 5, 11, 9]]
    # equal when the minimum is 0
    pos = m.clamp(min=0)
    assert boxes_from_maps(pos, 0.2).tolist() == boxes_from_maps(pos, 0.2, normalize="max").tolist()
    # a map with no positive value keeps nothing, however the threshold is set
    assert boxes_from_maps(-m.abs() - 1, 0.0, normalize="max").tolist() == [[0, 0, 0, 0]]
    # kept iff map > t * max, pixel by pixel (float64 reference)
    g = torch.Generator().manual_seed(1)
    r = torch.randn(1, 30, 30, generator=g, dtype=torch.float64)
    for t in (0.0, 0.2, 0.5):
        mask = (r[0] > t * r[0].max()).numpy()
        assert boxes_from_maps(r, t, normalize="max")[0].tolist() == _scipy_box(mask)


def test_normalize_is_checked_and_reaches_the_evaluator():
    m = torch.zeros(1, 20, 20)
    m[0, 5:10, 6:12] = 1.0
    m[0, 18, 18] = -1.0
    gt = torch.tensor([[6, 5, 11, 9]])
    target, logits = torch.tensor([0]), torch.tensor([[1.0, 0.0]])
    mm = LocalizationEvaluator(0.2)
    mx = LocalizationEvaluator(0.2, normalize="max")
    mm.update(m, gt, target, logits)
    mx.update(m, gt, target, logits)
    assert mm.compute()["gt_known_loc"] == 0.0 and mx.compute()["gt_known_loc"] == 100.0
    for bad in ("range", None, 1):
        with pytest.raises(ValueError, match=r"normalize must be one of \('minmax', 'max'\)"):
            normalize_maps(m, bad)
        with pytest.raises(ValueError, match="normalize must be one of"):
            boxes_from_maps(m, normalize=bad)
        with pytest.raises(ValueError, match="normalize must be one of"):
            LocalizationEvaluator(normalize=bad)
    with pytest.raises(ValueError, match="maps"):
        normalize_maps(torch.tensor([[[1.0, float("nan")]]]), "max")
    with pytest.raises(ValueError, match="maps"):
        normalize_maps(torch.tensor([[[1.0, float("-inf")]]]), "max")
