"""The counting evaluator every localisation metric builds on: integer counters per batch.

A :class:`CountingEvaluator` keeps its integer counters (int64 tensors on the CPU, named in
``_COUNTERS``) and the settings they depend on (``_settings()``). It owns how counters are
combined: :meth:`~CountingEvaluator.merge` adds another evaluator's and
:meth:`~CountingEvaluator.all_reduce` sums them over the processes of a ``torch.distributed``
run; :func:`sum_over_processes` sums many evaluators' counters in one collective. Nothing
else in infocam calls ``torch.distributed`` for an evaluator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["CountingEvaluator", "sum_over_processes"]


class CountingEvaluator:
    """Base of the evaluators: integer counters that add up over batches, sets and processes.

    A subclass names its counter attributes in ``_COUNTERS`` and returns the settings the
    counts depend on from ``_settings()`` (compared before counts are added).
    """

    _COUNTERS: tuple[str, ...] = ("counts",)

    def _settings(self) -> dict[str, Any]:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def counters(self) -> list[torch.Tensor]:
        """The counter tensors, in the order of ``_COUNTERS``."""
        return [getattr(self, name) for name in self._COUNTERS]

    def merge(self, other: CountingEvaluator) -> CountingEvaluator:
        """Add ``other``'s counts (in place); its settings must be these."""
        _check_mergeable(self, other)
        for mine, theirs in zip(self.counters(), other.counters(), strict=True):
            mine += theirs
        return self

    def all_reduce(self, group: Any = None) -> CountingEvaluator:
        """Sum the counters over all processes of a ``torch.distributed`` run (in place).

        Every process must use the same settings (checked first: all processes raise, or
        none). A no-op outside distributed runs.
        """
        _check_same_settings_everywhere(self, group)
        sum_over_processes([self], group)
        return self


def sum_over_processes(evaluators: Sequence[CountingEvaluator], group: Any = None) -> None:
    """Sum every evaluator's counters over the processes of ``group``, in one collective.

    In place; a no-op outside distributed runs (or in a one-process group). The settings are
    not compared here (:meth:`CountingEvaluator.all_reduce` does): the caller built the
    evaluators alike on every process. Under ``nccl`` the sum runs on this process's GPU.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group) == 1:
        return
    parts = [t for ev in evaluators for t in ev.counters()]
    if not parts:
        return
    nccl = dist.get_backend(group) == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    flat = torch.cat([t.reshape(-1) for t in parts]).to(device)
    dist.all_reduce(flat, group=group)
    flat = flat.cpu()
    start = 0
    for ev in evaluators:
        for name, t in zip(ev._COUNTERS, ev.counters(), strict=True):
            summed = flat[start : start + t.numel()].reshape(t.shape).to(t.dtype)
            setattr(ev, name, summed)
            start += t.numel()


def _check_mergeable(ev: Any, other: Any) -> None:
    """``merge`` adds counts only of evaluators whose settings give comparable counts."""
    if not isinstance(other, type(ev)):
        raise TypeError(f"other must be a {type(ev).__name__}; got {type(other).__name__}")
    mine, theirs = ev._settings(), other._settings()
    diff = [f"{k} {mine[k]!r} vs {theirs[k]!r} in other" for k in mine if mine[k] != theirs[k]]
    if diff:
        raise ValueError(
            f"cannot merge {type(ev).__name__}s with different settings: {'; '.join(diff)}"
        )


def _check_same_settings_everywhere(ev: Any, group: Any = None) -> None:
    """Before summing counters over processes, check every process has the same settings.

    One ``all_gather_object`` of the settings; every process compares all of them with rank
    0's, so either all raise (the message names the setting and the ranks) or none does.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group) == 1:
        return
    gathered: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, ev._settings(), group=group)
    first = gathered[0]
    for rank, theirs in enumerate(gathered[1:], 1):
        diff = [f"{k} {first[k]!r} on rank 0 vs {theirs[k]!r} on rank {rank}"
                for k in first if first[k] != theirs[k]]  # fmt: skip
        if diff:
            raise ValueError(
                f"all_reduce needs the same {type(ev).__name__} settings on every process: "
                + "; ".join(diff)
            )
