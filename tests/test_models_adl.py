"""ADL against a literal transcription of the authors' formula, in both modes."""

from __future__ import annotations

import pytest
import torch

from infocam.models import ADL


def reference_adl(x: torch.Tensor, drop_rate: float, thr: float, u: float) -> torch.Tensor:
    """Choe & Shim (2019) written out per sample in float64, for a given uniform draw u."""
    x = x.double()
    out = torch.empty_like(x)
    use_drop = int(u + drop_rate >= 1.0)
    for n in range(x.shape[0]):
        a = x[n].mean(dim=0)
        mask = (a < thr * a.max()).double()
        out[n] = x[n] * (mask if use_drop else torch.sigmoid(a))
    return out


def _input(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 4, 5, 6, generator=g)
    x[1] *= 10.0  # a different per-sample scale: the threshold must be per sample
    return x


def test_eval_mode_is_identity():
    adl = ADL().eval()
    x = _input()
    assert adl(x) is x


@pytest.mark.parametrize("seed", range(6))
def test_train_mode_matches_reference_with_same_seed(seed):
    adl = ADL(drop_rate=0.75, drop_threshold=0.8).train()
    x = _input()
    torch.manual_seed(seed)
    u = float(torch.rand(()))  # the one draw ADL makes
    torch.manual_seed(seed)
    out = adl(x)
    expected = reference_adl(x, 0.75, 0.8, u)
    torch.testing.assert_close(out.double(), expected, rtol=1e-6, atol=1e-7)


def test_both_branches_are_taken_and_chosen_by_the_draw():
    adl = ADL(drop_rate=0.5, drop_threshold=0.8).train()
    x = _input()
    attention = x.mean(1, keepdim=True)
    drop = x * adl.drop_mask(attention)
    importance = x * torch.sigmoid(attention)
    seen = set()
    for seed in range(20):
        torch.manual_seed(seed)
        u = float(torch.rand(()))
        torch.manual_seed(seed)
        out = adl(x)
        branch = "drop" if u >= 0.5 else "importance"
        torch.testing.assert_close(out, drop if branch == "drop" else importance)
        seen.add(branch)
    assert seen == {"drop", "importance"}


def test_drop_mask_is_per_sample_and_drops_the_peak():
    adl = ADL(drop_rate=1.0, drop_threshold=0.8).train()
    x = _input()
    out = adl(x)
    attention = x.mean(1)
    for n in range(x.shape[0]):
        peak = attention[n] == attention[n].max()
        assert bool((out[n][:, peak] == 0).all())  # the most salient position is dropped
        kept = attention[n] < 0.8 * attention[n].max()
        assert int(kept.sum()) > 0
        torch.testing.assert_close(out[n][:, kept], x[n][:, kept])


def test_extreme_rates_always_pick_one_branch():
    x = _input()
    attention = x.mean(1, keepdim=True)
    never = ADL(drop_rate=0.0).train()
    always = ADL(drop_rate=1.0).train()
    for seed in range(10):
        torch.manual_seed(seed)
        torch.testing.assert_close(never(x), x * torch.sigmoid(attention))
        torch.testing.assert_close(always(x), x * always.drop_mask(attention))


def test_drop_frequency_is_drop_rate():
    adl = ADL(drop_rate=0.75).train()
    x = torch.rand(1, 2, 3, 3) + 0.1
    x[0, :, 0, 0] = 5.0  # the peak: zeroed by the drop mask, scaled by sigmoid otherwise
    torch.manual_seed(123)
    drops = sum(int(adl(x)[0, 0, 0, 0] == 0) for _ in range(400))
    # Binomial(400, 0.75): mean 300, sd 8.7; 5 sd either side.
    assert 257 <= drops <= 343


def test_gradient_flows_through_the_importance_map():
    adl = ADL(drop_rate=0.0).train()
    x = _input().requires_grad_()
    adl(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # d/dx of x * sigmoid(mean_c x) differs from sigmoid(mean_c x) alone.
    assert not torch.allclose(x.grad, torch.sigmoid(x.detach().mean(1, keepdim=True)).expand_as(x))


def test_bad_arguments():
    with pytest.raises(ValueError, match="drop_rate"):
        ADL(drop_rate=1.5)
    with pytest.raises(ValueError, match="drop_threshold"):
        ADL(drop_threshold=-0.1)
    with pytest.raises(TypeError, match="drop_rate"):
        ADL(drop_rate="0.5")
    with pytest.raises(ValueError, match="4-D"):
        ADL().train()(torch.rand(2, 3, 4))
    assert "drop_rate=0.75, drop_threshold=0.8" in repr(ADL())
