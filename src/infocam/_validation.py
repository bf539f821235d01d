"""Input checks shared by the core modules.

Every check raises ``TypeError`` or ``ValueError`` whose message names the argument, what was
expected and what came, so that a user's mistake never turns into a silent wrong number.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch

PRIOR_SUM_TOLERANCE = 1e-4

# What ``as_tensor`` takes where a user passes numbers: a tensor, a numpy array, or a (nested)
# list or tuple of numbers.
ArrayLike = torch.Tensor | np.ndarray | list | tuple

_DTYPE_KINDS = {"U": "strings", "S": "bytes", "O": "Python objects", "M": "datetimes",
                "m": "timedeltas", "V": "structured records"}  # fmt: skip


def as_tensor(value: Any, name: str, *, device: torch.device | None = None) -> torch.Tensor:
    """Return ``value`` as a tensor (numpy arrays and sequences are converted, not copied twice)."""
    if isinstance(value, torch.Tensor):
        return value if device is None else value.to(device)
    if isinstance(value, np.ndarray | list | tuple):
        what = type(value).__name__
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:  # ragged nesting
            raise TypeError(f"{name} must be numeric array-like; got a {what} ({exc})") from None
        if arr.dtype.kind not in "biufc":
            kind = _DTYPE_KINDS.get(arr.dtype.kind, "not numbers")
            hint = "; encode them as numbers first" if arr.dtype.kind in "USO" else ""
            raise TypeError(
                f"{name} must be numeric array-like; got {what} of dtype {arr.dtype} ({kind}{hint})"
            )
        try:
            return torch.as_tensor(arr, device=device)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{name} must be numeric array-like; got {what} of dtype {arr.dtype}"
            ) from exc
    raise TypeError(f"{name} must be a torch.Tensor or numpy array; got {type(value).__name__}")


def check_floating(x: torch.Tensor, name: str) -> torch.Tensor:
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")
    return x


def check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ``ValueError`` naming ``name`` if ``x`` holds NaN or inf (one device sync)."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(bad.sum()) - n_nan
        raise ValueError(
            f"{name} must be finite; found {n_nan} NaN and {n_inf} inf value(s) "
            f"in a tensor of shape {tuple(x.shape)}"
        )
    return x


def check_integer_labels(x: torch.Tensor, name: str) -> torch.Tensor:
    if torch.is_floating_point(x) or torch.is_complex(x) or x.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices; got dtype {x.dtype}")
    return x


def check_target(
    target: Any,
    name: str,
    *,
    n: int,
    num_classes: int,
    device: torch.device | None = None,
    match: str = "the logits",
) -> torch.Tensor:
    """Validate class indices: integer dtype, 1-D of length ``n``, values in [0, num_classes).

    ``match`` names what fixes ``n`` in the shape error ("target must have shape (n,) to
    match <match>").
    """
    t = check_integer_labels(as_tensor(target, name, device=device), name)
    if t.dim() != 1 or t.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) to match {match}; got {tuple(t.shape)}")
    if n and bool(((t < 0) | (t >= num_classes)).any()):
        lo, hi = int(t.min()), int(t.max())
        raise ValueError(
            f"{name} must hold class indices in [0, {num_classes - 1}]; got values in [{lo}, {hi}]"
        )
    return t.long()


def check_prior(
    prior: Any,
    num_classes: int,
    name: str = "prior",
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Validate a class prior and return it as a 1-D tensor of ``num_classes`` probabilities.

    A prior must be 1-D of length ``num_classes``, every entry finite and > 0, summing to 1
    within ``PRIOR_SUM_TOLERANCE``, or within the precision of its dtype where that is coarser:
    a float16 (bfloat16) prior's entries are rounded to about 3 (2) significant digits, so
    e.g. a uniform float16 prior of 5 classes sums to 0.99976. Checked in float64; a prior of
    such a low-precision dtype is renormalised there, so the returned ``dtype`` (float32 or
    higher) sums to 1.
    """
    p = as_tensor(prior, name)
    if not (torch.is_floating_point(p) or p.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{name} must be a tensor of probabilities; got dtype {p.dtype}")
    if p.dim() != 1:
        raise ValueError(f"{name} must be 1-D of length {num_classes}; got shape {tuple(p.shape)}")
    if p.shape[0] != num_classes:
        raise ValueError(
            f"{name} must have one entry per class ({num_classes}); got {p.shape[0]} entries"
        )
    p64 = p.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(p64).all()):
        raise ValueError(f"{name} must be finite; got {p64.tolist()[:10]}")
    if bool((p64 <= 0).any()):
        bad = torch.nonzero(p64 <= 0).flatten().tolist()
        raise ValueError(
            f"{name} must be strictly positive (log p is used); classes {bad[:10]} have "
            f"p <= 0. Use infocam.class_prior(labels, num_classes) for empirical frequencies"
        )
    total = float(p64.sum())
    # Each entry is rounded to within eps/2 of itself, so the sum to within eps/2 of 1.
    low_precision = torch.is_floating_point(p) and torch.finfo(p.dtype).bits <= 16
    tolerance = max(PRIOR_SUM_TOLERANCE, torch.finfo(p.dtype).eps) if low_precision else (
        PRIOR_SUM_TOLERANCE
    )  # fmt: skip
    if abs(total - 1.0) > tolerance:
        raise ValueError(
            f"{name} must sum to 1 (within {tolerance:g}); got sum {total:.6g}. "
            "Use infocam.class_prior(labels, num_classes) for empirical frequencies"
        )
    if low_precision:
        return (p64 / total).to(device=device, dtype=dtype)
    return p.to(device=device, dtype=dtype)


def check_unit(unit: str) -> str:
    if unit not in ("nat", "bit"):
        raise ValueError(f"unit must be 'nat' or 'bit'; got {unit!r}")
    return unit


def _describe(value: Any) -> str:
    """What came, for a type error: ``str 'a'``, ``bool True``, ``Tensor of shape (2,)``."""
    if isinstance(value, torch.Tensor | np.ndarray):
        return f"{type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _scalar(value: Any) -> Any:
    """A 0-d tensor or array as its Python number; anything else unchanged."""
    if isinstance(value, torch.Tensor | np.ndarray) and value.ndim == 0:
        return value.item()
    return value


def as_real(value: Any, name: str, expected: str = "a real number") -> float:
    """``value`` as a float: any real number (int, float, numpy scalar, 0-d tensor or array).

    ``bool`` is refused (``True`` is no threshold), as are complex numbers, strings and tensors
    with more than one element; the ``TypeError`` says ``name must be <expected>``.
    """
    v = _scalar(value)
    if isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be {expected}; got {_describe(value)}")
    return float(v)


def check_real(
    value: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float in the interval ``low``..``high`` (None: unbounded).

    ``low_open`` / ``high_open`` exclude the end. Raises ``TypeError`` for what is no real
    number (see :func:`as_real`) and ``ValueError`` for NaN, inf or a value outside.
    """
    if low is None and high is None:
        where = "a finite real number"
    else:
        lo = "(-inf" if low is None else f"{'(' if low_open else '['}{low:g}"
        hi = "inf)" if high is None else f"{high:g}{')' if high_open else ']'}"
        where = f"a real number in {lo}, {hi}"
    x = as_real(value, name, where)
    ok = math.isfinite(x)
    if ok and low is not None:
        ok = x > low if low_open else x >= low
    if ok and high is not None:
        ok = x < high if high_open else x <= high
    if not ok:
        raise ValueError(f"{name} must be {where}; got {x!r}")
    return x


def check_int(value: Any, name: str, minimum: int | None = None) -> int:
    """``value`` as an int (Python or numpy integer, 0-d integer tensor), ``>= minimum``.

    ``bool`` and floats (even 2.0) raise ``TypeError``; a value below ``minimum`` ``ValueError``.
    """
    where = "an integer" if minimum is None else f"an integer >= {minimum}"
    v = _scalar(value)
    if isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be {where}; got {_describe(value)}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be {where}; got {int(v)}")
    return int(v)


_DEVICE_EXAMPLES = "a torch device such as 'cpu', 'cuda' or 'cuda:1'"


def check_device(device: Any, name: str = "device") -> torch.device:
    """``device`` (``str``, ``torch.device`` or a CUDA index) as a ``torch.device`` usable here.

    Raises ``ValueError`` naming ``name`` (e.g. ``"--device"``) when the string is no device,
    when CUDA (or MPS) is asked for on a machine without it, or when a CUDA index is beyond
    the visible GPUs, and for ``meta`` (no data). Other device types are probed with an empty
    allocation. Nothing is
    allocated on CUDA (no context is created). ``None`` is refused: callers decide its meaning.
    """
    if isinstance(device, bool) or not isinstance(device, str | torch.device | int):
        raise TypeError(f"{name} must be {_DEVICE_EXAMPLES}; got {_describe(device)}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{name} must be {_DEVICE_EXAMPLES}; got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"{name} is {str(dev)!r} but CUDA is not available on this machine "
                "(torch.cuda.is_available() is False); use 'cpu'"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(
                f"{name} is {str(dev)!r} but only {count} CUDA device(s) are visible "
                f"(cuda:0 to cuda:{count - 1})"
            )
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"{name} is 'mps' but MPS is not available on this machine; use 'cpu'")
    elif dev.type == "meta":  # allocates fine, but holds shapes only: no data to compute on
        raise ValueError(
            f"{name} is 'meta', a device that holds no data (shapes only); use 'cpu' or 'cuda'"
        )
    elif dev.type != "cpu":
        try:
            torch.empty(0, device=dev)
        except Exception as exc:  # torch raises RuntimeError, AssertionError, NotImplementedError
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(
                f"{name} is {str(dev)!r} but it cannot be used here: {reason}"
            ) from None
    return dev
