r"""Point-wise MI from a classifier's logits, its mean over held-out samples and the standard
error (see :mod:`infocam.mi` for why the held-out mean estimates ``I(X; Y)``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from infocam._validation import (
    ArrayLike,
    as_tensor,
    check_finite,
    check_floating,
    check_prior,
    check_target,
    check_unit,
)
from infocam.softmax import log_pc_softmax

__all__ = [
    "CORRECTED_INTERVAL_COVERS",
    "INTERVAL_COVERS",
    "LOWER_BOUND_COVERS",
    "MIEstimate",
    "NonFiniteEstimateError",
    "estimate_from_pmi",
    "mutual_information",
    "pointwise_mi",
]

_NATS_PER_BIT = math.log(2.0)
SOFTMAX_KINDS = ("pc", "softmax")
SoftmaxKind = Literal["pc", "softmax"]
Unit = Literal["nat", "bit"]


# What each printed number covers (the CLI, ``--json`` and the docs use these words).
INTERVAL_COVERS = (
    "the expectation of the held-out cross-entropy estimate, not I(X;Y): I(X;Y) lies above it "
    "by the classifier's excess cross-entropy, which the interval does not see"
)
CORRECTED_INTERVAL_COVERS = (
    "the expectation of the bias-corrected (learning-curve) estimate; it covers I(X;Y) only "
    "as far as the correction removes the classifier's excess cross-entropy"
)
LOWER_BOUND_COVERS = (
    "I(X;Y): a one-sided lower confidence bound, the plain held-out estimate - z * stderr; "
    "valid because that estimate is a lower bound on I(X;Y) in expectation"
)


@dataclass(frozen=True)
class MIEstimate:
    """A mutual-information estimate: ``value ± stderr`` over ``n`` samples, in ``unit``.

    ``stderr`` is the sample standard deviation of the point-wise values divided by
    ``sqrt(n)``. ``str()`` gives e.g. ``1.531 ± 0.004 nat (n=60000)``.

    What the error bars cover: :meth:`interval` is a two-sided interval for the
    *expectation of this estimator* (for a held-out estimate, the held-out cross-entropy
    estimate), not for ``I(X; Y)``: a classifier's held-out estimate falls short of the truth
    by its excess cross-entropy, a bias the standard error does not see.
    :meth:`lower_confidence_bound` is a one-sided bound for ``I(X; Y)`` itself, valid for the
    plain held-out estimate (a lower bound in expectation). ``corrected=True`` marks a
    bias-corrected value (e.g. ``bias_correction="learning_curve"``), which is no lower bound:
    it has no :meth:`lower_confidence_bound`.
    """

    value: float
    stderr: float
    n: int
    unit: str = "nat"
    corrected: bool = False

    def __post_init__(self) -> None:
        check_unit(self.unit)

    def to(self, unit: Unit) -> MIEstimate:
        """The same estimate in ``"nat"`` or ``"bit"`` (1 bit = ln 2 nat)."""
        check_unit(unit)
        if unit == self.unit:
            return self
        factor = 1.0 / _NATS_PER_BIT if unit == "bit" else _NATS_PER_BIT
        return MIEstimate(self.value * factor, self.stderr * factor, self.n, unit, self.corrected)

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Normal-approximation confidence interval ``value ± z * stderr`` (z = 1.960 at 0.95).

        It covers the *expectation of this estimate* (``interval_covers``), not ``I(X; Y)``:
        the held-out estimate is short of the truth by the classifier's excess cross-entropy.
        """
        z = math.sqrt(2.0) * _erfinv(_check_level(level))
        return (self.value - z * self.stderr, self.value + z * self.stderr)

    @property
    def interval_covers(self) -> str:
        """What :meth:`interval` covers, in words."""
        return CORRECTED_INTERVAL_COVERS if self.corrected else INTERVAL_COVERS

    def lower_confidence_bound(self, level: float = 0.95) -> float:
        """One-sided lower confidence bound for ``I(X; Y)``: ``value - z * stderr`` with
        ``z`` the ``level`` quantile of the standard normal (1.645 at 0.95).

        Valid for a plain held-out estimate: its expectation is at most ``I(X; Y)`` (the
        classifier's excess cross-entropy is >= 0), so ``P(bound <= I) >= P(bound <= E value)
        ~ level``; the excess loss only adds to the coverage. A bias-corrected estimate
        (``corrected=True``) is no lower bound in expectation, so it is refused: take the plain
        one (``ClassifierMIEstimator.lower_bound_``).
        """
        level = _check_level(level)
        if self.corrected:
            raise ValueError(
                "lower_confidence_bound needs the plain held-out estimate (a lower bound in "
                "expectation); got a bias-corrected one: use the estimator's lower_bound_"
            )
        return self.value - math.sqrt(2.0) * _erfinv(2.0 * level - 1.0) * self.stderr

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "stderr": self.stderr, "n": self.n, "unit": self.unit}

    def __str__(self) -> str:
        return f"{self.value:.3f} ± {self.stderr:.3f} {self.unit} (n={self.n})"

    def __format__(self, spec: str) -> str:
        if not spec:
            return str(self)
        return f"{format(self.value, spec)} ± {format(self.stderr, spec)} {self.unit} (n={self.n})"


def _check_level(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1); got {level}")
    return level


def _erfinv(x: float) -> float:
    return float(torch.special.erfinv(torch.tensor(x, dtype=torch.float64)))


def _check_mi_inputs(logits: ArrayLike, target: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    n = check_floating(as_tensor(logits, "logits"), "logits")
    if n.dim() != 2:
        raise ValueError(f"logits must be 2-D (N, M); got shape {tuple(n.shape)}")
    check_finite(n, "logits")
    t = check_target(target, "target", n=n.shape[0], num_classes=n.shape[1], device=n.device)
    return n, t


def pointwise_mi(
    logits: ArrayLike,
    target: ArrayLike,
    prior: ArrayLike | None = None,
    *,
    softmax: SoftmaxKind = "pc",
) -> torch.Tensor:
    r"""Point-wise mutual information ``log p(y_i|x_i) / p(y_i)`` per sample, in nats.

    ``softmax="pc"`` (logits of a PC-softmax-trained model, the default):
    ``pmi_i = log_pc_softmax(n_i, p)_{y_i} = n_{i,y} - logsumexp_j(n_{ij} + log p_j)``.

    ``softmax="softmax"`` (logits of a plain-softmax model trained under prior ``p``, whose
    softmax estimates ``p(y|x)``): ``pmi_i = log_softmax(n_i)_{y_i} - log p_{y_i}``.

    With ``prior=None`` (uniform) both equal ``log_softmax(n)_y + log M``, the paper's Eq. 9.

    Args:
        logits: (N, M) finite floating-point logits.
        target: (N,) integer labels in [0, M).
        prior: the class prior the model was trained under, (M,), or None for uniform.
        softmax: ``"pc"`` or ``"softmax"``, how the model was trained.

    Returns:
        (N,) tensor on the logits' device.
    """
    if softmax not in SOFTMAX_KINDS:
        raise ValueError(f"softmax must be one of {SOFTMAX_KINDS}; got {softmax!r}")
    n, t = _check_mi_inputs(logits, target)
    if softmax == "pc" or prior is None:
        log_ratio = log_pc_softmax(n, prior, dim=1)
    else:
        # log_softmax(n)_y - log p_y, which equals log_pc_softmax(n - log p, p)_y.
        log_p = check_prior(prior, n.shape[1], dtype=torch.float64, device=n.device).log()
        log_ratio = F.log_softmax(n, dim=1) - log_p.to(n.dtype)
    return log_ratio.gather(1, t[:, None]).squeeze(1)


def mutual_information(
    logits: ArrayLike,
    target: ArrayLike,
    prior: ArrayLike | None = None,
    unit: Unit = "nat",
    *,
    softmax: SoftmaxKind = "pc",
) -> MIEstimate:
    r"""Estimate ``I(X; Y)`` as the mean point-wise MI over the given (held-out) samples.

    ``I_hat = (1/N) sum_i pmi_i`` with ``stderr = std(pmi, ddof=1) / sqrt(N)``, accumulated in
    float64. See :func:`pointwise_mi` for ``prior`` and ``softmax``. Pass held-out data: on
    the training set the estimate is biased upward.
    """
    check_unit(unit)
    pmi = pointwise_mi(logits, target, prior, softmax=softmax)
    return estimate_from_pmi(pmi, unit, "logits", cause=_FAR_APART)


_FAR_APART = "the logits are finite but too far apart for their dtype"


class NonFiniteEstimateError(ValueError):
    """The point-wise MI holds NaN or inf, so no estimate can be given (never returned as
    ``nan ± nan``); the message names the cause."""


def _check_finite_pmi(pmi: torch.Tensor, cause: str) -> None:
    bad = ~torch.isfinite(pmi)
    if bool(bad.any()):
        n_nan = int(torch.isnan(pmi).sum())
        raise NonFiniteEstimateError(
            f"no finite MI estimate: {int(bad.sum())} of {pmi.numel()} point-wise MI values are "
            f"not finite ({n_nan} NaN, {int(bad.sum()) - n_nan} inf); cause: {cause}"
        )


def estimate_from_pmi(
    pmi: torch.Tensor,
    unit: Unit = "nat",
    name: str = "pmi",
    groups: torch.Tensor | None = None,
    *,
    cause: str = "the point-wise MI values are not finite",
) -> MIEstimate:
    """Mean of point-wise MI values (nats) ± its standard error, in ``unit``.

    ``stderr = std(pmi, ddof=1) / sqrt(N)``, in float64. ``groups`` (N,) ids of rows that are
    copies of one another (``infocam.mi._splits.copy_groups``): their PMIs are one draw, not
    several, so the standard error is the cluster-robust one,
    ``sqrt(G / (G - 1) * sum_g (sum_{i in g} r_i)^2) / N`` (``r = pmi - mean``, G groups),
    which is ``std(pmi, ddof=1) / sqrt(N)`` when every row is its own group. ``name`` is what
    the error calls the samples when there are fewer than 2; a NaN or inf raises
    :class:`NonFiniteEstimateError` naming ``cause``.
    """
    pmi = pmi.to(torch.float64)
    count = pmi.shape[0]
    if count < 2:
        raise ValueError(f"{name} must hold at least 2 samples for a standard error; got {count}")
    _check_finite_pmi(pmi, cause)
    value = float(pmi.mean())
    if groups is None:
        stderr = float(pmi.std(unbiased=True)) / math.sqrt(count)
    else:
        _, inverse = torch.unique(groups.to(pmi.device), return_inverse=True)
        sums = torch.zeros(int(inverse.max()) + 1, dtype=torch.float64, device=pmi.device)
        sums.index_add_(0, inverse, pmi - value)
        g = sums.numel()
        stderr = math.sqrt(g / max(g - 1, 1) * float((sums**2).sum())) / count
    _check_finite_pmi(torch.tensor([value, stderr]), "the point-wise MI values are too large "
                      "to average in float64")  # fmt: skip
    return MIEstimate(value, stderr, count, "nat").to(unit)
