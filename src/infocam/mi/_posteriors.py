"""What a fitted :class:`~infocam.mi.ClassifierMIEstimator` computes from its members: their
posteriors ``log q_k(y|x)``, the ensemble's, and the point-wise MI of held-out samples
(private to ``infocam.mi``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from infocam.mi._scale import compress_tails


class FittedPosteriors:
    """The inference half of the estimator (a mixin): it reads the fitted attributes
    ``mean_``, ``scale_``, ``models_``, the members' stacks, temperatures and priors, and
    ``softmax`` and ``bias_correction``."""

    def _standardise(self, x: torch.Tensor) -> torch.Tensor:
        """``compress((x - mean_) / scale_)`` as float32: robust z-scores, bounded (see
        :func:`~infocam.mi._scale.compress_tails`). Halved operands keep ``x - mean_`` from
        overflowing; halving is exact, so the quotient is bit for bit ``(x - mean_) / scale_``
        where that is finite."""
        z = (x / 2 - self.mean_ / 2) / (self.scale_ / 2)
        return compress_tails(z).float()

    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            raise RuntimeError("this ClassifierMIEstimator is not fitted yet; call fit(X, y)")

    def _log_posteriors(self, x: torch.Tensor, half: bool = False) -> torch.Tensor:
        """``log q_k(y|x)`` for every member (or its half-data twin): (K, N, M) float64, under
        each member's prior."""
        xs = self._standardise(x)
        stack, temps, priors = (
            (self._half_stack, self.half_temperatures_, self.half_train_priors_)
            if half
            else (self._stack, self.temperatures_, self.train_priors_)
        )
        k = len(self.models_)
        out = []
        with torch.no_grad():
            for start in range(0, xs.shape[0], 65_536):
                chunk = xs[start : start + 65_536]
                logits = stack(chunk.expand(k, -1, -1)).double()
                logits = logits / temps.to(logits.device)[:, None, None]
                if self.softmax == "pc":
                    logits = logits + priors.log().to(logits.device)[:, None, :]
                out.append(F.log_softmax(logits, dim=2))
        return torch.cat(out, dim=1)

    def _ensemble_log_q(
        self, x: torch.Tensor, members: torch.Tensor, half: bool = False
    ) -> torch.Tensor:
        lq = self._log_posteriors(x, half)[members.to(x.device)]
        return torch.logsumexp(lq, dim=0) - math.log(lq.shape[0])

    def _pmi(
        self, x: torch.Tensor, t: torch.Tensor, members: torch.Tensor, corrected: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """PMI of ``(x, t)`` under the ensemble of ``members``: (reported, plain, log q, log p).

        ``reported`` is the learning-curve extrapolation ``pmi_n + (pmi_n - pmi_half) / (r-1)``
        when a bias correction was fitted and ``corrected``, else ``plain``.
        """
        lq = self._ensemble_log_q(x, members)
        log_p = self.train_priors_[members].mean(0).log().to(x.device)
        plain = lq.gather(1, t[:, None]).squeeze(1) - log_p[t]
        if not corrected or self.bias_correction is None:
            return plain, plain, lq, log_p
        lq_half = self._ensemble_log_q(x, members, half=True)
        log_p_half = self.half_train_priors_[members].mean(0).log().to(x.device)
        half = lq_half.gather(1, t[:, None]).squeeze(1) - log_p_half[t]
        r = float(self.size_ratios_[members.cpu()].mean())
        return plain + (plain - half) / (r - 1.0), plain, lq, log_p
