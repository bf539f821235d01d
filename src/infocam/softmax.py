r"""Probability-corrected (PC) softmax: the paper's balanced MI estimator as a loss and a rule.

Notation: logits ``n`` of shape (N, M), class prior ``p`` (M,), target ``y``.

* ``log_pc_softmax(n, p)_y = n_y - logsumexp_j(n_j + log p_j)``. With a uniform prior this is
  ``log_softmax(n)_y + log M`` (the paper's Eq. 9). ``exp(n)`` is never formed, so logits of
  magnitude 1e4 stay finite in float32.
* PC-softmax cross-entropy ``= -log_pc_softmax(n, p)_y``. It equals the logit-adjusted
  cross-entropy ``cross_entropy(n + log p, y)`` (Menon et al. 2021 with tau = 1; Balanced
  Softmax, Ren et al. 2020) up to the constant ``log p_y``: same gradient, and a value that
  can be negative; at the optimum its mean is ``-I(X; Y)``.
* Prediction after PC-softmax training: ``argmax n`` for a balanced target distribution and
  ``argmax (n + log q)`` for a known target prior ``q``.

Not to be confused with LADE's "PC softmax" (Hong et al. 2021, post-compensated softmax),
which trains with plain softmax and subtracts ``log p`` from the logits afterwards; here the
prior enters the *training* loss. (That post-hoc rule is ``predict(n, train_prior=p)``.)
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from infocam._validation import (
    ArrayLike,
    as_tensor,
    check_floating,
    check_integer_labels,
    check_prior,
)

__all__ = [
    "PCSoftmaxCrossEntropy",
    "class_prior",
    "log_pc_softmax",
    "pc_softmax",
    "pc_softmax_cross_entropy",
    "predict",
]

Reduction = Literal["mean", "sum", "none"]
_REDUCTIONS: tuple[str, ...] = get_args(Reduction)


def _check_logits(logits: ArrayLike, name: str = "logits", *, min_dim: int = 1) -> torch.Tensor:
    x = check_floating(as_tensor(logits, name), name)
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimension(s); got {x.dim()}-D")
    return x


def _log_prior_along(
    prior: ArrayLike | None, logits: torch.Tensor, dim: int, name: str = "prior"
) -> torch.Tensor:
    """Validated ``log p`` shaped to broadcast against ``logits`` along ``dim``."""
    m = logits.shape[dim]
    p = check_prior(prior, m, name, dtype=torch.float64, device=logits.device)
    shape = [1] * logits.dim()
    shape[dim] = m
    return p.log().to(logits.dtype).reshape(shape)


def log_pc_softmax(
    logits: ArrayLike, prior: ArrayLike | None = None, dim: int = -1
) -> torch.Tensor:
    r"""Log of the probability-corrected softmax along ``dim``.

    ``log_pc_softmax(n, p)_y = n_y - log sum_j p_j exp(n_j)``, computed as
    ``n_y - logsumexp_j(n_j + log p_j)``. ``prior=None`` means uniform, giving
    ``log_softmax(n) + log M``. Each entry estimates the point-wise mutual information
    ``log p(y|x) / p(y)`` in nats when ``n`` was trained with PC-softmax cross-entropy.

    Args:
        logits: any shape; the class axis is ``dim``.
        prior: class prior ``p`` of length ``logits.shape[dim]`` (positive, sums to 1), or
            None for uniform. Any floating dtype: a float16 / bfloat16 prior sums to 1 only
            within its own precision (e.g. 0.99976 for 5 uniform classes in float16); it is
            checked against that, renormalised and used in float32 or higher.
        dim: the class axis.
    """
    n = _check_logits(logits)
    dim = _normalize_dim(dim, n.dim())
    x = _upcast(n)
    if prior is None:
        out = F.log_softmax(x, dim=dim) + math.log(n.shape[dim])
    else:
        log_p = _log_prior_along(prior, x, dim)
        out = x - torch.logsumexp(x + log_p, dim=dim, keepdim=True)
    return out.to(n.dtype)


def _upcast(x: torch.Tensor) -> torch.Tensor:
    # float16/bfloat16 keep ~3 significant digits: at |n| ~ 1e4, n_y - logsumexp(...) would
    # lose the log-prior entirely. Compute in float32 (as autocast does for softmax).
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def pc_softmax(logits: ArrayLike, prior: ArrayLike | None = None, dim: int = -1) -> torch.Tensor:
    r"""Probability-corrected softmax ``exp(n_y) / sum_j p_j exp(n_j)``.

    It estimates the density ratio ``p(y|x) / p(y)``, not a distribution over classes: the
    prior-weighted sum ``sum_y p_y pc_softmax(n, p)_y`` is 1. ``prior=None`` is uniform:
    ``M * softmax(n)``.
    """
    return log_pc_softmax(logits, prior, dim).exp()


def _normalize_dim(dim: int, ndim: int) -> int:
    if not -ndim <= dim < ndim:
        raise ValueError(f"dim must be in [{-ndim}, {ndim - 1}] for a {ndim}-D tensor; got {dim}")
    return dim % ndim


def _check_loss_target(target: Any, logits: torch.Tensor) -> torch.Tensor:
    t = check_integer_labels(as_tensor(target, "target", device=logits.device), "target")
    expected = logits.shape[:1] + logits.shape[2:]
    if t.shape != expected:
        raise ValueError(
            f"target must have shape {tuple(expected)} to match logits {tuple(logits.shape)} "
            f"(classes along dim 1); got {tuple(t.shape)}"
        )
    m = logits.shape[1]
    if t.numel() and bool(((t < 0) | (t >= m)).any()):
        raise ValueError(
            f"target must hold class indices in [0, {m - 1}]; "
            f"got values in [{int(t.min())}, {int(t.max())}]"
        )
    return t.long()


def _pc_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, log_prior: torch.Tensor, reduction: str
) -> torch.Tensor:
    # -log_pc_softmax(n, p)_y = CE(n + log p, y) + log p_y: the fused cross-entropy kernel
    # does the work and the constant adds nothing to the gradient.
    logits = _upcast(logits)  # half-precision losses are returned in float32, as under autocast
    shape = [1] * logits.dim()
    shape[1] = logits.shape[1]
    lp = log_prior.to(logits.dtype)
    ce = F.cross_entropy(logits + lp.reshape(shape), target, reduction=reduction)
    if reduction == "none":
        return ce + lp[target]
    offset = lp[target].sum() if reduction == "sum" else lp[target].mean()
    return ce + offset


def pc_softmax_cross_entropy(
    logits: ArrayLike, target: ArrayLike, prior: ArrayLike, reduction: Reduction = "mean"
) -> torch.Tensor:
    r"""PC-softmax cross-entropy ``-log_pc_softmax(n, p)_y = logsumexp_j(n_j + log p_j) - n_y``.

    Equal to ``F.cross_entropy(n + log p, y) + log p_y``: logit-adjusted cross-entropy with
    tau = 1, shifted by the constant ``log p_y``. The gradient is the same; the value can be
    negative, and at the optimum its mean is ``-I(X; Y)``.

    Args:
        logits: (N, M) or (N, M, d1, ...) with classes along dim 1, as ``F.cross_entropy``.
        target: (N,) or (N, d1, ...) integer class indices.
        prior: the training class prior (M,), e.g. ``class_prior(train_labels, M)``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}; got {reduction!r}")
    n = _check_logits(logits, min_dim=2)
    t = _check_loss_target(target, n)
    p = check_prior(prior, n.shape[1], dtype=torch.float64, device=n.device)
    return _pc_cross_entropy(n, t, p.log(), reduction)


class PCSoftmaxCrossEntropy(nn.Module):
    r"""PC-softmax cross-entropy as a module: ``loss = -log_pc_softmax(logits, prior)_y``.

    A drop-in for ``nn.CrossEntropyLoss`` on imbalanced data. The prior is checked once and
    held as the buffer ``log_prior`` (it moves with ``.to(device)`` and is saved in the
    state dict). Same gradient as logit-adjusted cross-entropy (tau = 1); see
    :func:`pc_softmax_cross_entropy`. Predict with :func:`predict` (``argmax`` of the
    logits for a balanced target).
    """

    log_prior: torch.Tensor

    def __init__(self, prior: ArrayLike, reduction: Reduction = "mean") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}; got {reduction!r}")
        p = as_tensor(prior, "prior")
        if p.dim() != 1:
            raise ValueError(f"prior must be 1-D; got shape {tuple(p.shape)}")
        p = check_prior(p, p.shape[0], dtype=torch.float64, device=torch.device("cpu"))
        self.reduction = reduction
        self.register_buffer("log_prior", p.log().to(torch.float32))

    @property
    def num_classes(self) -> int:
        return int(self.log_prior.shape[0])

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        n = _check_logits(logits, min_dim=2)
        if n.shape[1] != self.num_classes:
            raise ValueError(
                f"logits must have {self.num_classes} classes along dim 1 (the prior's length); "
                f"got shape {tuple(n.shape)}"
            )
        t = _check_loss_target(target, n)
        return _pc_cross_entropy(n, t, self.log_prior, self.reduction)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, reduction={self.reduction!r}"


def class_prior(
    labels: ArrayLike, num_classes: int, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Empirical class frequencies ``p_k = #{i: y_i = k} / N`` as a (num_classes,) tensor.

    Raises ``ValueError`` naming the classes that have no sample (a zero prior has no log).
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int; got {num_classes!r}")
    y = check_integer_labels(as_tensor(labels, "labels"), "labels").reshape(-1)
    if y.numel() == 0:
        raise ValueError("labels is empty; need at least one sample per class")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"labels must be class indices in [0, {num_classes - 1}]; got values in [{lo}, {hi}]"
        )
    counts = torch.bincount(y.long(), minlength=num_classes)
    empty = torch.nonzero(counts == 0).flatten().tolist()
    if empty:
        shown = ", ".join(map(str, empty[:20])) + (" ..." if len(empty) > 20 else "")
        raise ValueError(
            f"labels has no sample of class(es) {shown} (of {num_classes}); "
            "every class needs at least one sample for a prior with a finite log"
        )
    return (counts.to(torch.float64) / y.numel()).to(dtype)


def predict(
    logits: ArrayLike,
    target_prior: ArrayLike | None = None,
    *,
    train_prior: ArrayLike | None = None,
) -> torch.Tensor:
    r"""Class prediction from logits, for the test distribution you care about.

    For a PC-softmax-trained model the logits estimate PMI up to a per-sample constant:

    * ``target_prior=None``: balanced target, ``argmax_y n_y``;
    * ``target_prior=q``: ``argmax_y (n_y + log q_y)``.

    ``train_prior=p`` declares that the logits come from a *plain softmax* model trained
    under prior ``p``; ``log p`` is then subtracted first (post-hoc logit adjustment, which
    LADE calls post-compensation), giving ``argmax_y (n_y - log p_y + log q_y)``.
    """
    n = _check_logits(logits, min_dim=1)
    scores = n
    if train_prior is not None:
        scores = scores - _log_prior_along(train_prior, n, -1, "train_prior")
    if target_prior is not None:
        scores = scores + _log_prior_along(target_prior, n, -1, "target_prior")
    return scores.argmax(dim=-1)
