"""PxAPEvaluator gives exactly wsolevaluation's PxAP (a numpy transcription of MaskEvaluator)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from infocam.localization import PxAPEvaluator, normalize_maps, upsample_maps

_REF = Path(__file__).resolve().parents[1] / "benchmarks" / "wsol_reference.py"
_spec = importlib.util.spec_from_file_location("wsol_reference", _REF)
wsol = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wsol)


def _data(n, h, w, seed, dtype=torch.float64):
    """Maps with many values exactly on thresholds (ties), 0 and 1; masks with ignore regions."""
    g = torch.Generator().manual_seed(seed)
    smooth = normalize_maps(upsample_maps(torch.rand(n, 4, 5, generator=g, dtype=dtype), (h, w)))
    grid = torch.as_tensor(np.arange(0, 1, 0.01), dtype=dtype)  # wsolevaluation's thresholds
    on_grid = grid[torch.randint(len(grid), (n, h, w), generator=g)]
    pick = torch.rand(n, h, w, generator=g)
    maps = torch.where(pick < 0.4, on_grid, smooth)
    maps[pick > 0.95] = 1.0
    masks = torch.rand(n, h, w, generator=g) < smooth.float() * 0.8
    ignore = torch.rand(n, h, w, generator=g) < 0.15  # overlaps the foreground too
    return maps, masks, ignore


def _reference(maps, masks, ignore, interval=0.01):
    ref = wsol.ReferenceMaskEvaluator(interval)
    for m, fg, off in zip(maps.double().numpy(), masks.numpy(), ignore.numpy(), strict=True):
        # get_mask: ignore = ignore box minus foreground; 1 fg, 0 bg, 255 ignored
        code = fg.astype(np.uint8) + 255 * (off & ~fg).astype(np.uint8)
        ref.accumulate(m, code)
    return ref


@pytest.mark.parametrize("interval", [0.01, 0.05, 0.001])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_same_numbers_as_wsolevaluation(interval, dtype):
    maps, masks, ignore = _data(6, 23, 31, seed=1, dtype=dtype)
    ref = _reference(maps, masks, ignore, interval)
    ours = PxAPEvaluator(interval)
    ours.update(maps[:4], masks[:4], ignore[:4])
    ours.update(maps[4:], masks[4:].numpy().astype(np.uint8), ignore[4:].numpy())
    np.testing.assert_array_equal(ours.fg_hist.numpy(), ref.gt_true_score_hist)
    np.testing.assert_array_equal(ours.bg_hist.numpy(), ref.gt_false_score_hist)
    assert ours.compute()["PxAP"] == pytest.approx(ref.compute(), rel=1e-12, abs=1e-12)
    assert 0 < ours.compute()["PxAP"] < 100


def test_ties_at_a_threshold_count_in_the_bin_they_open():
    ev = PxAPEvaluator(0.25)  # edges 0, .25, .5, .75, 1, 2, 3
    maps = torch.tensor([[[0.0, 0.25, 0.5, 0.7499, 0.75, 1.0]]])
    ev.update(maps, torch.ones(1, 1, 6))
    assert ev.fg_hist.tolist() == [1, 1, 2, 1, 1, 0]
    assert ev.bg_hist.tolist() == [0] * 6


def test_without_ignore_and_numpy_maps():
    maps, masks, _ = _data(3, 9, 11, seed=2)
    ref = _reference(maps, masks, torch.zeros_like(masks))
    ours = PxAPEvaluator()
    ours.update(maps.numpy(), masks)
    assert ours.compute()["PxAP"] == pytest.approx(ref.compute(), rel=1e-12)


def test_perfect_map_scores_100_and_constant_map_the_foreground_share():
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, 2:5, 1:7] = True
    masks[1, 0:2, :] = True
    ev = PxAPEvaluator()
    ev.update(masks.double(), masks)
    assert ev.compute()["PxAP"] == pytest.approx(100.0)

    ignore = torch.zeros_like(masks)
    ignore[0, 6:, :] = True  # 16 background pixels left out
    ev = PxAPEvaluator()
    ev.update(torch.zeros(2, 8, 8), masks, ignore)  # a constant map, normalised: zeros
    share = masks.sum().item() / (masks.numel() - ignore.sum().item())
    assert ev.compute()["PxAP"] == pytest.approx(100 * share)


def test_ignore_never_drops_foreground():
    maps = torch.tensor([[[0.2, 0.9, 0.4]]])
    fg = torch.tensor([[[0, 1, 0]]])
    ev = PxAPEvaluator()
    ev.update(maps, fg, ignore=torch.ones(1, 1, 3))
    assert int(ev.fg_hist.sum()) == 1 and int(ev.bg_hist.sum()) == 0


def test_merge_of_two_halves_equals_the_whole():
    maps, masks, ignore = _data(8, 12, 10, seed=3)
    whole = PxAPEvaluator()
    whole.update(maps, masks, ignore)
    a, b = PxAPEvaluator(), PxAPEvaluator()
    a.update(maps[:5], masks[:5], ignore[:5])
    b.update(maps[5:], masks[5:], ignore[5:])
    b.update(maps[:0], masks[:0], ignore[:0])  # an empty batch counts nothing
    a.merge(b)
    assert torch.equal(a.fg_hist, whole.fg_hist) and torch.equal(a.bg_hist, whole.bg_hist)
    assert int(a.n) == 8
    assert a.compute() == whole.compute()
    with pytest.raises(ValueError, match=r"cam_curve_interval 0.01 vs 0.05"):
        a.merge(PxAPEvaluator(0.05))


def test_bad_inputs_raise_clear_errors():
    maps, masks, ignore = _data(2, 6, 7, seed=4)
    ev = PxAPEvaluator()
    with pytest.raises(ValueError, match=r"masks must have the maps' shape \(2, 6, 7\)"):
        ev.update(maps, masks[:, :5])
    with pytest.raises(ValueError, match=r"ignore must have the maps' shape"):
        ev.update(maps, masks, ignore[:1])
    with pytest.raises(ValueError, match=r"maps must have shape \(N, H, W\)"):
        ev.update(maps[0], masks[0])
    bad = maps.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="maps must be finite; found 1 NaN"):
        ev.update(bad, masks)
    with pytest.raises(ValueError, match=r"maps must be in \[0, 1\].*normalize_maps"):
        ev.update(maps * 2, masks)
    with pytest.raises(ValueError, match=r"masks must be binary.*0.5"):
        ev.update(maps, masks.double() * 0.5)
    with pytest.raises(ValueError, match="masks must be binary"):
        ev.update(maps, torch.full((2, 6, 7), float("nan")))
    with pytest.raises(ValueError, match=r"ignore must be binary.*255"):
        ev.update(maps, masks, ignore.long() * 255)
    with pytest.raises(TypeError, match="maps must be a floating-point tensor"):
        ev.update(masks.long(), masks)
    with pytest.raises(TypeError, match=r"masks must be a torch.Tensor or numpy array"):
        ev.update(maps, "mask")
    assert int(ev.n) == 0 and int(ev.fg_hist.sum()) == 0  # nothing counted by a failed update
    with pytest.raises(ValueError, match="needs at least one update"):
        ev.compute()
    ev.update(maps, torch.zeros_like(masks))
    with pytest.raises(ValueError, match="at least one foreground pixel"):
        ev.compute()
    for interval in (0, 1, -0.1, float("nan")):
        with pytest.raises(ValueError, match="cam_curve_interval must be a real number in"):
            PxAPEvaluator(interval)
    with pytest.raises(TypeError, match="cam_curve_interval"):
        PxAPEvaluator("0.01")


def test_exported():
    import infocam.localization

    assert "PxAPEvaluator" in infocam.localization.__all__


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_on_the_gpu_same_counts():
    maps, masks, ignore = _data(4, 20, 20, seed=5)
    cpu, gpu = PxAPEvaluator(), PxAPEvaluator()
    cpu.update(maps, masks, ignore)
    gpu.update(maps.cuda(), masks.cuda(), ignore.cuda())
    assert torch.equal(cpu.fg_hist, gpu.fg_hist) and torch.equal(cpu.bg_hist, gpu.bg_hist)
