"""infocam.mi: point-wise MI, the MI estimate and its standard error."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import infocam
from infocam import MIEstimate


def test_pointwise_mi_is_log_pc_softmax_at_target():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 4, generator=g, dtype=torch.float64)
    target = torch.randint(0, 4, (50,), generator=g)
    prior = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    pmi = infocam.pointwise_mi(logits, target, prior)
    want = logits[torch.arange(50), target] - torch.logsumexp(logits + prior.log(), dim=1)
    torch.testing.assert_close(pmi, want)
    uniform = infocam.pointwise_mi(logits, target)
    torch.testing.assert_close(
        uniform, F.log_softmax(logits, 1)[torch.arange(50), target] + math.log(4)
    )


def test_softmax_kind_subtracts_log_prior():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(20, 3, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (20,), generator=g)
    prior = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    got = infocam.pointwise_mi(logits, target, prior, softmax="softmax")
    want = F.log_softmax(logits, 1)[torch.arange(20), target] - prior.log()[target]
    torch.testing.assert_close(got, want)
    # identity: the softmax rule equals the PC rule on logits shifted by -log p
    torch.testing.assert_close(got, infocam.pointwise_mi(logits - prior.log(), target, prior))
    # with a uniform prior both rules are the paper's Eq. 9
    torch.testing.assert_close(
        infocam.pointwise_mi(logits, target, softmax="softmax"),
        infocam.pointwise_mi(logits, target),
    )


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 300), st.integers(2, 8), st.integers(0, 10_000))
def test_estimate_is_mean_with_standard_error(n, m, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, m)) * 2
    target = rng.integers(0, m, n)
    est = infocam.mutual_information(logits, target)
    pmi = infocam.pointwise_mi(logits, target).numpy()
    assert est.n == n and est.unit == "nat"
    assert est.value == pytest.approx(pmi.mean(), abs=1e-12)
    assert est.stderr == pytest.approx(pmi.std(ddof=1) / math.sqrt(n), abs=1e-12)


def test_perfect_classifier_on_balanced_data_gives_log_m():
    target = torch.arange(4).repeat(25)
    logits = F.one_hot(target, 4).double() * 50
    est = infocam.mutual_information(logits, target)
    assert est.value == pytest.approx(math.log(4), abs=1e-12)
    assert est.stderr == pytest.approx(0.0, abs=1e-12)


def test_units_and_formatting():
    est = MIEstimate(1.5314, 0.0041, 60000)
    assert str(est) == "1.531 ± 0.004 nat (n=60000)"
    bits = est.to("bit")
    assert bits.unit == "bit"
    assert bits.value == pytest.approx(1.5314 / math.log(2))
    assert bits.to("nat").value == pytest.approx(1.5314)
    assert f"{est:.2f}" == "1.53 ± 0.00 nat (n=60000)"
    lo, hi = est.interval(0.95)
    assert (hi - lo) / 2 == pytest.approx(1.959964 * 0.0041, rel=1e-5)
    assert est.as_dict() == {"value": 1.5314, "stderr": 0.0041, "n": 60000, "unit": "nat"}
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(10, 3, generator=g), torch.randint(0, 3, (10,), generator=g)
    in_bits = infocam.mutual_information(logits, target, unit="bit")
    in_nats = infocam.mutual_information(logits, target)
    assert in_bits.value == pytest.approx(in_nats.value / math.log(2))
    with pytest.raises(ValueError, match="unit must be"):
        MIEstimate(1.0, 0.1, 10, "nats")
    with pytest.raises(ValueError, match="unit must be"):
        infocam.mutual_information(logits, target, unit="shannon")


def test_negative_values_are_reported_not_clipped():
    # a classifier that is confidently wrong has negative PMI; we say so
    target = torch.tensor([0, 1] * 10)
    logits = F.one_hot(1 - target, 2).double() * 3
    est = infocam.mutual_information(logits, target)
    assert est.value < 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_logits_are_rejected(bad):
    logits = torch.zeros(5, 3)
    logits[2, 1] = bad
    with pytest.raises(ValueError, match="logits must be finite"):
        infocam.mutual_information(logits, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="logits must be finite"):
        infocam.pointwise_mi(logits, torch.zeros(5, dtype=torch.long))


def test_bad_targets_and_shapes():
    logits = torch.zeros(5, 3)
    with pytest.raises(ValueError, match=r"target must have shape \(5,\)"):
        infocam.mutual_information(logits, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"target must hold class indices in \[0, 2\]"):
        infocam.mutual_information(logits, torch.tensor([0, 1, 2, 3, 0]))
    with pytest.raises(TypeError, match="target must hold integer"):
        infocam.mutual_information(logits, torch.zeros(5))
    with pytest.raises(ValueError, match=r"logits must be 2-D"):
        infocam.mutual_information(torch.zeros(5), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="at least 2 samples"):
        infocam.mutual_information(torch.zeros(1, 3), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="softmax must be one of"):
        infocam.pointwise_mi(logits, torch.zeros(5, dtype=torch.long), softmax="plain")
    with pytest.raises(ValueError, match="prior"):
        infocam.pointwise_mi(logits, torch.zeros(5, dtype=torch.long), [0.5, 0.5])


def test_mi_estimate_says_what_each_number_covers():
    """Issue 18: a one-sided lower confidence bound for I(X;Y) from the plain held-out
    estimate, and a two-sided interval labelled as one for the estimate's expectation."""
    from infocam.mi.estimate import CORRECTED_INTERVAL_COVERS, INTERVAL_COVERS

    e = infocam.MIEstimate(0.5, 0.01, 1000)
    assert e.lower_confidence_bound() == pytest.approx(0.5 - 1.6448536 * 0.01, abs=1e-9)
    assert e.lower_confidence_bound(0.5) == pytest.approx(0.5)
    assert e.interval()[0] < e.lower_confidence_bound() < e.value
    assert e.interval_covers == INTERVAL_COVERS and "not I(X;Y)" in INTERVAL_COVERS
    assert str(e) == "0.500 ± 0.010 nat (n=1000)" and not e.corrected  # unchanged form
    assert e.as_dict() == {"value": 0.5, "stderr": 0.01, "n": 1000, "unit": "nat"}
    c = infocam.MIEstimate(0.5, 0.01, 1000, corrected=True)
    assert c.to("bit").corrected and c.interval_covers == CORRECTED_INTERVAL_COVERS
    with pytest.raises(ValueError, match=r"bias-corrected.*lower_bound_"):
        c.lower_confidence_bound()
    with pytest.raises(ValueError, match="level must be in"):
        e.lower_confidence_bound(1.0)
