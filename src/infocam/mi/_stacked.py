"""A small, self-contained trainer for K independent MLPs at once (private to ``infocam.mi``).

The K members share no parameters; their layers are stacked into (K, in, out) tensors and run
with one batched matmul (``baddbmm``), so an ensemble or the K models of cross-fitting cost
about as much wall time as one. Each member draws its own minibatches from its own training
indices; the loss is the sum of the members' mean losses, so each member's gradient (and,
Adam being element-wise, each member's update) is exactly what it would be if trained alone.
Minibatches are gathered from in-memory tensors by index: no DataLoader, no per-sample collate.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm


class StackedMLP(nn.Module):
    """K MLPs with identical shapes: input (K, B, D) -> logits (K, B, M)."""

    def __init__(
        self,
        k: int,
        in_features: int,
        num_classes: int,
        hidden: Sequence[int],
        generator: torch.Generator,
        input_mask: torch.Tensor | None = None,
        input_affine: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        sizes = [in_features, *hidden, num_classes]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(sizes):
            # nn.Linear's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b.
            bound = 1.0 / math.sqrt(fan_in)
            w = (torch.rand(k, fan_in, fan_out, generator=generator) * 2 - 1) * bound
            b = (torch.rand(k, 1, fan_out, generator=generator) * 2 - 1) * bound
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))
        self.hidden = tuple(int(h) for h in hidden)
        # Optional (K, 1, D) 0/1 mask: member k sees only its selected input features.
        mask = None if input_mask is None else input_mask.float().reshape(k, 1, in_features)
        self.register_buffer("input_mask", mask)
        # Optional per-member standardisation (shift, scale), each (K, D): member k sees
        # (x - shift_k) / scale_k, e.g. with the statistics of its own training rows.
        shift, scale = (None, None) if input_affine is None else (
            t.float().reshape(k, 1, in_features) for t in input_affine
        )  # fmt: skip
        self.register_buffer("input_shift", shift)
        self.register_buffer("input_scale", scale)

    @property
    def k(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.input_shift is None else (x - self.input_shift) / self.input_scale
        h = h if self.input_mask is None else h * self.input_mask
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = F.relu(h)
        return h

    def member(self, j: int) -> nn.Sequential:
        """Member ``j`` as a plain ``Linear -> ReLU -> ... -> Linear`` module (a copy, the
        layout of :func:`infocam.models.mlp`); its input standardisation and mask are folded
        into its first layer."""
        w0 = self.weights[0]
        linears = [nn.Linear(w.shape[1], w.shape[2]) for w in self.weights]
        net = nn.Sequential(*[m for lin in linears for m in (nn.ReLU(), lin)][1:])
        with torch.no_grad():
            for i, (lin, w, b) in enumerate(zip(linears, self.weights, self.biases, strict=True)):
                wj, bj = w[j], b[j, 0]
                if i == 0 and self.input_mask is not None:  # a dropped input has zero weights
                    wj = wj * self.input_mask[j, 0, :, None]
                if i == 0 and self.input_shift is not None:
                    # ((x - s) / c) @ W + b = x @ (W / c) + (b - (s / c) @ W)
                    wj = wj / self.input_scale[j, 0, :, None]
                    bj = bj - self.input_shift[j, 0] @ wj
                lin.weight.copy_(wj.T)
                lin.bias.copy_(bj)
        return net.to(w0.device)


@dataclass
class FitResult:
    model: StackedMLP
    best_epoch: list[int]
    best_val_loss: list[float]
    epochs_run: int
    history: list[list[float]] = field(default_factory=list)  # per epoch, per member


def _pad_indices(sets: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged index sets -> (K, L) padded indices and a (K, L) float mask."""
    length = max(int(s.numel()) for s in sets)
    idx = torch.zeros(len(sets), length, dtype=torch.long)
    mask = torch.zeros(len(sets), length)
    for j, s in enumerate(sets):
        idx[j, : s.numel()] = s
        mask[j, : s.numel()] = 1.0
    return idx, mask


def member_losses(
    model: StackedMLP,
    x: torch.Tensor,
    y: torch.Tensor,
    idx: torch.Tensor,
    mask: torch.Tensor,
    offsets: torch.Tensor,
    batch: int = 65_536,
) -> torch.Tensor:
    """Mean cross-entropy of ``logits + offsets[k]`` per member over its (padded) index set."""
    total = torch.zeros(idx.shape[0], dtype=torch.float64, device=x.device)
    with torch.no_grad():
        for start in range(0, idx.shape[1], batch):
            sl = idx[:, start : start + batch]
            logits = model(x[sl]) + offsets[:, None, :]
            ce = F.cross_entropy(logits.transpose(1, 2), y[sl], reduction="none")
            total += (ce.double() * mask[:, start : start + batch]).sum(1)
    return total / mask.sum(1).double()


def fit_stacked(
    x: torch.Tensor,
    y: torch.Tensor,
    train_sets: Sequence[torch.Tensor],
    val_sets: Sequence[torch.Tensor],
    offsets: torch.Tensor,
    *,
    num_classes: int,
    hidden: Sequence[int],
    lr: float,
    weight_decay: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    seed: int,
    schedule: str = "constant",
    input_mask: torch.Tensor | None = None,
    input_affine: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: bool = False,
) -> FitResult:
    """Train one member per (train_set, val_set) pair with early stopping on validation loss.

    Member k minimises ``cross_entropy(logits + offsets[k], y)`` over ``x[train_sets[k]]``;
    ``offsets[k] = log p_k`` gives the PC-softmax loss (same gradient), zeros plain softmax.
    Each member keeps the parameters of its epoch with the lowest validation loss and stops
    counting after ``patience`` epochs without improvement; training ends when all have.
    ``input_mask`` (K, D) of 0/1: member k sees only the features where it is 1.
    ``input_affine`` (shift, scale), each (K, D): member k sees ``(x - shift_k) / scale_k``.
    """
    device = x.device
    k = len(train_sets)
    gen = torch.Generator().manual_seed(int(seed))
    model = StackedMLP(k, x.shape[1], num_classes, hidden, gen, input_mask, input_affine)
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    offsets = offsets.to(device=device, dtype=x.dtype)
    val_idx, val_mask = (t.to(device) for t in _pad_indices(val_sets))
    steps_len = min(int(s.numel()) for s in train_sets)
    batch = min(batch_size, steps_len)
    steps = max(steps_len // batch, 1)

    sched = None
    if schedule == "onecycle":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _one_cycle(max_epochs * steps))
    elif schedule != "constant":
        raise ValueError(f"schedule must be 'constant' or 'onecycle'; got {schedule!r}")
    best = [torch.inf] * k
    best_epoch = [0] * k
    stale = [0] * k
    best_state = [p.detach().clone() for p in model.parameters()]
    history: list[list[float]] = []
    epoch = 0
    bar = tqdm(range(1, max_epochs + 1), disable=not progress, desc="epochs", leave=False)
    for epoch in bar:
        model.train()
        # Each member's own permutation of its own training set, truncated to a common length.
        perms = torch.stack(
            [s[torch.randperm(s.numel(), generator=gen)[: steps * batch]] for s in train_sets]
        ).to(device)
        for step in range(steps):
            sl = perms[:, step * batch : (step + 1) * batch]
            logits = model(x[sl]) + offsets[:, None, :]
            loss = F.cross_entropy(logits.transpose(1, 2), y[sl], reduction="none").mean(1).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
        model.eval()
        val = member_losses(model, x, y, val_idx, val_mask, offsets).tolist()
        history.append(val)
        improved = [j for j in range(k) if val[j] < best[j] - 1e-5]
        for j in range(k):
            if j in improved:
                best[j], best_epoch[j], stale[j] = val[j], epoch, 0
            else:
                stale[j] += 1
        if improved:
            with torch.no_grad():
                sel = torch.tensor(improved, device=device)
                for saved, p in zip(best_state, model.parameters(), strict=True):
                    saved[sel] = p[sel]
        bar.set_postfix(val=f"{sum(best) / k:.4f}")
        if all(s >= patience for s in stale):
            break
    bar.close()
    with torch.no_grad():
        for saved, p in zip(best_state, model.parameters(), strict=True):
            p.copy_(saved)
    model.eval()
    return FitResult(model, best_epoch, best, epoch, history)


def _one_cycle(total: int, warmup: float = 0.1) -> Callable[[int], float]:
    """The lr factor at step ``s`` of ``total``: one cycle (as ``torch``'s ``OneCycleLR`` with
    ``pct_start=warmup``, cosine annealing, ``div_factor=10``, ``final_div_factor=100``).

    Cosine rise from 1/10 to 1 over the first ``warmup`` of the steps, then cosine decay to
    1/1000 at the last step: large steps early, small ones when the validation loss flattens.
    Unlike ``OneCycleLR`` it accepts a handful of steps (no warm-up when it would be empty).
    """
    peak, last = warmup * total - 1.0, total - 1.0

    def anneal(start: float, end: float, pct: float) -> float:
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)

    def factor(step: int) -> float:
        if peak > 0 and step <= peak:
            return anneal(0.1, 1.0, step / peak)
        lo = max(peak, 0.0)
        return anneal(1.0, 1e-3, min((step - lo) / (last - lo), 1.0)) if last > lo else 1.0

    return factor


def fit_temperature(logits: torch.Tensor, y: torch.Tensor, offset: torch.Tensor) -> float:
    """The T > 0 minimising ``cross_entropy(logits / T + offset, y)`` (1-D, golden section).

    The objective is smooth in ``log T``; searched on [1/4, 4].
    """
    logits, offset = logits.double(), offset.double()

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(logits * math.exp(-log_t) + offset, y))

    lo, hi = math.log(0.25), math.log(4.0)
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(40):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return math.exp((lo + hi) / 2.0)


def member_temperatures(
    model: StackedMLP,
    xs: torch.Tensor,
    y: torch.Tensor,
    val_sets: Sequence[torch.Tensor],
    offsets: torch.Tensor,
) -> torch.Tensor:
    """Each member's post-hoc temperature (:func:`fit_temperature`) on its validation set."""
    temps = torch.ones(len(val_sets), dtype=torch.float64)
    with torch.no_grad():
        for j, va in enumerate(val_sets):
            v = va.to(xs.device)
            logits = model(xs[v].expand(len(val_sets), -1, -1))[j]
            temps[j] = fit_temperature(logits, y[v], offsets[j].to(xs.device))
    return temps


def select_features(
    fit: Callable[..., Any], d: int, k: int, n_train: int
) -> tuple[Any, tuple[int, torch.Tensor | None, dict[int, float]]]:
    """Screen, rank and keep the top features per member; the count is chosen on validation.

    A screening fit (one hidden layer of 100, weight decay 0.3, 10 one-cycle epochs at
    lr 1e-2) ranks each member's inputs by the norm of their first-layer weights (learnt
    from that member's training split only). Then, for each count c in 1, 2, 3, 5, 10,
    20, 50, ... and D, every member trains on its own top c features; the c with the
    lowest mean validation cross-entropy wins. The test samples are never looked at.

    ``fit(mask=None, **overrides)`` returns ``(FitResult, priors)``. Returns the winner's
    ``fit`` result and ``(c, its (K, D) mask or None when c = D, {c: validation loss})``.
    """
    # Batches of up to 1024 but at least ~20 steps an epoch (small data would get 10 steps).
    screen, _ = fit(
        hidden=(100,), weight_decay=0.3, lr=1e-2, schedule="onecycle",
        max_epochs=10, patience=10, batch_size=max(32, min(1024, n_train // 20)),
    )  # fmt: skip
    norms = screen.model.weights[0].detach().norm(dim=2)  # (K, D)
    order = norms.argsort(dim=1, descending=True)
    grid = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
    counts = sorted({c for c in grid if c < d} | {d})
    best, val_losses = None, {}
    for c in counts:
        mask = torch.zeros(k, d, device=norms.device)
        mask.scatter_(1, order[:, :c], 1.0)
        result = fit(mask if c < d else None)
        loss = sum(result[0].best_val_loss) / k
        val_losses[c] = loss
        if best is None or loss < best[0]:
            best = (loss, c, mask if c < d else None, result)
    _, n_selected, feature_mask, result = best
    return result, (n_selected, feature_mask, val_losses)
