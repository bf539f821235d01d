"""infocam.softmax against float64 references, closed forms and bad input."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import infocam
from infocam.softmax import predict


def reference_log_pc_softmax(logits: np.ndarray, prior: np.ndarray, axis: int) -> np.ndarray:
    """float64 numpy reference: n_y - log sum_j p_j exp(n_j), stabilised by the max."""
    n = logits.astype(np.float64)
    shape = [1] * n.ndim
    shape[axis] = -1
    p = prior.astype(np.float64).reshape(shape)
    m = n.max(axis=axis, keepdims=True)
    return n - (m + np.log(np.sum(p * np.exp(n - m), axis=axis, keepdims=True)))


def random_prior(rng: np.random.Generator, m: int) -> np.ndarray:
    p = rng.uniform(0.05, 1.0, size=m)
    return p / p.sum()


@st.composite
def logits_and_prior(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    values = draw(
        hnp.arrays(dtype, shape, elements=st.floats(-50, 50, width=32, allow_subnormal=False))
    )
    m = shape[dim]
    weights = draw(hnp.arrays(np.float64, (m,), elements=st.floats(0.01, 1.0)))
    return values, weights / weights.sum(), dim


@settings(max_examples=150, deadline=None)
@given(logits_and_prior())
def test_log_pc_softmax_matches_float64_reference(case):
    values, prior, dim = case
    got = infocam.log_pc_softmax(torch.from_numpy(values), torch.from_numpy(prior), dim=dim)
    assert got.dtype == torch.from_numpy(values).dtype
    assert got.shape == values.shape
    want = reference_log_pc_softmax(values, prior, dim)
    tol = 1e-4 if values.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got.double().numpy(), want, rtol=tol, atol=tol)


@settings(max_examples=100, deadline=None)
@given(logits_and_prior())
def test_uniform_prior_is_log_softmax_plus_log_m(case):
    values, _, dim = case
    x = torch.from_numpy(values)
    m = values.shape[dim]
    want = F.log_softmax(x, dim=dim) + math.log(m)
    torch.testing.assert_close(infocam.log_pc_softmax(x, dim=dim), want)
    uniform = torch.full((m,), 1.0 / m, dtype=torch.float64)
    torch.testing.assert_close(infocam.log_pc_softmax(x, uniform, dim=dim), want)


def test_pc_softmax_is_a_density_ratio():
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(size=(7, 5)))
    prior = torch.from_numpy(random_prior(rng, 5))
    ratio = infocam.pc_softmax(logits, prior)
    torch.testing.assert_close((ratio * prior).sum(-1), torch.ones(7, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_large_logits_stay_finite(dtype):
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype=torch.float32)
    if dtype != torch.float32:
        logits = torch.tensor([[3e4, -3e4, 0.0], [-3e4, -3e4, -3e4]]).to(dtype)
    prior = torch.tensor([0.2, 0.3, 0.5])
    out = infocam.log_pc_softmax(logits, prior)
    assert torch.isfinite(out).all()
    # the winner's log-ratio is -log p_winner, and a row of equal logits gives 0
    assert out[0, 0].item() == pytest.approx(-math.log(0.2), rel=1e-2)
    assert out[1].float().abs().max().item() < 1e-2
    loss = infocam.pc_softmax_cross_entropy(logits.float(), torch.tensor([0, 1]), prior)
    assert torch.isfinite(loss)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_is_logit_adjusted_ce_up_to_log_prior(reduction):
    rng = np.random.default_rng(1)
    logits = torch.from_numpy(rng.normal(size=(64, 10)) * 3).requires_grad_(True)
    target = torch.from_numpy(rng.integers(0, 10, 64))
    prior = torch.from_numpy(random_prior(rng, 10))
    ours = infocam.pc_softmax_cross_entropy(logits, target, prior, reduction=reduction)
    ref_logits = logits.detach().clone().requires_grad_(True)
    ref = F.cross_entropy(ref_logits + prior.log(), target, reduction=reduction)
    offset = prior.log()[target]
    shift = {"mean": offset.mean(), "sum": offset.sum(), "none": offset}[reduction]
    torch.testing.assert_close(ours, ref + shift)
    ours.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(logits.grad, ref_logits.grad)
    # and the loss is exactly -log_pc_softmax at the target
    per_sample = -infocam.log_pc_softmax(logits.detach(), prior).gather(1, target[:, None])[:, 0]
    want = {"mean": per_sample.mean(), "sum": per_sample.sum(), "none": per_sample}[reduction]
    torch.testing.assert_close(ours.detach(), want)


def test_module_matches_function_and_carries_prior_as_buffer():
    rng = np.random.default_rng(2)
    prior = torch.from_numpy(random_prior(rng, 6)).float()
    loss_fn = infocam.PCSoftmaxCrossEntropy(prior)
    assert "log_prior" in loss_fn.state_dict()
    logits = torch.randn(32, 6, generator=torch.Generator().manual_seed(0))
    target = torch.randint(0, 6, (32,), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        loss_fn(logits, target), infocam.pc_softmax_cross_entropy(logits, target, prior)
    )
    assert "num_classes=6" in repr(loss_fn)


def test_loss_accepts_spatial_logits_like_cross_entropy():
    prior = torch.tensor([0.5, 0.25, 0.25])
    logits = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    target = torch.randint(0, 3, (2, 4, 5), generator=torch.Generator().manual_seed(0))
    ref = F.cross_entropy(logits + prior.log()[None, :, None, None], target)
    want = ref + prior.log()[target].mean()
    torch.testing.assert_close(infocam.pc_softmax_cross_entropy(logits, target, prior), want)


def test_optimum_of_loss_is_minus_mutual_information():
    # PC-softmax's optimal logits are the PMI log p(y|x)/p(y) (+ any per-x constant); there
    # the mean loss is -I(X;Y) exactly.
    post = torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=torch.float64)
    px = torch.tensor([0.5, 0.5], dtype=torch.float64)
    prior = px @ post  # (0.55, 0.45)
    joint = px[:, None] * post
    mi = float((joint * (post / prior).log()).sum())
    logits = (post / prior).log().repeat_interleave(1000, 0) + 3.0
    # targets in exact proportions p(y|x) for each of the two equally likely x
    y = torch.tensor([0] * 900 + [1] * 100 + [0] * 200 + [1] * 800)
    loss = infocam.pc_softmax_cross_entropy(logits, y, prior)
    assert loss.item() == pytest.approx(-mi, abs=1e-12)


def test_class_prior_counts_and_names_empty_classes():
    labels = torch.tensor([0, 1, 1, 3, 3, 3])
    with pytest.raises(ValueError, match=r"class\(es\) 2 "):
        infocam.class_prior(labels, 4)
    p = infocam.class_prior(np.array([0, 1, 1, 2, 2, 2]), 3)
    torch.testing.assert_close(p, torch.tensor([1 / 6, 2 / 6, 3 / 6]))
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 2\]"):
        infocam.class_prior(torch.tensor([0, 1, 5]), 3)
    with pytest.raises(TypeError, match="labels must hold integer"):
        infocam.class_prior(torch.tensor([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match="num_classes"):
        infocam.class_prior(torch.tensor([0, 1]), 0)


@pytest.mark.parametrize(
    ("prior", "match"),
    [
        ([0.5, 0.6, -0.1], "strictly positive"),
        ([0.5, 0.5, 0.0], "strictly positive"),
        ([0.5, float("nan"), 0.5], "finite"),
        ([0.5, float("inf"), 0.5], "finite"),
        ([0.5, 0.5], "one entry per class"),
        ([0.5, 0.3, 0.3], "sum to 1.*class_prior"),
        ([[0.5, 0.5, 0.0]], "1-D"),
    ],
)
def test_bad_priors_are_named(prior, match):
    logits = torch.zeros(4, 3)
    target = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="prior"):
        infocam.log_pc_softmax(logits, torch.tensor(prior))
    with pytest.raises(ValueError, match=match):
        infocam.pc_softmax_cross_entropy(logits, target, torch.tensor(prior))
    with pytest.raises(ValueError, match="prior"):
        infocam.PCSoftmaxCrossEntropy(torch.tensor(prior))(logits, target)


def test_prior_sum_tolerance_is_1e_4():
    logits = torch.zeros(2, 2)
    infocam.log_pc_softmax(logits, [0.5, 0.50009])
    with pytest.raises(ValueError, match="sum to 1"):
        infocam.log_pc_softmax(logits, [0.5, 0.5002])


def test_bad_targets_are_named():
    logits = torch.zeros(4, 3)
    prior = torch.full((3,), 1 / 3)
    with pytest.raises(ValueError, match=r"target must hold class indices in \[0, 2\]"):
        infocam.pc_softmax_cross_entropy(logits, torch.tensor([0, 1, 2, 3]), prior)
    with pytest.raises(ValueError, match=r"target must hold class indices"):
        infocam.PCSoftmaxCrossEntropy(prior)(logits, torch.tensor([0, -1, 2, 1]))
    with pytest.raises(ValueError, match=r"target must have shape \(4,\)"):
        infocam.pc_softmax_cross_entropy(logits, torch.tensor([0, 1]), prior)
    with pytest.raises(TypeError, match="target must hold integer"):
        infocam.pc_softmax_cross_entropy(logits, torch.zeros(4), prior)
    with pytest.raises(ValueError, match="logits must have 3 classes"):
        infocam.PCSoftmaxCrossEntropy(prior)(torch.zeros(4, 5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="reduction"):
        infocam.pc_softmax_cross_entropy(logits, torch.zeros(4, dtype=torch.long), prior, "avg")


def test_bad_logits_are_named():
    with pytest.raises(TypeError, match="logits must be a floating-point"):
        infocam.log_pc_softmax(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(TypeError, match=r"logits must be a torch\.Tensor"):
        infocam.log_pc_softmax("abc")
    with pytest.raises(ValueError, match="dim must be in"):
        infocam.log_pc_softmax(torch.zeros(3, 2), dim=2)


def test_predict_rules():
    logits = torch.tensor([[2.0, 1.9, -5.0], [0.0, 0.1, 0.05]])
    assert predict(logits).tolist() == [0, 1]
    q = torch.tensor([0.1, 0.8, 0.1])
    assert predict(logits, q).tolist() == [1, 1]  # n + log q
    p = torch.tensor([0.8, 0.1, 0.1])
    # plain softmax model trained under p, balanced target: n - log p
    assert predict(logits, train_prior=p).tolist() == [1, 1]
    torch.testing.assert_close(
        predict(logits, q, train_prior=p), (logits - p.log() + q.log()).argmax(-1)
    )
    with pytest.raises(ValueError, match="target_prior"):
        predict(logits, torch.tensor([0.5, 0.5]))


def test_numpy_in_tensor_out():
    out = infocam.log_pc_softmax(np.zeros((2, 4)), np.full(4, 0.25))
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, torch.zeros(2, 4, dtype=torch.float64))


def test_prior_follows_logits_device_and_dtype_meta():
    # no device is hard-coded: a CPU prior follows the logits, even onto the meta device
    # (shapes and dtypes only, no data), and keeps their dtype
    prior = torch.tensor([0.2, 0.3, 0.5])
    logits = torch.zeros(4, 3, dtype=torch.float64, device="meta")
    out = infocam.log_pc_softmax(logits, prior)
    assert out.device.type == "meta" and out.dtype == torch.float64 and out.shape == (4, 3)
    assert infocam.pc_softmax(logits, prior).device.type == "meta"
    module = infocam.PCSoftmaxCrossEntropy(prior).to(device="meta", dtype=torch.float64)
    assert module.log_prior.device.type == "meta" and module.log_prior.dtype == torch.float64


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("m", [3, 5, 7, 100, 1000])
def test_a_16_bit_prior_is_accepted_and_used_in_higher_precision(dtype, m):
    """A uniform float16 prior of 5 classes sums to 0.99976: it was refused (tolerance 1e-4)."""
    logits = torch.randn(4, m, generator=torch.Generator().manual_seed(m))
    target = torch.arange(4) % m
    prior = torch.full((m,), 1.0 / m, dtype=dtype)
    got = infocam.log_pc_softmax(logits, prior)
    assert got.dtype == torch.float32
    # Renormalised in float64: exactly the uniform prior's values.
    torch.testing.assert_close(got, infocam.log_pc_softmax(logits))
    loss = infocam.PCSoftmaxCrossEntropy(prior)(logits, target)
    torch.testing.assert_close(loss, infocam.pc_softmax_cross_entropy(logits, target, prior))
    assert math.isfinite(infocam.mutual_information(logits, target, prior).value)
    labels = torch.tensor([0, 1, 1, 2, 2, 2, 2])
    empirical = infocam.class_prior(labels, 3, dtype=dtype)  # 1/7 etc. rounded
    infocam.log_pc_softmax(torch.randn(2, 3), empirical)
    with pytest.raises(ValueError, match="prior must sum to 1"):  # still a real check
        infocam.log_pc_softmax(torch.randn(2, 3), torch.tensor([0.5, 0.3, 0.3], dtype=dtype))
