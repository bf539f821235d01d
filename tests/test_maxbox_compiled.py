"""The compiled MaxBoxAccV2 backend (infocam._maxbox) against OpenCV and wsolevaluation's loop.

Its boxes are never listed, only the best IoU per threshold, so the box sets are checked
through IoUs: on small masks, with every possible box as the ground truth in turn, the best IoU
of the compiled code equals that of cv2.findContours(RETR_TREE) + boundingRect. Equal for every
box means equal box sets (a box in one set and not the other would score 1 against itself).
Both methods inside the module (row runs and pixel sweeps) are checked.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from infocam.localization import MaxBoxAccEvaluator, normalize_maps, upsample_maps

try:  # not a skip: a test run without the extension would not test what users run
    from infocam import _maxbox
except ImportError as e:
    raise ImportError(
        "infocam._maxbox is not built; `make test` (or pip install -e .) compiles it"
    ) from e

_REF = Path(__file__).resolve().parents[1] / "benchmarks" / "wsol_reference.py"
_spec = importlib.util.spec_from_file_location("wsol_reference", _REF)
wsol = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wsol)

METHODS = (1, 2)  # pixel sweeps, row runs (0 picks one per image)


def test_the_compiled_backend_is_built_and_used():
    # CI installs with a compiler: the fast path must really be the one under test
    assert MaxBoxAccEvaluator().backend == "compiled"
    assert MaxBoxAccEvaluator(backend="opencv").backend == "opencv"
    assert MaxBoxAccEvaluator(multi_contour=False).backend == "opencv"
    with pytest.raises(ValueError, match="multi_contour=True only"):
        MaxBoxAccEvaluator(multi_contour=False, backend="compiled")
    with pytest.raises(ValueError, match="backend must be"):
        MaxBoxAccEvaluator(backend="fast")


# ------------------------------------------------------------------ box sets on masks


def _all_boxes(h, w):
    xs = [(a, b) for a in range(w) for b in range(a, w)]
    ys = [(a, b) for a in range(h) for b in range(a, h)]
    return np.array([[x0, y0, x1, y1] for x0, x1 in xs for y0, y1 in ys], dtype=np.int64)


def _cv2_best(mask, gts):
    """Best IoU of wsolevaluation's boxes of a binary mask against each box of gts."""
    h, w = mask.shape
    contours = cv2.findContours(
        mask.astype(np.uint8) * 255, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE
    )[0]
    boxes = []
    for c in contours:
        x, y, bw, bh = cv2.boundingRect(c)
        boxes.append([x, y, min(x + bw, w - 1), min(y + bh, h - 1)])
    boxes = np.asarray(boxes or [[0, 0, 0, 0]], dtype=np.int64)
    return wsol.reference_iou(boxes, gts).max(0)


def _compiled_best(mask, gts, method):
    """The module's best IoU at cut 0 of the map `mask` (q = 255 * mask), one box per image."""
    n = len(gts)
    maps = np.repeat(mask[None].astype(np.float64), n, 0)
    out = np.empty((n, 1))
    offsets = np.arange(n + 1, dtype=np.int64)
    _maxbox.best_ious(maps, np.zeros(1), gts, offsets, out, method)
    return out[:, 0]


def _check_mask(mask):
    gts = _all_boxes(*mask.shape)
    want = _cv2_best(mask, gts)
    for method in METHODS:
        np.testing.assert_array_equal(_compiled_best(mask, gts, method), want)


def _ring(h, w, y0, x0, y1, x1):
    m = np.zeros((h, w), bool)
    m[y0 : y1 + 1, x0 : x1 + 1] = True
    m[y0 + 1 : y1, x0 + 1 : x1] = False
    return m


HAND_MADE = {
    "empty": np.zeros((5, 6), bool),
    "full": np.ones((5, 6), bool),
    "one pixel": np.eye(1, 1, dtype=bool),
    "row": np.array([[1, 0, 1, 1, 0, 1, 1, 1]], bool),
    "column": np.array([[1], [1], [0], [1]], bool),
    "ring": _ring(7, 7, 1, 1, 5, 5),
    "nested rings": _ring(11, 11, 0, 0, 10, 10)
    | _ring(11, 11, 2, 2, 8, 8)
    | _ring(11, 11, 4, 4, 6, 6),
    "ring on the border": _ring(6, 8, 0, 0, 5, 7),
    "hole open to the border": _ring(6, 6, 0, 0, 5, 5) & ~np.eye(6, 6, k=0, dtype=bool)[::-1],
    "diagonal only": np.eye(6, dtype=bool) | np.eye(6, dtype=bool)[::-1],
    "diamond (hole linked by corners)": np.array(
        [[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]], bool
    ),
    "two holes": _ring(5, 9, 0, 0, 4, 4) | _ring(5, 9, 0, 4, 4, 8),
    "checkerboard": (np.add.outer(np.arange(6), np.arange(7)) % 2).astype(bool),
}


@pytest.mark.parametrize("name", sorted(HAND_MADE))
def test_box_sets_on_hand_made_masks(name):
    _check_mask(HAND_MADE[name])


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 7),
    w=st.integers(1, 7),
    density=st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]),
    seed=st.integers(0, 2**31),
)
def test_box_sets_on_random_masks(h, w, density, seed):
    rng = np.random.default_rng(seed)
    _check_mask(rng.random((h, w)) < density)


@pytest.mark.parametrize("density", [0.2, 0.5, 0.8])
def test_box_sets_on_larger_masks(density):
    # wide enough for the 16-pixel SIMD paths; ground truth: cv2's own boxes + random ones
    rng = np.random.default_rng(int(density * 10))
    mask = rng.random((21, 45)) < density
    mask[5:16, 10:35] = rng.random((11, 25)) < 0.9  # a blob with small holes
    contours = cv2.findContours(
        mask.astype(np.uint8) * 255, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE
    )[0]
    own = [
        [x, y, min(x + bw, 44), min(y + bh, 20)] for x, y, bw, bh in map(cv2.boundingRect, contours)
    ]
    x0, y0 = rng.integers(0, 45, 300), rng.integers(0, 21, 300)
    other = np.stack([x0, y0, rng.integers(x0, 45), rng.integers(y0, 21)], 1)
    gts = np.concatenate([np.asarray(own, dtype=np.int64), other]).astype(np.int64)
    want = _cv2_best(mask, gts)
    assert (want[: len(own)] == 1).all()
    for method in METHODS:
        np.testing.assert_array_equal(_compiled_best(mask, gts, method), want)


# --------------------------------------------------------- evaluator vs wsolevaluation


def _gt_boxes(n, h, w, rng):
    out = []
    for _ in range(n):
        boxes = []
        for _ in range(rng.integers(1, 4)):
            x0, y0 = rng.integers(0, w), rng.integers(0, h)
            boxes.append([x0, y0, rng.integers(x0, w), rng.integers(y0, h)])
        out.append(np.asarray(boxes))
    return out


def _maps(kind, n, h, w, rng):
    if kind == "smooth":
        small = torch.from_numpy(rng.random((n, 4, 5)) ** 3)
        return normalize_maps(upsample_maps(small, (h, w)))
    if kind == "noisy":
        m = torch.from_numpy(rng.random((n, h, w)))
        m[m < 0.5] = 0
        return m
    if kind == "levels":  # few distinct values: plateaus, rings and holes at many cuts
        return torch.from_numpy(rng.integers(0, 4, (n, h, w)) / 3.0)
    if kind == "constant":
        return torch.full((n, h, w), 0.4, dtype=torch.float64)
    return torch.zeros(n, h, w, dtype=torch.float64)  # all zero


def _compare(maps, gts, **kwargs):
    ref = wsol.ReferenceBoxEvaluator(**kwargs)
    for m, g in zip(maps.double().numpy(), gts, strict=True):
        ref.accumulate(m, g)
    ours = MaxBoxAccEvaluator(**kwargs)
    assert ours.backend == "compiled"
    ours.update(maps, [torch.as_tensor(g) for g in gts])
    for i, t in enumerate(ref.iou_thresholds):
        np.testing.assert_array_equal(ours.counts[i].numpy(), ref.num_correct[t])
    assert ours.compute() == ref.compute()
    return ours


@pytest.mark.parametrize("kind", ["smooth", "noisy", "levels", "constant", "zero"])
@pytest.mark.parametrize("interval", [0.01, 0.001, 0.05])
def test_equal_to_wsolevaluation(kind, interval):
    rng = np.random.default_rng(abs(hash((kind, interval))) % 2**32)
    n = 3 if interval == 0.001 else 6
    h, w = (37, 53) if kind == "smooth" else (23, 18)
    maps = _maps(kind, n, h, w, rng)
    _compare(maps, _gt_boxes(n, h, w, rng), cam_curve_interval=interval)


@pytest.mark.parametrize("shape", [(1, 1), (1, 17), (17, 1), (2, 40), (70, 3)])
def test_tiny_and_thin_maps(shape):
    rng = np.random.default_rng(sum(shape))
    for kind in ("smooth", "levels"):
        maps = _maps(kind, 4, *shape, rng)
        _compare(maps, _gt_boxes(4, *shape, rng), cam_curve_interval=0.01)


def test_both_methods_and_the_opencv_backend_agree():
    rng = np.random.default_rng(11)
    maps = torch.cat([_maps("smooth", 5, 64, 48, rng), _maps("levels", 5, 64, 48, rng)])
    gts = _gt_boxes(10, 64, 48, rng)
    x = np.ascontiguousarray(maps.numpy())
    boxes = np.concatenate(gts).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum([len(g) for g in gts])]).astype(np.int64)
    thr = np.arange(0, 1, 0.01)
    outs = []
    for method in (0, 1, 2):
        out = np.empty((10, len(thr)))
        _maxbox.best_ious(x, thr, boxes, offsets, out, method)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])
    evs = [
        MaxBoxAccEvaluator(backend=b, num_threads=t)
        for b, t in [("compiled", 1), ("compiled", 3), ("opencv", 1)]
    ]
    for ev in evs:
        ev.update(maps, gts)
    assert torch.equal(evs[0].counts, evs[1].counts) and torch.equal(evs[0].counts, evs[2].counts)


def test_automatic_choice_gives_up_labelling_noise_for_the_sweeps():
    """Large noise passes the per-image cost model (fitted at 224 x 224) but has far more runs
    per row than it assumes: the row runs give up once they have cost what the sweeps would
    and the sweeps redo the image (here 1024 x 1024 noise: about 1.5x the sweeps' time instead
    of 6x). The results must not depend on it, also for a smooth map after it in the batch."""
    rng = np.random.default_rng(5)
    noise = rng.random((1, 1024, 1024))
    smooth = _maps("smooth", 1, 1024, 1024, rng).numpy()
    x = np.ascontiguousarray(np.concatenate([noise, smooth]))
    gts = _gt_boxes(2, 1024, 1024, rng)
    boxes = np.concatenate(gts).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum([len(g) for g in gts])]).astype(np.int64)
    thr = np.arange(0, 1, 0.05)
    outs = []
    for method in (0, 1):
        out = np.full((2, len(thr)), np.nan)
        _maxbox.best_ious(x, thr, boxes, offsets, out, method)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_empty_batches_and_strided_maps():
    ev, ref = MaxBoxAccEvaluator(num_threads=4), MaxBoxAccEvaluator(backend="opencv")
    ev.update(torch.zeros(0, 8, 8), torch.zeros(0, 4, dtype=torch.long))
    assert int(ev.n) == 0 and int(ev.counts.sum()) == 0
    maps = torch.rand(3, 7, 9, generator=torch.Generator().manual_seed(0)).transpose(1, 2)
    for e in (ev, ref):
        e.update(maps, [[0, 0, 3, 3]] * 3)
    assert torch.equal(ev.counts, ref.counts) and int(ev.n) == 3


def test_float32_and_half_maps_quantise_like_float64():
    rng = np.random.default_rng(5)
    maps = _maps("smooth", 4, 30, 30, rng).float()
    gts = _gt_boxes(4, 30, 30, rng)
    a, b = MaxBoxAccEvaluator(), MaxBoxAccEvaluator(backend="opencv")
    a.update(maps, gts)
    b.update(maps, gts)  # float32 -> float64 in the OpenCV path
    assert torch.equal(a.counts, b.counts)
    c, d = MaxBoxAccEvaluator(), MaxBoxAccEvaluator(backend="opencv")
    c.update(maps.half(), gts)
    d.update(maps.half(), gts)
    assert torch.equal(c.counts, d.counts)


# --------------------------------------------------------------------------- bad input


def _args(n=2, h=4, w=5, t=3):
    return [
        np.zeros((n, h, w)),
        np.linspace(0, 0.9, t),
        np.zeros((n, 4), np.int64),
        np.arange(n + 1, dtype=np.int64),
        np.empty((n, t)),
    ]


@pytest.mark.parametrize(
    ("position", "value", "message"),
    [
        (0, np.zeros((4, 5)), r"maps must be a float64 or float32 array of shape \(N, H, W\)"),
        (0, np.zeros((2, 4, 5), np.int64), "maps must be a float64 or float32"),
        (0, np.zeros((2, 4, 5))[:, ::2], "maps must be a C-contiguous"),
        (0, np.zeros((2, 0, 5)), "at least 1 x 1"),
        (0, np.full((2, 4, 5), 1.5), r"maps must hold finite values in \[0, 1\]; maps\[0\]"),
        (0, np.full((2, 4, 5), np.nan), r"finite values in \[0, 1\]"),
        (1, np.array([0.0, 1.0]), r"thresholds must lie in \[0, 1\); thresholds\[1\] is 1.0"),
        (1, np.zeros((1, 3)), "thresholds must be a 1-d float64 array"),
        (2, np.zeros((2, 3), np.int64), r"gt_boxes must be an int64 array of shape \(G, 4\)"),
        (2, np.zeros((2, 4)), "gt_boxes must be an int64"),
        (3, np.array([0, 1], np.int64), r"offsets must be an int64 array of shape \(3,\)"),
        (3, np.array([0, 1, 3], np.int64), "offsets must start at 0 and end at len"),
        (3, np.array([0, 2, 2], np.int64), "offsets must increase"),
        (4, np.empty((2, 4)), r"out must be a writable float64 array of shape \(2, 3\)"),
        (4, "abc", "out must be a C-contiguous, writable array"),
    ],
)
def test_bad_input_to_the_c_function(position, value, message):
    args = _args()
    args[position] = value
    with pytest.raises((ValueError, TypeError), match=message):
        _maxbox.best_ious(*args)


def test_bad_method_and_read_only_out():
    args = _args()
    with pytest.raises(ValueError, match="method must be 0"):
        _maxbox.best_ious(*args, 3)
    out = args[4]
    out.flags.writeable = False
    with pytest.raises(TypeError, match="writable"):
        _maxbox.best_ious(*args)


def test_evaluator_errors_still_name_the_values():
    ev = MaxBoxAccEvaluator()
    with pytest.raises(ValueError, match=r"got values in \[0, 2\]"):
        ev.update(torch.full((1, 4, 4), 2.0).index_fill(1, torch.tensor([0]), 0), [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="maps must be finite"):
        ev.update(torch.full((1, 4, 4), float("nan")), [[0, 0, 1, 1]])
    assert int(ev.n) == 0  # nothing counted from a failed batch
