"""The parameters of :class:`~infocam.mi.ClassifierMIEstimator` (``EstimatorParams``: get, set,
repr, check) and the checks on its inputs (private to ``infocam.mi``)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch

from infocam._validation import ArrayLike, as_tensor, check_device, check_finite
from infocam.mi.estimate import SOFTMAX_KINDS

BIAS_CORRECTIONS = (None, "learning_curve")
# Cross-fitting folds by default, for the API and ``infocam mi`` alike (why: the estimator's
# docstring; measured in docs/measuring-information.md).
DEFAULT_CV = 5
ESTIMATOR_PARAMS = (
    "softmax",
    "hidden",
    "cv",
    "n_ensemble",
    "temperature",
    "lr",
    "weight_decay",
    "batch_size",
    "max_epochs",
    "patience",
    "lr_schedule",
    "select_features",
    "bias_correction",
    "val_fraction",
    "device",
    "random_state",
    "progress",
)


def check_params(est: Any) -> None:
    """Raise ``ValueError`` / ``TypeError`` naming the first bad parameter of ``est``."""
    if est.softmax not in SOFTMAX_KINDS:
        raise ValueError(f"softmax must be one of {SOFTMAX_KINDS}; got {est.softmax!r}")
    if est.cv is not None and (not isinstance(est.cv, int) or est.cv < 2):
        raise ValueError(f"cv must be None or an integer >= 2; got {est.cv!r}")
    for name in ("n_ensemble", "batch_size", "max_epochs", "patience"):
        value = getattr(est, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    if not isinstance(est.select_features, bool):
        raise TypeError(f"select_features must be True or False; got {est.select_features!r}")
    if est.bias_correction not in BIAS_CORRECTIONS:
        raise ValueError(
            f"bias_correction must be one of {BIAS_CORRECTIONS}; got {est.bias_correction!r}"
        )
    if est.lr_schedule not in ("constant", "onecycle"):
        raise ValueError(f"lr_schedule must be 'constant' or 'onecycle'; got {est.lr_schedule!r}")
    if not 0.0 < est.val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1); got {est.val_fraction!r}")
    if not est.lr > 0 or not est.weight_decay >= 0:
        raise ValueError(
            f"lr must be > 0 and weight_decay >= 0; got {est.lr!r}, {est.weight_decay!r}"
        )
    check_hidden(est.hidden)
    rs = est.random_state
    if rs is not None and (isinstance(rs, bool) or not isinstance(rs, numbers.Integral)):
        raise TypeError(f"random_state must be an integer seed or None; got {rs!r}")
    if rs is not None and not -(2**63) <= rs < 2**63 - 1:
        raise ValueError(f"random_state must be in [-2**63, 2**63 - 1); got {rs!r}")
    if est.device is not None:
        check_device(est.device)


def as_features(
    X: ArrayLike, *, device: torch.device, n_features: int | None = None
) -> torch.Tensor:
    x = as_tensor(X, "X")
    if not torch.is_floating_point(x):
        if x.dtype == torch.bool or torch.is_complex(x):
            raise TypeError(f"X must hold real numbers; got dtype {x.dtype}")
        x = x.double()
    if x.dim() == 1:
        x = x[:, None]
    if x.dim() != 2:
        raise ValueError(f"X must be 2-D (N, D) or 1-D (N,); got shape {tuple(x.shape)}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(
            f"X must hold at least 1 sample and 1 feature (N, D >= 1); got shape {tuple(x.shape)}"
        )
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f"X must have {n_features} features as in fit; got {x.shape[1]}")
    check_finite(x, "X")
    return x.to(device=device, dtype=torch.float64)


def check_hidden(hidden: Any) -> None:
    """``hidden``: a sequence of layer widths, each an integer >= 1 (``()``: a linear model)."""
    expected = "a sequence of integer layer widths >= 1, e.g. (100, 100), or () for a linear model"
    if isinstance(hidden, str | bytes) or not isinstance(hidden, Sequence):
        raise TypeError(f"hidden must be {expected}; got {hidden!r}")
    for w in hidden:
        if isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1:
            raise ValueError(f"hidden must be {expected}; got {tuple(hidden)!r}")


class EstimatorParams:
    """scikit-learn's parameter protocol for :class:`~infocam.mi.ClassifierMIEstimator`: its
    ``__init__`` arguments (``ESTIMATOR_PARAMS``) read, set, shown and checked."""

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ESTIMATOR_PARAMS}

    def set_params(self, **params: Any) -> EstimatorParams:
        for name, value in params.items():
            if name not in ESTIMATOR_PARAMS:
                raise ValueError(f"unknown parameter {name!r}; expected one of {ESTIMATOR_PARAMS}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in ESTIMATOR_PARAMS)
        return f"{type(self).__name__}({args})"

    def _check_params(self) -> None:
        check_params(self)
