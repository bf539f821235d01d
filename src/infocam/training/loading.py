"""Batches for the loop: in-memory tensors (fast path) or any ``torch.utils.data.Dataset``.

Both paths draw the same order: epoch ``e`` shuffles with a generator seeded ``seed + e``,
pads to a multiple of the number of processes and deals sample ``i`` to process
``i % world_size`` (exactly ``DistributedSampler``). With a global batch ``B`` each process
takes ``B / world_size`` of its share per step, so the union of one step's shards is the
same ``B`` samples a single process would take.

Corrupt images: every Dataset item is read through :class:`SkipCorrupt`, which turns a
:class:`~infocam.errors.CorruptImageError` into a :class:`Skipped` marker, even inside a
DataLoader worker. The loop then either skips and counts it (``skip_corrupt=True``) or
raises the error in the main process naming the file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset
from torch.utils.data._utils.collate import default_collate

from infocam.errors import CorruptImageError

__all__ = [
    "CollatedBatch",
    "SkipCorrupt",
    "Skipped",
    "collate_skipping",
    "epoch_indices",
    "iterate",
    "raise_corrupt",
]


def epoch_indices(
    n: int,
    *,
    epoch: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    shuffle: bool = True,
) -> torch.Tensor:
    """This process's sample indices for ``epoch``: ``DistributedSampler``'s order, as a tensor.

    Shuffled with ``torch.Generator().manual_seed(seed + epoch)``; padded by repeating the
    first indices to a multiple of ``world_size``; process ``rank`` takes every
    ``world_size``-th index starting at ``rank``.
    """
    if shuffle:
        g = torch.Generator()
        g.manual_seed(seed + epoch)
        order = torch.randperm(n, generator=g)
    else:
        order = torch.arange(n)
    total = math.ceil(n / world_size) * world_size
    if total > n:
        reps = math.ceil((total - n) / n)
        order = torch.cat([order, order.repeat(reps)[: total - n]])
    return order[rank:total:world_size]


def shard_indices(n: int, rank: int, world_size: int) -> torch.Tensor:
    """Evaluation shard: every ``world_size``-th sample from ``rank``, no padding, no repeats."""
    return torch.arange(rank, n, world_size)


class TensorData:
    """Inputs and integer targets held in memory; batches are one indexing op, no collate."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, name: str) -> None:
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(
                f"{name} inputs and targets must have the same length; got "
                f"{inputs.shape[0]} inputs and {targets.shape[0]} targets"
            )
        if targets.dim() != 1:
            raise ValueError(
                f"{name} targets must be 1-D class indices; got shape {tuple(targets.shape)}"
            )
        if torch.is_floating_point(targets) or targets.dtype == torch.bool:
            raise TypeError(f"{name} targets must be integer class indices; got {targets.dtype}")
        self.inputs = inputs
        self.targets = targets.long()

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def to(self, device: torch.device) -> TensorData:
        if self.inputs.device == device and self.targets.device == device:
            return self
        pin = device.type == "cuda" and self.inputs.device.type == "cpu"
        x = self.inputs.pin_memory() if pin else self.inputs
        return TensorData(x.to(device), self.targets.to(device), "data")

    def batches(
        self, indices: torch.Tensor, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        idx = indices.to(self.inputs.device)
        for start in range(0, idx.shape[0], batch_size):
            chunk = idx[start : start + batch_size]
            yield self.inputs.index_select(0, chunk), self.targets.index_select(0, chunk)


def as_tensor_data(data: Any, name: str) -> TensorData | None:
    """``TensorData`` for ``(inputs, targets)`` tensors/arrays or a 2-tensor ``TensorDataset``;
    ``None`` for any other Dataset; ``TypeError`` for anything else."""
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        return TensorData(data.tensors[0], data.tensors[1], name)
    if isinstance(data, tuple | list) and len(data) == 2:
        x, y = data
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if isinstance(y, np.ndarray):
            y = torch.from_numpy(y)
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            return TensorData(x, y, name)
    if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        if isinstance(data, tuple | list):
            raise TypeError(
                f"{name} must be a Dataset or an (inputs, targets) pair of tensors; got a "
                f"{type(data).__name__} of length {len(data)}"
            )
        return None
    raise TypeError(
        f"{name} must be a torch Dataset or an (inputs, targets) pair of tensors; "
        f"got {type(data).__name__}"
    )


@dataclass(frozen=True)
class Skipped:
    """An item that could not be read: the file and why."""

    path: str
    reason: str


class SkipCorrupt(Dataset):
    """Wrap ``dataset`` so an item raising ``CorruptImageError`` becomes a :class:`Skipped`.

    Use with :func:`collate_skipping`, which drops the markers from the batch and reports
    them. ``infocam.training.fit`` wraps every Dataset this way; wrap yourself only for a
    loop of your own.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except CorruptImageError as exc:
            return Skipped(str(exc.path), exc.reason or str(exc))


class CollatedBatch(NamedTuple):
    """A collated batch of the readable items (``None`` if none was) and what was skipped."""

    data: Any
    skipped: tuple[Skipped, ...]


class collate_skipping:  # a class rather than a closure, so that it pickles to workers
    """Collate the readable items with ``collate_fn``; return them with the skipped markers."""

    def __init__(self, collate_fn: Callable[[list[Any]], Any] | None = None) -> None:
        self.collate_fn = collate_fn or default_collate

    def __call__(self, items: Sequence[Any]) -> CollatedBatch:
        kept = [it for it in items if not isinstance(it, Skipped)]
        skipped = tuple(it for it in items if isinstance(it, Skipped))
        return CollatedBatch(self.collate_fn(kept) if kept else None, skipped)


class _ListSampler(Sampler[int]):
    def __init__(self, indices: list[int]) -> None:
        self.indices = indices

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def make_loader(
    dataset: Dataset,
    indices: torch.Tensor,
    *,
    batch_size: int,
    workers: int,
    pin_memory: bool,
    seed: int,
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> DataLoader:
    """A DataLoader over ``indices`` of ``SkipCorrupt(dataset)`` in that order.

    Built afresh each epoch with a generator seeded ``seed``: worker seeds (and so random
    augmentation in workers) then depend on the epoch only, not on what ran before.
    """
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(
        dataset if isinstance(dataset, SkipCorrupt) else SkipCorrupt(dataset),
        batch_size=batch_size,
        sampler=_ListSampler(indices.tolist()),
        num_workers=workers,
        pin_memory=pin_memory,
        collate_fn=collate_skipping(collate_fn),
        generator=g,
        drop_last=False,
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
    )


def split_batch(batch: Any) -> tuple[Any, torch.Tensor]:
    """(inputs, targets) from a collated ``(inputs, targets, ...)`` batch."""
    if isinstance(batch, tuple | list) and len(batch) >= 2:
        return batch[0], batch[1]
    raise TypeError(
        "each dataset item must be (input, target, ...); got a batch of type "
        f"{type(batch).__name__}"
    )


def raise_corrupt(skipped: tuple[Skipped, ...]) -> None:
    first = skipped[0]
    raise CorruptImageError(
        first.path,
        f"{first.reason}; set skip_corrupt=True to skip unreadable images",
    )


def iterate(
    data: TensorData | Any,
    indices: torch.Tensor,
    batch_size: int,
    *,
    device: torch.device,
    workers: int,
    seed: int,
    collate_fn: Callable | None,
) -> Iterator[tuple[Any, torch.Tensor, tuple[Skipped, ...]]]:
    """Yield (inputs, targets, skipped) batches of ``data`` in the order of ``indices``."""
    if isinstance(data, TensorData):
        for x, y in data.batches(indices, batch_size):
            yield x, y, ()
        return
    loader = make_loader(
        data,
        indices,
        batch_size=batch_size,
        workers=workers,
        pin_memory=device.type == "cuda",
        seed=seed,
        collate_fn=collate_fn,
    )
    for batch in loader:
        assert isinstance(batch, CollatedBatch)
        if batch.data is None:
            yield None, torch.empty(0, dtype=torch.long), batch.skipped
            continue
        x, y = split_batch(batch.data)
        yield x, y, batch.skipped
