r"""Gaussian mixtures with exact ground-truth mutual information ``I(X; Y)``.

``X | Y=y ~ N(mu_y, s_y^2 I)`` with class prior ``p``. The posterior is
``p(y|x) = softmax_y(log p_y + log N(x; mu_y, s_y^2 I))`` (always through logsumexp, in
float64), and

``I(X; Y) = H(Y) - H(Y|X) = H(Y) + E_x[ sum_y p(y|x) log p(y|x) ]``.

The expectation is the low-variance Monte Carlo form: each sample contributes the whole
posterior entropy, not the single noisy ``log p(y|x)/p(y)`` of its own label. In 1-D it is
also computed exactly by adaptive quadrature (scipy).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from infocam._validation import ArrayLike, as_tensor, check_prior
from infocam.mi import MIEstimate

__all__ = ["PAPER_COUNTS", "GaussianMixture"]

# The paper's Table 1: class y has mean PAPER_MEANS[y] * (1, ..., 1) and, in the imbalanced
# setup, PAPER_COUNTS["imbalanced"][y] samples; the balanced setup has 12,000 per class.
PAPER_MEANS = (0.0, 2.0, -2.0, 4.0, -4.0)
PAPER_COUNTS = {
    "balanced": (12_000, 12_000, 12_000, 12_000, 12_000),
    "imbalanced": (6_000, 12_000, 18_000, 24_000, 30_000),
}

_LOG_2PI = math.log(2.0 * math.pi)
_CHUNK = 250_000


class GaussianMixture:
    """A mixture of isotropic Gaussians ``N(mu_y, scale_y^2 I)`` with class prior ``prior``.

    Args:
        means: (M, D) class means (M >= 2 classes, D >= 1 dimensions).
        prior: (M,) class probabilities; None for uniform.
        scale: standard deviation, a float for all classes or an (M,) per-class sequence.

    All densities are computed in float64 on the CPU.
    """

    def __init__(self, means: Any, prior: Any = None, scale: float | Any = 1.0) -> None:
        mu = as_tensor(means, "means").to(torch.float64).cpu()
        if mu.dim() != 2 or mu.shape[0] < 2 or mu.shape[1] < 1:
            raise ValueError(
                f"means must be 2-D (M, D) with M >= 2 classes and D >= 1; "
                f"got shape {tuple(mu.shape)}"
            )
        if not bool(torch.isfinite(mu).all()):
            raise ValueError("means must be finite")
        m = mu.shape[0]
        p = torch.full((m,), 1.0 / m, dtype=torch.float64) if prior is None else prior
        self.prior = check_prior(p, m, "prior", dtype=torch.float64).cpu()
        self.prior = self.prior / self.prior.sum()
        s = torch.as_tensor(scale, dtype=torch.float64).cpu()
        if s.dim() == 0:
            s = s.expand(m).clone()
        if s.shape != (m,) or not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
            raise ValueError(
                f"scale must be a positive float or {m} positive per-class values; got {scale!r}"
            )
        self.means = mu
        self.scale = s

    @classmethod
    def paper(cls, dim: int, balanced: bool = True) -> GaussianMixture:
        """The paper's Table 1 mixture in ``dim`` dimensions (unit covariance, 5 classes).

        Means 0, +2, -2, +4, -4 times the all-ones vector; prior uniform (12,000 per class) or
        proportional to 6k/12k/18k/24k/30k.
        """
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer; got {dim!r}")
        counts = torch.tensor(PAPER_COUNTS["balanced" if balanced else "imbalanced"])
        means = torch.tensor(PAPER_MEANS, dtype=torch.float64)[:, None].expand(-1, dim)
        return cls(means, counts.double() / counts.sum(), 1.0)

    @staticmethod
    def paper_counts(balanced: bool = True) -> tuple[int, ...]:
        """Samples per class in the paper's setup (Table 1)."""
        return PAPER_COUNTS["balanced" if balanced else "imbalanced"]

    @property
    def num_classes(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def __repr__(self) -> str:
        return (
            f"GaussianMixture(num_classes={self.num_classes}, dim={self.dim}, "
            f"prior={[round(v, 4) for v in self.prior.tolist()]}, "
            f"scale={[round(v, 4) for v in self.scale.tolist()]})"
        )

    # ----------------------------------------------------------------------------- sampling
    def sample(
        self,
        n: int | Any,
        seed: int = 0,
        *,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``(X (N, D), y (N,))``, shuffled.

        ``n`` an int draws labels from the prior; ``n`` a sequence of M counts draws exactly
        that many samples of each class (the paper's fixed-count datasets).
        """
        gen = torch.Generator().manual_seed(int(seed))
        if isinstance(n, int | np.integer):
            if n < 1:
                raise ValueError(f"n must be a positive number of samples; got {n}")
            y = torch.multinomial(self.prior, int(n), replacement=True, generator=gen)
        else:
            counts = torch.as_tensor(n)
            if counts.shape != (self.num_classes,) or bool((counts < 0).any()):
                raise ValueError(
                    f"n must be an int or {self.num_classes} non-negative per-class counts; "
                    f"got {n!r}"
                )
            y = torch.repeat_interleave(torch.arange(self.num_classes), counts.long())
            y = y[torch.randperm(y.shape[0], generator=gen)]
        noise = torch.randn(y.shape[0], self.dim, generator=gen, dtype=torch.float64)
        x = self.means[y] + self.scale[y, None] * noise
        return x.to(dtype), y

    # ----------------------------------------------------------------------------- densities
    def _x(self, x: ArrayLike) -> torch.Tensor:
        t = as_tensor(x, "x").to(torch.float64).cpu()
        if t.dim() == 1 and self.dim == 1:
            t = t[:, None]
        if t.dim() != 2 or t.shape[1] != self.dim:
            raise ValueError(f"x must have shape (N, {self.dim}); got {tuple(t.shape)}")
        return t

    def joint_log_prob(self, x: ArrayLike) -> torch.Tensor:
        """``log p(y) + log N(x; mu_y, s_y^2 I)``, shape (N, M), float64."""
        t = self._x(x)
        # |x - mu|^2 without an (N, M, D) tensor.
        sq = (
            (t * t).sum(1, keepdim=True)
            - 2.0 * t @ self.means.T
            + (self.means * self.means).sum(1)[None, :]
        ).clamp_min(0.0)
        var = self.scale**2
        log_norm = -0.5 * self.dim * (_LOG_2PI + var.log())
        return self.prior.log() + log_norm - 0.5 * sq / var

    def log_prob(self, x: ArrayLike) -> torch.Tensor:
        """Mixture log-density ``log p(x)``, shape (N,)."""
        return torch.logsumexp(self.joint_log_prob(x), dim=1)

    def posterior_log_prob(self, x: ArrayLike) -> torch.Tensor:
        """``log p(y|x)``, shape (N, M): the Bayes-optimal classifier's log-probabilities."""
        joint = self.joint_log_prob(x)
        return joint - torch.logsumexp(joint, dim=1, keepdim=True)

    def pointwise_mi(self, x: ArrayLike, y: ArrayLike) -> torch.Tensor:
        """True point-wise MI ``log p(y|x) / p(y)`` of labelled samples, shape (N,)."""
        lp = self.posterior_log_prob(x)
        t = as_tensor(y, "y").long().cpu()
        return lp.gather(1, t[:, None]).squeeze(1) - self.prior.log()[t]

    def entropy(self) -> float:
        """Label entropy ``H(Y)`` in nats."""
        return float(-(self.prior * self.prior.log()).sum())

    def _neg_cond_entropy(self, x: torch.Tensor) -> torch.Tensor:
        lp = self.posterior_log_prob(x)
        return (lp.exp() * lp).sum(1)  # lp is finite, so 0 * lp stays 0

    # --------------------------------------------------------------------------- ground truth
    def mutual_information(
        self, n_samples: int = 1_000_000, seed: int = 0, *, method: str = "auto"
    ) -> MIEstimate:
        """Ground-truth ``I(X; Y)`` in nats.

        ``method="mc"``: ``H(Y) + mean_i sum_y p(y|x_i) log p(y|x_i)`` over ``n_samples``
        draws of ``x`` (labels stratified by the prior), with its standard error.
        ``method="quad"`` (D == 1 only): adaptive quadrature of the same integral; ``stderr``
        is the integrator's error bound and ``n`` is 0. ``"auto"``: quad in 1-D, else mc.
        """
        if method not in ("auto", "mc", "quad"):
            raise ValueError(f"method must be 'auto', 'mc' or 'quad'; got {method!r}")
        if method == "quad" or (method == "auto" and self.dim == 1):
            return self._mi_quadrature()
        if n_samples < 2:
            raise ValueError(f"n_samples must be at least 2; got {n_samples}")
        # Stratify labels: exactly round(n p_y) draws per class (largest remainder), a
        # variance reduction over drawing y; each class's term is then weighted by p_y.
        gen = torch.Generator().manual_seed(int(seed))
        counts = _stratified_counts(self.prior, n_samples)
        total = torch.zeros((), dtype=torch.float64)
        total_sq = torch.zeros((), dtype=torch.float64)
        # Per-class means/variances of f(x) = sum_y p(y|x) log p(y|x), combined by prior.
        mean_f = torch.zeros((), dtype=torch.float64)
        var_mean = torch.zeros((), dtype=torch.float64)
        for c in range(self.num_classes):
            k = int(counts[c])
            if k == 0:
                continue
            total.zero_()
            total_sq.zero_()
            for start in range(0, k, _CHUNK):
                size = min(_CHUNK, k - start)
                noise = torch.randn(size, self.dim, generator=gen, dtype=torch.float64)
                f = self._neg_cond_entropy(self.means[c] + self.scale[c] * noise)
                total += f.sum()
                total_sq += (f * f).sum()
            m_c = total / k
            v_c = (total_sq / k - m_c**2).clamp_min(0.0) * k / max(k - 1, 1)
            mean_f += self.prior[c] * m_c
            var_mean += self.prior[c] ** 2 * v_c / k
        return MIEstimate(self.entropy() + float(mean_f), math.sqrt(float(var_mean)), n_samples)

    def _mi_quadrature(self) -> MIEstimate:
        if self.dim != 1:
            raise ValueError(f"method='quad' needs a 1-D mixture; this one has dim={self.dim}")
        from scipy import integrate

        mu = self.means[:, 0].numpy()
        s = self.scale.numpy()
        lo, hi = float((mu - 40 * s).min()), float((mu + 40 * s).max())

        def integrand(x: float) -> float:
            joint = self.joint_log_prob(torch.tensor([[x]], dtype=torch.float64))[0]
            log_px = torch.logsumexp(joint, 0)
            lp = joint - log_px
            return float(log_px.exp() * (lp.exp() * lp).sum())

        points = sorted({float(v) for v in mu})
        value, err = integrate.quad(
            integrand, lo, hi, points=points, limit=500, epsabs=1e-12, epsrel=1e-10
        )
        return MIEstimate(self.entropy() + value, float(err), 0)


def _stratified_counts(prior: torch.Tensor, n: int) -> torch.Tensor:
    """Integer counts summing to ``n`` closest to ``n * prior`` (largest remainder)."""
    raw = prior * n
    counts = raw.floor().long()
    short = n - int(counts.sum())
    if short:
        order = torch.argsort(raw - counts, descending=True)
        counts[order[:short]] += 1
    return counts
