"""MaxBoxAccEvaluator gives exactly wsolevaluation's MaxBoxAccV2 (its per-image loop as oracle)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from infocam.localization import MaxBoxAccEvaluator, normalize_maps, upsample_maps

_REF = Path(__file__).resolve().parents[1] / "benchmarks" / "wsol_reference.py"
_spec = importlib.util.spec_from_file_location("wsol_reference", _REF)
wsol = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wsol)


def _gt_boxes(n, h, w, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        boxes = []
        for _ in range(rng.integers(1, 4)):
            x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
            boxes.append([x0, y0, rng.integers(x0, w), rng.integers(y0, h)])
        out.append(np.asarray(boxes))
    return out


def _smooth_maps(n, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, 5, 6, generator=g, dtype=torch.float64) ** 3
    return normalize_maps(upsample_maps(small, (h, w)))


def _noisy_maps(n, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(n, h, w, generator=g, dtype=torch.float64)
    m[m < 0.5] = 0  # many small blobs, holes and equal-area contours
    return m


def _compare(maps, gts, **kwargs):
    ref = wsol.ReferenceBoxEvaluator(**kwargs)
    for m, g in zip(maps.numpy(), gts, strict=True):
        ref.accumulate(m, g)
    ours = MaxBoxAccEvaluator(**kwargs)
    ours.update(maps, [torch.as_tensor(g) for g in gts])
    for i, t in enumerate(ref.iou_thresholds):
        np.testing.assert_array_equal(ours.counts[i].numpy(), ref.num_correct[t])
    assert ours.compute() == ref.compute()
    return ours


@pytest.mark.parametrize("interval", [0.01, 0.001])
@pytest.mark.parametrize("multi_contour", [True, False])
@pytest.mark.parametrize("kind", ["smooth", "noisy"])
def test_equal_to_wsolevaluation_loop(interval, multi_contour, kind):
    make = _smooth_maps if kind == "smooth" else _noisy_maps
    n = 6 if interval == 0.001 else 10
    maps = make(n, 29, 37, seed=1)
    gts = _gt_boxes(n, 29, 37, seed=2)
    _compare(maps, gts, cam_curve_interval=interval, multi_contour=multi_contour)


def test_structured_maps_with_rings_borders_and_float32():
    maps = torch.zeros(5, 24, 24)
    maps[0, 4:20, 4:20] = 1.0
    maps[0, 8:16, 8:16] = 0.3  # a ring with a dimmer core: holes at some thresholds
    maps[1, 0:10, 14:24] = 0.8  # touching two borders
    maps[1, 20:24, 0:3] = 1.0
    maps[2, 12, 12] = 1.0  # one pixel
    maps[3] = torch.linspace(0, 1, 24)[None, :]  # a ramp: one box per level
    # map 4 all zero: every threshold gives the [0, 0, 0, 0] box
    gts = [
        np.array([[4, 4, 19, 19]]),
        np.array([[14, 0, 23, 9]]),
        np.array([[11, 11, 13, 13]]),
        np.array([[12, 0, 23, 23]]),
        np.array([[0, 0, 1, 1]]),
    ]
    for mc in (True, False):
        _compare(maps, gts, cam_curve_interval=0.01, multi_contour=mc)
        _compare(maps, gts, iou_thresholds=(10, 50, 90), cam_curve_interval=0.05)


def test_known_value_on_a_square():
    maps = torch.zeros(1, 10, 10)
    maps[0, 2:6, 2:6] = 1.0
    ev = MaxBoxAccEvaluator()
    # boundingRect (2,2,4,4) -> box [2, 2, 6, 6] with wsolevaluation's x + w convention
    ev.update(maps, torch.tensor([[2, 2, 6, 6]]))
    assert ev.compute() == {
        "MaxBoxAccV2": 100.0,
        "MaxBoxAcc@30": 100.0,
        "MaxBoxAcc@50": 100.0,
        "MaxBoxAcc@70": 100.0,
    }
    ev2 = MaxBoxAccEvaluator()
    ev2.update(maps, torch.tensor([[2, 2, 5, 5]]))  # IoU 16/25 = 0.64: misses at 70
    res = ev2.compute()
    assert res["MaxBoxAcc@70"] == 0.0 and res["MaxBoxAcc@50"] == 100.0


def test_merge_and_threads_give_the_same_counts():
    maps = _smooth_maps(8, 20, 20, seed=5)
    gts = _gt_boxes(8, 20, 20, seed=6)
    whole = MaxBoxAccEvaluator(num_threads=2)
    whole.update(maps, gts)
    a, b = MaxBoxAccEvaluator(), MaxBoxAccEvaluator()
    a.update(maps[:3], gts[:3])
    b.update(maps[3:], gts[3:])
    a.merge(b)
    assert torch.equal(a.counts, whole.counts) and int(a.n) == 8
    assert a.compute() == whole.compute()
    with pytest.raises(ValueError, match=r"cam_curve_interval 0\.01 vs 0\.1"):
        a.merge(MaxBoxAccEvaluator(cam_curve_interval=0.1))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (
            {"iou_thresholds": (30, 50, 60)},
            r"iou_thresholds \(30.0, 50.0, 70.0\) vs \(30.0, 50.0, 60.0\)",
        ),
        ({"iou_thresholds": (50,)}, "iou_thresholds"),
        ({"cam_curve_interval": 0.0101}, "cam_curve_interval 0.01 vs 0.0101"),  # 100 both
        ({"multi_contour": False}, "multi_contour True vs False"),
    ],
)
def test_merge_refuses_evaluators_with_other_settings(kwargs, needle):
    # all but (50,) give counts of the same shape: the merge used to add them silently
    maps, gts = _smooth_maps(2, 12, 12, seed=3), _gt_boxes(2, 12, 12, seed=4)
    a, b = MaxBoxAccEvaluator(), MaxBoxAccEvaluator(**kwargs)
    a.update(maps, gts)
    b.update(maps, gts)
    before = a.counts.clone()
    with pytest.raises(
        ValueError, match=f"cannot merge MaxBoxAccEvaluators with different settings: {needle}"
    ):
        a.merge(b)
    assert torch.equal(a.counts, before) and int(a.n) == 2  # nothing added
    with pytest.raises(TypeError, match="other must be a MaxBoxAccEvaluator; got object"):
        a.merge(object())


def test_merge_accepts_equal_settings_written_differently_and_other_backends():
    maps, gts = _smooth_maps(2, 12, 12, seed=3), _gt_boxes(2, 12, 12, seed=4)
    a = MaxBoxAccEvaluator(iou_thresholds=(30, 50, 70))
    b = MaxBoxAccEvaluator(iou_thresholds=[30.0, np.int64(50), torch.tensor(70)], backend="opencv")
    b.update(maps, gts)
    assert int(a.merge(b).n) == 2 and torch.equal(a.counts, b.counts)


def test_bad_input():
    ev = MaxBoxAccEvaluator()
    with pytest.raises(ValueError, match=r"maps must be in \[0, 1\]"):
        ev.update(torch.full((1, 4, 4), 2.0), torch.tensor([[0, 0, 1, 1]]))
    with pytest.raises(ValueError, match="maps must be finite"):
        ev.update(torch.full((1, 4, 4), float("nan")), torch.tensor([[0, 0, 1, 1]]))
    with pytest.raises(ValueError, match="non-negative"):
        ev.update(torch.zeros(1, 4, 4), torch.tensor([[-1, 0, 1, 1]]))
    with pytest.raises(ValueError, match="for each of the 2 maps"):
        ev.update(torch.zeros(2, 4, 4), [torch.tensor([0, 0, 1, 1])])
    with pytest.raises(ValueError, match="cam_curve_interval"):
        MaxBoxAccEvaluator(cam_curve_interval=0)
    with pytest.raises(ValueError, match="iou_thresholds"):
        MaxBoxAccEvaluator(iou_thresholds=(0.5,) * 0)
    with pytest.raises(ValueError, match="compute"):
        ev.compute()


def test_settings_accept_any_real_number_and_are_checked_at_construction():
    ev = MaxBoxAccEvaluator(
        iou_thresholds=np.array([30, 50]), cam_curve_interval=np.float64(0.05), num_threads=2
    )
    assert ev.iou_thresholds == (30.0, 50.0) and len(ev.cam_thresholds) == 20
    assert MaxBoxAccEvaluator(cam_curve_interval=torch.tensor(0.25)).cam_thresholds.tolist() == [
        0.0, 0.25, 0.5, 0.75
    ]  # fmt: skip
    cases = [
        ({"iou_thresholds": 50}, TypeError, "iou_thresholds must be a sequence of percentages"),
        ({"iou_thresholds": "50"}, TypeError, "iou_thresholds must be a sequence"),
        ({"iou_thresholds": (50, True)}, TypeError, r"iou_thresholds\[1\] must be a real number"),
        ({"iou_thresholds": (50, 0)}, ValueError, r"iou_thresholds\[1\] must be a real number in \(0, 100\]; got 0\.0"),  # noqa: E501
        ({"cam_curve_interval": "0.01"}, TypeError, "cam_curve_interval must be a real number"),
        ({"cam_curve_interval": 1}, ValueError, r"must be a real number in \(0, 1\); got 1\.0"),
        ({"multi_contour": "no"}, TypeError, "multi_contour must be True or False"),
        ({"num_threads": 0}, ValueError, "num_threads must be an integer >= 1; got 0"),
        ({"num_threads": 1.5}, TypeError, "num_threads must be an integer >= 1"),
    ]  # fmt: skip
    for kwargs, exc, needle in cases:
        with pytest.raises(exc, match=needle):
            MaxBoxAccEvaluator(**kwargs)


def _all_reduce_worker(rank: int, store: str, out: str) -> None:
    """One of two gloo processes: all_reduce evaluators whose settings differ across ranks."""
    import json

    import torch.distributed as dist

    from infocam.localization import LocalizationEvaluator, sum_over_processes

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    results = []
    try:
        evaluators = [
            MaxBoxAccEvaluator(cam_curve_interval=0.01 if rank == 0 else 0.1),  # other shapes
            MaxBoxAccEvaluator(iou_thresholds=(30, 50, 70) if rank == 0 else (30, 50, 90)),
            LocalizationEvaluator(threshold=0.2 if rank == 0 else 0.3),  # same shape
            LocalizationEvaluator(iou_threshold=0.5),  # equal: summed
        ]
        evaluators[-1].counts += rank + 1
        for ev in evaluators:
            try:
                ev.all_reduce()
                results.append(ev.counts.tolist())
            except ValueError as exc:
                results.append(str(exc))
        # Many evaluators of both kinds in one collective: each counter summed in place.
        mba, loc = MaxBoxAccEvaluator(cam_curve_interval=0.5), LocalizationEvaluator()
        mba.counts += rank + 1
        mba.n += 10 * (rank + 1)
        loc.counts += torch.arange(5) * (rank + 1)
        sum_over_processes([mba, loc])
        results.append([mba.counts.tolist(), int(mba.n), str(mba.n.dtype), loc.counts.tolist()])
    finally:
        dist.destroy_process_group()
    Path(out, f"{rank}.json").write_text(json.dumps(results))


@pytest.mark.slow
def test_all_reduce_refuses_different_settings_on_other_processes(tmp_path):
    import json

    import torch.multiprocessing as mp

    mp.spawn(_all_reduce_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        res = json.loads((tmp_path / f"{rank}.json").read_text())
        assert res[0] == (
            "all_reduce needs the same MaxBoxAccEvaluator settings on every process: "
            "cam_curve_interval 0.01 on rank 0 vs 0.1 on rank 1"
        )
        assert (
            "iou_thresholds (30.0, 50.0, 70.0) on rank 0 vs (30.0, 50.0, 90.0) on rank 1" in res[1]
        )
        assert res[2] == (
            "all_reduce needs the same LocalizationEvaluator settings on every process: "
            "threshold 0.2 on rank 0 vs 0.3 on rank 1"
        )
        assert res[3] == [3] * 5  # 1 + 2 on every counter
        assert res[4] == [[[3, 3]] * 3, 30, "torch.int64", [0, 3, 6, 9, 12]]


def test_all_reduce_in_a_one_process_group(tmp_path):
    import torch.distributed as dist

    from infocam.localization import LocalizationEvaluator

    maps = _smooth_maps(3, 12, 12, seed=7)
    gts = _gt_boxes(3, 12, 12, seed=8)
    ev = MaxBoxAccEvaluator()
    ev.update(maps, gts)
    loc = LocalizationEvaluator()
    loc.update(maps, [g[:1] for g in gts], torch.tensor([0, 1, 0]), torch.randn(3, 2))
    before, loc_before = ev.compute(), loc.compute()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        assert ev.all_reduce().compute() == before
        assert loc.all_reduce().compute() == loc_before
    finally:
        dist.destroy_process_group()


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    multi_contour=st.booleans(),
)
def test_property_equal_to_wsolevaluation(data, h, w, multi_contour):
    levels = data.draw(st.lists(st.integers(0, 255), min_size=h * w, max_size=h * w))
    maps = torch.tensor(levels, dtype=torch.float64).reshape(1, h, w) / 255
    x0, x1 = sorted(data.draw(st.lists(st.integers(0, w - 1), min_size=2, max_size=2)))
    y0, y1 = sorted(data.draw(st.lists(st.integers(0, h - 1), min_size=2, max_size=2)))
    _compare(maps, [np.array([[x0, y0, x1, y1]])], multi_contour=multi_contour)
