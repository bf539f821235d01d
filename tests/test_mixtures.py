"""infocam.mixtures: sampling, densities and ground-truth I(X; Y) of Gaussian mixtures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import infocam
from infocam.mixtures import GaussianMixture

PAPER_TRUTH = {
    True: {1: 1.031, 2: 1.300, 5: 1.554, 10: 1.606},
    False: {1: 1.022, 2: 1.239, 5: 1.445, 10: 1.487},
}


def two_class_closed_form(delta: float) -> float:
    """Equal-prior N(-delta, 1) vs N(+delta, 1) along one axis (any D reduces to it).

    p(+|t) = sigmoid(2 delta t), so I = log 2 - E_{z~N(0,1)} softplus(-2 delta (delta + z)),
    computed by 200-node Gauss-Hermite quadrature: independent of the library's code path.
    """
    z, w = np.polynomial.hermite_e.hermegauss(200)
    w = w / w.sum()
    return math.log(2.0) - float(np.sum(w * np.logaddexp(0.0, -2.0 * delta * (delta + z))))


def test_public_reexport():
    assert infocam.GaussianMixture is GaussianMixture


@pytest.mark.parametrize("balanced", [True, False])
def test_quadrature_matches_monte_carlo_in_1d(balanced):
    g = GaussianMixture.paper(1, balanced)
    quad = g.mutual_information(method="quad")
    mc = g.mutual_information(1_000_000, seed=1, method="mc")
    assert mc.stderr < 2.5e-4  # so a fixed 1e-3 is over 4 standard errors
    assert abs(quad.value - mc.value) < 1e-3
    assert g.mutual_information().value == quad.value  # auto = quadrature in 1-D


@pytest.mark.parametrize("balanced", [True, False])
@pytest.mark.parametrize("dim", [1, 2, 5, 10])
def test_paper_ground_truth_values(balanced, dim):
    est = GaussianMixture.paper(dim, balanced).mutual_information(100_000, seed=0)
    assert abs(est.value - PAPER_TRUTH[balanced][dim]) < 5e-4 + 3 * est.stderr


@pytest.mark.parametrize(("dim", "a"), [(1, 0.5), (1, 1.5), (4, 0.5), (9, 1.0)])
def test_two_class_closed_form(dim, a):
    means = torch.stack([torch.full((dim,), -a), torch.full((dim,), a)])
    g = GaussianMixture(means)
    want = two_class_closed_form(a * math.sqrt(dim))
    got = g.mutual_information(200_000, seed=2, method="mc")
    assert abs(got.value - want) < max(1e-3, 4 * got.stderr)
    if dim == 1:
        assert g.mutual_information(method="quad").value == pytest.approx(want, abs=1e-7)


def test_limits_identical_and_separated_means():
    same = GaussianMixture(torch.zeros(3, 2), prior=[0.2, 0.3, 0.5])
    assert same.mutual_information(10_000).value == pytest.approx(0.0, abs=1e-12)
    far = GaussianMixture(torch.tensor([[0.0], [100.0], [200.0]]), prior=[0.2, 0.3, 0.5])
    assert far.mutual_information().value == pytest.approx(far.entropy(), abs=1e-9)


def test_densities_match_scipy():
    means = torch.tensor([[0.0, 1.0], [2.0, -1.0], [-1.0, 0.5]])
    g = GaussianMixture(means, prior=[0.5, 0.3, 0.2], scale=[1.0, 0.5, 2.0])
    x = torch.tensor([[0.3, -0.2], [5.0, 5.0], [-3.0, 1.0]], dtype=torch.float64)
    comps = [
        stats.multivariate_normal(means[k].numpy(), (s**2) * np.eye(2)).pdf(x.numpy())
        for k, s in enumerate([1.0, 0.5, 2.0])
    ]
    mix = 0.5 * comps[0] + 0.3 * comps[1] + 0.2 * comps[2]
    np.testing.assert_allclose(g.log_prob(x).numpy(), np.log(mix), rtol=1e-10)
    post = g.posterior_log_prob(x).exp()
    np.testing.assert_allclose(post.sum(1).numpy(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(post[:, 1].numpy(), 0.3 * comps[1] / mix, rtol=1e-9)


def test_posterior_is_finite_far_out():
    g = GaussianMixture.paper(10)
    lp = g.posterior_log_prob(torch.full((2, 10), 1e3))
    assert torch.isfinite(lp).all()


def test_sample_counts_seed_and_moments():
    g = GaussianMixture.paper(2, balanced=False)
    x, y = g.sample(GaussianMixture.paper_counts(False), seed=5)
    assert x.shape == (90_000, 2) and x.dtype == torch.float32
    assert torch.bincount(y).tolist() == [6000, 12000, 18000, 24000, 30000]
    x2, y2 = g.sample(GaussianMixture.paper_counts(False), seed=5)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    for c, mu in enumerate([0.0, 2.0, -2.0, 4.0, -4.0]):
        xc = x[y == c].double()
        assert torch.allclose(xc.mean(0), torch.full((2,), mu, dtype=torch.float64), atol=0.05)
        assert torch.allclose(xc.std(0), torch.ones(2, dtype=torch.float64), atol=0.05)
    xr, yr = g.sample(1000, seed=0)
    assert xr.shape == (1000, 2) and yr.max() < 5


def test_pointwise_mi_averages_to_truth():
    g = GaussianMixture.paper(2, balanced=False)
    x, y = g.sample(30_000, seed=3, dtype=torch.float64)
    pmi = g.pointwise_mi(x, y)
    truth = g.mutual_information(100_000).value
    assert abs(float(pmi.mean()) - truth) < 4 * float(pmi.std()) / math.sqrt(pmi.shape[0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"means": torch.zeros(1, 2)}, "means"),
        ({"means": torch.zeros(3)}, "means"),
        ({"means": torch.zeros(2, 2), "prior": [0.5, 0.6]}, "prior"),
        ({"means": torch.zeros(2, 2), "scale": -1.0}, "scale"),
        ({"means": torch.zeros(2, 2), "scale": [1.0, 1.0, 1.0]}, "scale"),
        ({"means": torch.tensor([[0.0], [float("nan")]])}, "means"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**kwargs)


def test_bad_calls():
    g = GaussianMixture.paper(2)
    with pytest.raises(ValueError, match="quad"):
        g.mutual_information(method="quad")
    with pytest.raises(ValueError, match="method"):
        g.mutual_information(method="exact")
    with pytest.raises(ValueError, match="x must have shape"):
        g.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="n must be"):
        g.sample([1, 2], seed=0)
    with pytest.raises(ValueError, match="dim"):
        GaussianMixture.paper(0)
