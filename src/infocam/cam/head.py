r"""The head after the global average pooling, as an affine map of the pooled vector.

A CAM is exact when the logits are an affine function of the features' spatial mean
``p = mean_hw(f)``, per sample at most through one positive scalar. Every head this module
accepts is written as

.. math:: \text{logits}_{n} = s_n \, W \, p_n + b_n

with ``W`` (M, K) shared by the batch, ``s`` (N,) a per-sample scale (1 without a LayerNorm)
and ``b`` (N, M) a per-sample bias. The map of class ``y`` is then
``M_y(i, j) = s_n W_y \cdot f(i, j)`` and its spatial mean plus ``b_{n,y}`` is the logit.

The head is walked layer by layer from the pooling to the logits (the one rule: every layer
after the spatial mean must be affine in its input, per sample for a LayerNorm):

* a no-op (``Flatten``, ``Identity``, ``Dropout`` in eval mode, a pooling of a 1 x 1 map);
* ``Linear`` and a 1 x 1 ``Conv2d`` applied to the pooled (N, K, 1, 1) map:
  ``x -> W x + b``;
* ``BatchNorm1d`` / ``BatchNorm2d`` with running statistics (eval mode):
  ``x -> g * x + (beta - g * mean)`` with ``g = gamma / sqrt(var + eps)``, folded into W and b;
* ``LayerNorm`` (and ``LayerNorm2d`` on the (N, K, 1, 1) pooled map) over the whole vector:
  with the sample's mean ``mu`` and ``sigma = sqrt(var + eps)`` of its input
  ``x = s A p + c``, ``LN(x) = (s / sigma) diag(gamma) A p + gamma * (c - mu) / sigma + beta``:
  the scale becomes ``s / sigma``, the weight ``diag(gamma) A``, the bias the rest. For
  torchvision's ConvNeXt this is ``logit_y = mean_ij[W_y diag(gamma) f_ij] / sigma +
  W_y (beta - gamma mu / sigma) + b_y``;
* several branches read the same vector and their outputs are averaged (a distillation head):
  ``W = mean(W_i)``, ``b = mean(b_i)`` (their scales must agree);
* no layer at all (SqueezeNet: the convolutional classifier runs before the pooling):
  ``W`` is the identity, the map of class ``y`` is channel ``y``.

Anything else (an activation, an MLP, a GroupNorm, a max / GeM pooling, a class token) breaks
affinity and is refused with the layer's name. Each step is checked against the layer's
recorded input and output in float64, so a functional operation between layers that changes
the values is caught too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["AffineHead", "HeadStep", "affine_head", "walk_head"]

_NOOPS = (
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)
_POOLINGS = (nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool1d)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass(frozen=True)
class AffineHead:
    r"""The head as an affine map of the pooled features: ``logits = s * (W @ p) + b``.

    Attributes:
        weight: (M, K) the effective weight ``W`` shared by the batch (for GAP + Linear the
            classifier's own weight tensor).
        bias: (N, M) the per-sample bias ``b`` (the classifier's bias, plus what BatchNorm /
            LayerNorm shifts contribute).
        scale: (N,) the per-sample positive scale ``s`` (``1 / sigma`` of a LayerNorm), or
            None when it is 1 for every sample.

    The CAM of class ``y`` is ``s_n W_y . f(i, j)``; its spatial mean plus ``bias[n, y]`` is
    the logit (:meth:`logits` computes that sum).
    """

    weight: torch.Tensor
    bias: torch.Tensor
    scale: torch.Tensor | None = None

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """``s * (W @ mean_hw(features)) + b`` for features (N, K, h, w), in float64."""
        p = features.double().mean((2, 3)) @ self.weight.double().T
        if self.scale is not None:
            p = p * self.scale.double()[:, None]
        return p + self.bias.double()


@dataclass(frozen=True)
class HeadStep:
    """One layer of the head: its name, the module and what it does (see the module doc).

    ``kind`` is ``"noop"``, ``"linear"``, ``"conv"``, ``"batchnorm"`` or ``"layernorm"``;
    ``branch`` is 0 for a step every branch shares, else the number (from 1) of the branch it
    belongs to (the branches' outputs are averaged).
    """

    name: str
    module: nn.Module
    kind: str
    branch: int = 0


@dataclass
class _State:
    """``x = scale * (A @ p) + c`` with A None for the identity; ``x`` its value (N, D)."""

    x: torch.Tensor
    scale: torch.Tensor
    a: torch.Tensor | None
    c: torch.Tensor


def _kind(mod: nn.Module) -> str | None:
    if isinstance(mod, _NOOPS):
        return "noop"
    if isinstance(mod, nn.Linear):
        return "linear"
    if isinstance(mod, nn.Conv2d) and mod.kernel_size == (1, 1) and mod.groups == 1:
        return "conv" if all(p == 0 for p in _pair(mod.padding)) else None
    if isinstance(mod, _BATCHNORMS):
        return "batchnorm" if mod.running_mean is not None and mod.running_var is not None else None
    if isinstance(mod, nn.LayerNorm):
        return "layernorm"
    if isinstance(mod, _POOLINGS):
        return "noop"  # on a 1 x 1 map (checked: its output equals its input)
    return None


def _pair(v: Any) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, tuple | list) else (v, v)


def _linear_params(mod: nn.Module, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    w = mod.weight.detach().to(dev, torch.float64)
    if w.dim() == 4:
        w = w[:, :, 0, 0]
    b = None if mod.bias is None else mod.bias.detach().to(dev, torch.float64)
    return w, b


def _apply(step: HeadStep, s: _State) -> _State:
    """One step on the state, in float64."""
    mod, dev = step.module, s.x.device
    if step.kind == "noop":
        return s
    if step.kind in ("linear", "conv"):
        w, b = _linear_params(mod, dev)
        a = w if s.a is None else w @ s.a
        c = s.c @ w.T
        x = s.x @ w.T
        if b is not None:
            c, x = c + b, x + b
        return _State(x, s.scale, a, c)
    if step.kind == "batchnorm":
        g = (mod.running_var.detach().to(dev, torch.float64) + mod.eps).rsqrt()
        shift = -mod.running_mean.detach().to(dev, torch.float64) * g
        if mod.weight is not None:
            w = mod.weight.detach().to(dev, torch.float64)
            g, shift = g * w, shift * w
        if mod.bias is not None:
            shift = shift + mod.bias.detach().to(dev, torch.float64)
        a = torch.diag(g) if s.a is None else g[:, None] * s.a
        return _State(s.x * g + shift, s.scale, a, s.c * g + shift)
    # layernorm over the whole vector: per-sample mean and standard deviation of x
    mu = s.x.mean(1, keepdim=True)
    sigma = (s.x.var(1, unbiased=False, keepdim=True) + mod.eps).sqrt()
    d = s.x.shape[1]
    gamma = torch.ones(d, dtype=torch.float64, device=dev)
    beta = torch.zeros(d, dtype=torch.float64, device=dev)
    if getattr(mod, "weight", None) is not None:
        gamma = mod.weight.detach().to(dev, torch.float64).reshape(-1)
    if getattr(mod, "bias", None) is not None:
        beta = mod.bias.detach().to(dev, torch.float64).reshape(-1)
    a = torch.diag(gamma) if s.a is None else gamma[:, None] * s.a
    c = gamma * (s.c - mu) / sigma + beta
    x = gamma * (s.x - mu) / sigma + beta
    return _State(x, s.scale / sigma[:, 0], a, c)


def _start(pooled: torch.Tensor) -> _State:
    p = pooled.double()
    n, k = p.shape
    ones = torch.ones(n, dtype=torch.float64, device=p.device)
    return _State(p, ones, None, torch.zeros(n, k, dtype=torch.float64, device=p.device))


def _run(steps: list[HeadStep], pooled: torch.Tensor) -> _State:
    """The state after every step; branches are averaged at the end."""
    shared = [st for st in steps if st.branch == 0]
    state = _start(pooled)
    for st in shared:
        state = _apply(st, state)
    n_branches = max((st.branch for st in steps), default=0)
    if n_branches == 0:
        return state
    ends = []
    for i in range(1, n_branches + 1):
        s = state
        for st in steps:
            if st.branch == i:
                s = _apply(st, s)
        ends.append(s)
    if not all(torch.allclose(e.scale, ends[0].scale, rtol=1e-9, atol=0) for e in ends):
        raise ValueError("the averaged branches normalise the vector differently (no shared scale)")
    k = pooled.shape[1]
    eye = torch.eye(k, dtype=torch.float64, device=pooled.device)
    a = torch.stack([eye if e.a is None else e.a for e in ends]).mean(0)
    return _State(
        torch.stack([e.x for e in ends]).mean(0),
        ends[0].scale,
        a,
        torch.stack([e.c for e in ends]).mean(0),
    )


def affine_head(steps: list[HeadStep], features: torch.Tensor) -> AffineHead:
    """The :class:`AffineHead` of ``steps`` for features (N, K, h, w), weights in the
    features' compute dtype (float32 for half features), scale and bias in float64."""
    state = _run(steps, features.double().mean((2, 3)))
    k = features.shape[1]
    dtype = torch.promote_types(features.dtype, torch.float32)
    a = state.a
    if a is None:
        a = torch.eye(k, dtype=torch.float64, device=features.device)
    scale = None if bool((state.scale == 1).all()) else state.scale
    return AffineHead(weight=a.to(dtype), bias=state.c, scale=scale)


def _flat(t: Any) -> torch.Tensor | None:
    """(N, D) view of a recorded tensor, in its own dtype (its rounding sets the tolerance)."""
    if not isinstance(t, torch.Tensor) or t.dim() < 2:
        return None
    return t.detach().flatten(1)


def _nchw(shape: torch.Size) -> torch.Size:
    """(N, h, w, K) -> (N, K, h, w): a channels-last map's shape as the features have it."""
    return torch.Size((shape[0], shape[3], shape[1], shape[2]))


def _label(name: str, mod: nn.Module) -> str:
    return f"{name!r} ({type(mod).__name__})"


def walk_head(
    leaves: list[tuple[str, nn.Module, Any, Any]],
    features: torch.Tensor,
    close: Any,
) -> list[HeadStep]:
    """The steps of the head from the recorded leaf calls after the features, or a
    ``ValueError`` whose message names the layer that breaks affinity.

    ``leaves`` are ``(name, module, first input, output)`` of the leaf modules run after the
    feature layer (the pooling layer first when the features are its input);
    ``close(out, expect)`` says whether a recorded tensor equals its float64 expectation up to
    the rounding of the recorded tensor's dtype.
    """
    pooled = features.double().mean((2, 3))
    n = pooled.shape[0]
    steps: list[HeadStep] = []
    state = _start(pooled)
    history: list[_State] = []  # the state before each step
    branch, branch_state = 0, state
    pooling_seen = False
    for i, (name, mod, inp, out) in enumerate(leaves):
        fin, fout = _flat(inp), _flat(out)
        if fin is None or fout is None or fin.shape[0] != n or fout.shape[0] != n:
            raise ValueError(f"{_label(name, mod)} does not map the pooled vector sample by sample")
        if not pooling_seen:
            if i == 0 and inp.dim() == 4 and features.shape in (inp.shape, _nchw(inp.shape)):
                # the pooling layer: it must output the spatial mean (N, K)
                if fout.shape != pooled.shape or not close(fout, pooled):
                    raise ValueError(
                        f"{_label(name, mod)} does not output the features' spatial mean"
                    )
                pooling_seen = True
                continue
            if fin.shape != pooled.shape or not close(fin, pooled):
                raise ValueError(
                    f"{_label(name, mod)} reads neither the features {tuple(features.shape[1:])} "
                    "nor their spatial mean"
                )
            pooling_seen = True  # pooled by a function, not a module
        if fin.shape != state.x.shape or not close(fin, state.x):
            # another branch reading the vector an earlier one started from
            if branch == 0:
                j = next(
                    (
                        j
                        for j in range(len(history) - 1, -1, -1)
                        if history[j].x.shape == fin.shape and close(fin, history[j].x)
                    ),
                    None,
                )
                if j is not None:
                    branch_state, branch = history[j], 1
                    steps = steps[:j] + [HeadStep(s.name, s.module, s.kind, 1) for s in steps[j:]]
            if branch and fin.shape == branch_state.x.shape and close(fin, branch_state.x):
                branch += 1
                state = branch_state
            else:
                prev = steps[-1].name if steps else "the pooling"
                raise ValueError(
                    f"the input of {_label(name, mod)} is not the output of {prev!r}: something "
                    "that is not a module changes the pooled vector between them"
                )
        kind = _kind(mod)
        for later, lmod, _, lout in leaves[i + 1 :]:
            if lout is out and _kind(lmod) != "noop":
                # an in-place layer changed this output after it was recorded
                raise ValueError(
                    f"{_label(later, lmod)} (in place, after {name!r}) is not affine in the "
                    "pooled vector"
                )
        if kind is None or (kind == "noop" and fin.shape != fout.shape):
            raise ValueError(f"{_label(name, mod)} is not affine in the pooled vector")
        if kind == "layernorm" and tuple(mod.normalized_shape) != (fin.shape[1],):
            raise ValueError(
                f"{_label(name, mod)} normalises {tuple(mod.normalized_shape)}, not the whole "
                f"pooled vector of {fin.shape[1]}"
            )
        if kind == "conv" and (inp.dim() != 4 or inp.shape[2:] != (1, 1)):
            raise ValueError(
                f"{_label(name, mod)} is a convolution of a map, not of the pooled vector"
            )
        step = HeadStep(name, mod, kind, branch)
        x = fin.double()
        expect = _apply(step, _State(x, torch.ones_like(x[:, 0]), None, torch.zeros_like(x))).x
        if expect.shape != fout.shape or not close(fout, expect):
            raise ValueError(f"{_label(name, mod)} is not affine in the pooled vector")
        history.append(state)
        state = _apply(step, state)
        steps.append(step)
    return steps
