"""Where a run computes: device and precision choices, moving batches, out-of-memory advice."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from infocam.training.config import TrainConfig
from infocam.training.loading import (
    TensorData,
)
from infocam.training.results import TrainingOutOfMemoryError


def amp_dtype(amp: str) -> torch.dtype | None:
    return {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}[amp]


def check_amp(amp: str, device: torch.device) -> None:
    if amp == "fp16" and device.type != "cuda":
        raise ValueError(
            f"amp='fp16' needs a CUDA device (got {device}); use amp='bf16' or amp='off' on CPU"
        )


def has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def use_channels_last(config: TrainConfig, model: nn.Module, device: torch.device) -> bool:
    if config.channels_last is not None:
        return bool(config.channels_last) and device.type == "cuda"
    # Pays off for convolutions on tensor cores (half precision); otherwise leave layouts alone.
    return device.type == "cuda" and config.amp != "off" and has_conv2d(model)


def default_workers(config: TrainConfig, device: torch.device) -> int:
    if config.workers is not None:
        return config.workers
    return 4 if device.type == "cuda" else 0


@contextlib.contextmanager
def oom_guard(per_process: int, global_batch: int, device: torch.device, phase: str):
    try:
        yield
    except torch.OutOfMemoryError as exc:
        if isinstance(exc, TrainingOutOfMemoryError):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        size = "batch_size" if phase == "training" else "the evaluation batch size"
        raise TrainingOutOfMemoryError(
            f"{device} ran out of memory during {phase} at batch size {per_process} per "
            f"process (global {global_batch}); lower {size}, e.g. to {max(1, global_batch // 2)}"
            ", or turn on amp (mixed precision)"
        ) from exc


def to_device(x: Any, device: torch.device, channels_last: bool) -> Any:
    if isinstance(x, torch.Tensor):
        x = x.to(device, non_blocking=True)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
    if isinstance(x, tuple | list):
        return type(x)(to_device(v, device, channels_last) for v in x)
    return x


def maybe_to_device(data: TensorData, device: torch.device) -> TensorData:
    """Move in-memory data to the GPU once when it fits comfortably (a quarter of free memory)."""
    if device.type != "cuda":
        return data.to(device)
    free, _ = torch.cuda.mem_get_info(device)
    size = data.inputs.element_size() * data.inputs.nelement()
    return data.to(device) if size < free / 4 else data


def model_device(model: nn.Module) -> torch.device | None:
    p = next(model.parameters(), None)
    return None if p is None else p.device
