"""Distributed training on PyTorch's own engine: ``torchrun`` environment, DDP, reductions.

Under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` in the environment) the process
group is initialised once per process (``nccl`` on GPUs, ``gloo`` on CPUs) and destroyed at
exit. Metrics are reduced as *sums* of counts (loss sum, correct, sample count), never as a
mean of per-process means, so they equal the single-process numbers whatever the shard sizes.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from infocam._validation import check_device

__all__ = [
    "DistContext",
    "all_reduce_sum",
    "gather_rows",
    "is_main_process",
    "rank_and_world",
    "setup_distributed",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` and the device it computes on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that prints and writes files."""
        return self.rank == 0


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group; ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """Rank 0: the process that prints and writes files (and the only one outside ``torchrun``).

    The rank of the initialised process group; before one is initialised, ``RANK`` of the
    ``torchrun`` environment.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return _env_int("RANK", 0) == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer; got {value!r}") from None


def _resolve_device(device: str | torch.device | None, local_rank: int, world: int) -> torch.device:
    if device is None or str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = check_device(device, "device")  # a string torch parses, available on this machine
    if dev.type == "cuda":
        if dev.index is None:
            # One GPU per process under torchrun; plain "cuda" means this process's GPU.
            dev = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
        if dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {str(dev)!r} does not exist: {torch.cuda.device_count()} GPU(s) visible"
            )
        torch.cuda.set_device(dev)
    return dev


def setup_distributed(device: str | torch.device | None = None) -> DistContext:
    """Read the ``torchrun`` environment, initialise the process group if needed, pick the device.

    Without ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``) this is a single process on ``device``
    (``None``/``"auto"``: CUDA when available, else CPU). Under ``torchrun`` each process
    takes GPU ``LOCAL_RANK``; the backend is ``nccl`` for CUDA and ``gloo`` for CPU. A process
    group the caller already initialised is used as it is.
    """
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = _env_int("LOCAL_RANK", rank)
        return DistContext(rank, world, local_rank, _resolve_device(device, local_rank, world))
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = _resolve_device(device, local_rank, world)
    if world > 1:
        if not dist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise ValueError(
                f"WORLD_SIZE={world} but {', '.join(missing)} not set: launch with torchrun "
                "(e.g. torchrun --nproc_per_node 2 ...)"
            )
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world, **kwargs)
        atexit.register(_destroy)
    return DistContext(rank, world, local_rank, dev)


def _destroy() -> None:
    if not (dist.is_available() and dist.is_initialized()):
        return
    # Tear down together: a process that destroys its group while a peer is still in a
    # collective (e.g. rank 0 writing results) makes gloo abort the peer ("terminate called
    # without an active exception"). A crashed peer is killed by torchrun, so the wait is short.
    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=timedelta(seconds=120))
        else:
            dist.barrier()
    except Exception:  # best effort at exit; the group is destroyed either way
        pass
    dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``tensor`` over all processes (in place; returned). A no-op in one process."""
    if ctx.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_process(flag: bool, ctx: DistContext) -> bool:
    """True when ``flag`` is true on any process (all processes get the same answer)."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_rows(tensor: torch.Tensor, ctx: DistContext) -> list[torch.Tensor]:
    """All processes' ``tensor`` (same trailing shape, any number of rows), in rank order."""
    if not ctx.distributed:
        return [tensor]
    n = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = [torch.zeros_like(n) for _ in range(ctx.world_size)]
    dist.all_gather(sizes, n)
    rows = [int(s.item()) for s in sizes]
    padded = tensor.new_zeros((max(rows), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    out = [torch.empty_like(padded) for _ in range(ctx.world_size)]
    dist.all_gather(out, padded.contiguous())
    return [o[:r] for o, r in zip(out, rows, strict=True)]


def gather_objects(obj: object, ctx: DistContext) -> list[object]:
    """All processes' ``obj`` (picklable), in rank order."""
    if not ctx.distributed:
        return [obj]
    out: list[object] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out
