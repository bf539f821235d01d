"""Evaluation without gradients: :func:`evaluate` and the per-epoch validation of the loop."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from infocam.training.devices import amp_dtype, check_amp, model_device, oom_guard, to_device
from infocam.training.distributed import (
    DistContext,
    all_reduce_sum,
    gather_rows,
    setup_distributed,
)
from infocam.training.loading import (
    TensorData,
    as_tensor_data,
    iterate,
    raise_corrupt,
    shard_indices,
)
from infocam.training.metrics import EpochMetrics, MetricSums
from infocam.training.results import EvalResult

__all__ = ["evaluate", "main_logits", "run_eval"]


def main_logits(outputs: Any) -> torch.Tensor:
    """The logits of a model output: the tensor itself, or ``outputs.logits`` for outputs such
    as torchvision's ``InceptionOutputs(logits, aux_logits)`` in train mode (the loss sees the
    whole output; metrics use the main logits)."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    logits = getattr(outputs, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    raise TypeError(
        "the model must return logits (a tensor) or an output with a .logits tensor; "
        f"got {type(outputs).__name__}"
    )


@torch.no_grad()
def run_eval(
    model: nn.Module,
    data: TensorData | Any,
    ctx: DistContext,
    *,
    loss_fn: Callable | None,
    batch_size: int,
    amp: str,
    channels_last: bool,
    workers: int,
    skip_corrupt: bool,
    keep_outputs: bool,
    collate_fn: Callable | None = None,
) -> tuple[EpochMetrics, torch.Tensor | None, torch.Tensor | None, int]:
    """Metrics (reduced over processes) and, if asked, all logits/targets in dataset order."""
    n = len(data)
    indices = shard_indices(n, ctx.rank, ctx.world_size)
    sums = MetricSums(ctx.device)
    logits_parts: list[torch.Tensor] = []
    target_parts: list[torch.Tensor] = []
    skipped = 0
    dtype = amp_dtype(amp)
    was_training = model.training
    batches = None
    model.eval()
    try:
        with oom_guard(batch_size, batch_size * ctx.world_size, ctx.device, "evaluation"):
            batches = iterate(
                data,
                indices,
                batch_size,
                device=ctx.device,
                workers=workers,
                seed=0,
                collate_fn=collate_fn,
            )
            for x, y, bad in batches:
                if bad:
                    if not skip_corrupt:
                        raise_corrupt(bad)
                    skipped += len(bad)
                if x is None:
                    continue
                x = to_device(x, ctx.device, channels_last)
                y = y.to(ctx.device, non_blocking=True)
                with torch.autocast(ctx.device.type, dtype=dtype, enabled=dtype is not None):
                    outputs = model(x)
                    loss = loss_fn(outputs, y) if loss_fn is not None else None
                logits = main_logits(outputs).float()
                if loss is None:
                    loss = torch.full((), math.nan, device=ctx.device)
                sums.update(loss, logits, y)
                if keep_outputs:
                    logits_parts.append(logits)
                    target_parts.append(y)
    finally:
        model.train(was_training)
        if batches is not None:
            batches.close()
    metrics = sums.reduce(ctx)
    if ctx.distributed:
        skipped = int(all_reduce_sum(torch.tensor([skipped], device=ctx.device), ctx).item())
    if not keep_outputs:
        return metrics, None, None, skipped
    m = max(sums.num_classes, 1)
    logits_all = torch.cat(logits_parts) if logits_parts else torch.empty(0, m, device=ctx.device)
    targets_all = (
        torch.cat(target_parts)
        if target_parts
        else torch.empty(0, dtype=torch.long, device=ctx.device)
    )
    if ctx.distributed:
        parts_l = gather_rows(logits_all, ctx)
        parts_t = gather_rows(targets_all, ctx)
        if skipped == 0:  # shards are rank::world; interleave back to dataset order
            logits_all = logits_all.new_empty((n, logits_all.shape[1]))
            targets_all = targets_all.new_empty(n)
            for r, (pl, pt) in enumerate(zip(parts_l, parts_t, strict=True)):
                logits_all[r :: ctx.world_size] = pl
                targets_all[r :: ctx.world_size] = pt
        else:
            logits_all, targets_all = torch.cat(parts_l), torch.cat(parts_t)
    return metrics, logits_all, targets_all, skipped


def evaluate(
    model: nn.Module,
    data: Any,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    amp: str = "off",
    workers: int | None = None,
    skip_corrupt: bool = False,
    return_outputs: bool = True,
    collate_fn: Callable | None = None,
) -> EvalResult:
    """Run ``model`` over ``data`` without gradients; return logits, targets and metrics.

    ``data`` is an ``(inputs, targets)`` pair of tensors (batched by indexing) or a Dataset of
    ``(input, target, ...)`` items. ``loss_fn`` (mean over the batch) adds the mean loss to
    the metrics. Under ``torchrun`` each process evaluates every ``world_size``-th sample and
    every process gets all logits back in dataset order (unless corrupt items were skipped:
    then in rank order). The model's train/eval mode is restored afterwards.
    Logits are float32 on the evaluation device.
    """
    ctx = setup_distributed(device if device is not None else model_device(model))
    check_amp(amp, ctx.device)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
    tensors = as_tensor_data(data, "data")
    model.to(ctx.device)
    metrics, logits, targets, _ = run_eval(
        model,
        tensors if tensors is not None else data,
        ctx,
        loss_fn=loss_fn,
        batch_size=batch_size,
        amp=amp,
        channels_last=False,
        workers=(4 if ctx.device.type == "cuda" else 0) if workers is None else workers,
        skip_corrupt=skip_corrupt,
        keep_outputs=return_outputs,
        collate_fn=collate_fn,
    )
    return EvalResult(logits, targets, metrics)
