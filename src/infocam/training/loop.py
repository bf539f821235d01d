"""The training loop every experiment uses: :func:`fit` and :func:`evaluate`.

One process or many (``torchrun`` + DDP), CPU or GPU (AMP, channels_last, pinned memory),
checkpoints every epoch and on SIGINT/SIGTERM, exact resume, best-model selection on the
validation data, a progress bar and a JSON-lines log.

    config = TrainConfig(epochs=20, batch_size=256, lr=1e-3, seed=0, out="runs/mnist")
    result = fit(model, loss_fn, (x_train, y_train), (x_val, y_val), config)
    test = evaluate(model, (x_test, y_test))     # logits, targets, metrics
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from infocam.errors import CheckpointError, CorruptImageError, RunFolderError
from infocam.training.checkpoint import (
    load_checkpoint,
    load_model_state,
    save_checkpoint,
    write_json,
)
from infocam.training.config import TrainConfig, resume_conflicts
from infocam.training.data import (
    CollatedBatch,
    Skipped,
    TensorData,
    as_tensor_data,
    epoch_indices,
    make_loader,
    shard_indices,
    split_batch,
)
from infocam.training.distributed import (
    DistContext,
    all_reduce_sum,
    any_process,
    gather_objects,
    gather_rows,
    setup_distributed,
)
from infocam.training.metrics import EpochMetrics, MetricSums
from infocam.training.progress import RunLog, clean_json, progress_bar
from infocam.training.run_folder import claim_run_folder
from infocam.training.seeding import (
    capture_rng_state,
    derive_seed,
    restore_rng_state,
    seed_everything,
    set_deterministic,
)

__all__ = [
    "EvalResult",
    "TrainResult",
    "TrainingInterrupted",
    "TrainingOutOfMemoryError",
    "evaluate",
    "fit",
]

CHECKPOINT_FORMAT = "infocam.training/1"
LAST, BEST, LOG, RESULTS = "last.pt", "best.pt", "log.jsonl", "results.json"
RUN_FILES = (LAST, BEST, LOG, RESULTS)  # what fit writes in config.out (--overwrite removes them)
_POSTFIX_EVERY = 20  # batches between progress-bar updates (each costs one device sync)
_STOP_CHECK_EVERY = 8  # batches between cross-process checks for a stop signal under DDP
_MAX_SKIPPED_LISTED = 20


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped :func:`fit` after a checkpoint was saved (``checkpoint``)."""

    def __init__(self, message: str, checkpoint: Path | None, signum: int) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint
        self.signum = signum


class TrainingOutOfMemoryError(torch.OutOfMemoryError):
    """The GPU ran out of memory; the message says which batch size to lower."""


@dataclass
class EvalResult:
    """Outputs of :func:`evaluate`: logits (N, M), targets (N,) in dataset order, metrics."""

    logits: torch.Tensor | None
    targets: torch.Tensor | None
    metrics: EpochMetrics


@dataclass
class TrainResult:
    """What :func:`fit` returns. Epochs are numbered from 1; ``history`` has one dict each."""

    model: nn.Module
    history: list[dict[str, Any]]
    metric: str
    best_epoch: int | None
    best_metric: float | None
    out: Path | None = None
    resumed_from: Path | None = None
    skipped: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def last(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}

    @property
    def best(self) -> dict[str, Any]:
        """The record of the epoch chosen on validation data (the last without it)."""
        if self.best_epoch is None:
            return self.last
        return next(r for r in self.history if r["epoch"] == self.best_epoch)

    @property
    def train_metrics(self) -> EpochMetrics | None:
        """Training metrics of the last epoch."""
        return EpochMetrics.from_dict(self.last, "train_") if self.history else None

    @property
    def val_metrics(self) -> EpochMetrics | None:
        """Validation metrics of the best epoch (per-class counts included)."""
        rec = self.best
        return EpochMetrics.from_dict(rec, "val_") if "val_n" in rec else None


# ----------------------------------------------------------------------------- helpers


def _amp_dtype(amp: str) -> torch.dtype | None:
    return {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}[amp]


def _check_amp(amp: str, device: torch.device) -> None:
    if amp == "fp16" and device.type != "cuda":
        raise ValueError(
            f"amp='fp16' needs a CUDA device (got {device}); use amp='bf16' or amp='off' on CPU"
        )


def _has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def _use_channels_last(config: TrainConfig, model: nn.Module, device: torch.device) -> bool:
    if config.channels_last is not None:
        return bool(config.channels_last) and device.type == "cuda"
    # Pays off for convolutions on tensor cores (half precision); otherwise leave layouts alone.
    return device.type == "cuda" and config.amp != "off" and _has_conv2d(model)


def _default_workers(config: TrainConfig, device: torch.device) -> int:
    if config.workers is not None:
        return config.workers
    return 4 if device.type == "cuda" else 0


@contextlib.contextmanager
def _oom_guard(per_process: int, global_batch: int, device: torch.device, phase: str):
    try:
        yield
    except torch.OutOfMemoryError as exc:
        if isinstance(exc, TrainingOutOfMemoryError):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        flag = "--batch-size" if phase == "training" else "--batch-size (evaluation batch)"
        raise TrainingOutOfMemoryError(
            f"{device} ran out of memory during {phase} at batch size {per_process} per "
            f"process (global {global_batch}); lower {flag}, e.g. to {max(1, global_batch // 2)}"
            ", or turn on --amp"
        ) from exc


def _main_logits(outputs: Any) -> torch.Tensor:
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


def _to_device(x: Any, device: torch.device, channels_last: bool) -> Any:
    if isinstance(x, torch.Tensor):
        x = x.to(device, non_blocking=True)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
    if isinstance(x, tuple | list):
        return type(x)(_to_device(v, device, channels_last) for v in x)
    return x


def _maybe_to_device(data: TensorData, device: torch.device) -> TensorData:
    """Move in-memory data to the GPU once when it fits comfortably (a quarter of free memory)."""
    if device.type != "cuda":
        return data.to(device)
    free, _ = torch.cuda.mem_get_info(device)
    size = data.inputs.element_size() * data.inputs.nelement()
    return data.to(device) if size < free / 4 else data


def _raise_corrupt(skipped: tuple[Skipped, ...]) -> None:
    first = skipped[0]
    raise CorruptImageError(
        first.path,
        f"{first.reason}; pass --skip-corrupt (skip_corrupt=True) to skip unreadable images",
    )


def _iterate(
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


# ----------------------------------------------------------------------------- evaluate


@torch.no_grad()
def _run_eval(
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
    dtype = _amp_dtype(amp)
    was_training = model.training
    batches = None
    model.eval()
    try:
        with _oom_guard(batch_size, batch_size * ctx.world_size, ctx.device, "evaluation"):
            batches = _iterate(
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
                        _raise_corrupt(bad)
                    skipped += len(bad)
                if x is None:
                    continue
                x = _to_device(x, ctx.device, channels_last)
                y = y.to(ctx.device, non_blocking=True)
                with torch.autocast(ctx.device.type, dtype=dtype, enabled=dtype is not None):
                    outputs = model(x)
                    loss = loss_fn(outputs, y) if loss_fn is not None else None
                logits = _main_logits(outputs).float()
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
    ctx = setup_distributed(device if device is not None else _model_device(model))
    _check_amp(amp, ctx.device)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
    tensors = as_tensor_data(data, "data")
    model.to(ctx.device)
    metrics, logits, targets, _ = _run_eval(
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


def _model_device(model: nn.Module) -> torch.device | None:
    p = next(model.parameters(), None)
    return None if p is None else p.device


# ----------------------------------------------------------------------------- signals


class _StopFlag:
    """SIGINT/SIGTERM set a flag the loop checks between batches; a second SIGINT aborts."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# ----------------------------------------------------------------------------- fit


def _build_optimizer(
    model: nn.Module, config: TrainConfig, optimizer: Any
) -> torch.optim.Optimizer:
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if optimizer is not None:
        if not callable(optimizer):
            raise TypeError(
                "optimizer must be a torch.optim.Optimizer or a function params -> Optimizer; "
                f"got {type(optimizer).__name__}"
            )
        return optimizer(model.parameters())
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters (all have requires_grad=False)")
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def _build_scheduler(opt: torch.optim.Optimizer, config: TrainConfig, scheduler: Any) -> Any:
    if scheduler is not None:
        if hasattr(scheduler, "step") and hasattr(scheduler, "state_dict"):
            return scheduler
        if callable(scheduler):
            return scheduler(opt)
        raise TypeError(
            f"scheduler must be an LR scheduler or a function optimizer -> scheduler; "
            f"got {type(scheduler).__name__}"
        )
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=config.lr_step, gamma=config.lr_gamma)
    return None


def _better(value: float, best: float | None, metric: str) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best if metric == "loss" else value > best


def _samples(n: int | None) -> str:
    return "none" if n is None else f"{n} samples"


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class _Run:
    """State of one :func:`fit` call (kept in one object so checkpoints see all of it)."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable,
        train_data: Any,
        val_data: Any,
        config: TrainConfig,
        optimizer: Any,
        scheduler: Any,
        scheduler_interval: str,
        collate_fn: Callable | None,
        input_spec: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.input_spec = None if input_spec is None else dict(input_spec)
        self.custom_scheduler = scheduler is not None
        self.ctx = ctx = setup_distributed(config.device)
        self.is_main = ctx.is_main
        _check_amp(config.amp, ctx.device)
        w = ctx.world_size
        if config.batch_size % w:
            raise ValueError(
                f"batch_size ({config.batch_size}) must be divisible by the number of processes "
                f"({w}): it is the global batch, split evenly across processes"
            )
        self.per_process = config.batch_size // w
        self.eval_batch = config.eval_batch_size or self.per_process
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(
                f"scheduler_interval must be 'epoch' or 'step'; got {scheduler_interval!r}"
            )
        self.scheduler_interval = scheduler_interval
        self.collate_fn = collate_fn
        self.loss_fn = loss_fn

        seed_everything(config.seed if ctx.rank == 0 else derive_seed(config.seed, ctx.rank))
        set_deterministic(config.deterministic, cuda=ctx.device.type == "cuda")

        train = as_tensor_data(train_data, "train_data")
        val = None if val_data is None else as_tensor_data(val_data, "val_data")
        self.train = _maybe_to_device(train, ctx.device) if train is not None else train_data
        self.val = None
        if val_data is not None:
            self.val = _maybe_to_device(val, ctx.device) if val is not None else val_data
        if len(self.train) == 0:
            raise ValueError("train_data is empty")
        self.workers = _default_workers(config, ctx.device)

        if config.sync_batchnorm and ctx.distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.channels_last = _use_channels_last(config, model, ctx.device)
        model.to(ctx.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self.optimizer = _build_optimizer(model, config, optimizer)
        self.scheduler = _build_scheduler(self.optimizer, config, scheduler)
        self.amp_dtype = _amp_dtype(config.amp)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=config.amp == "fp16")
        if ctx.distributed:
            ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            self.net: nn.Module = DistributedDataParallel(model, device_ids=ids)
        else:
            self.net = model

        self.out = Path(config.out) if config.out is not None else None
        self._claim = contextlib.ExitStack()
        error: RunFolderError | None = None
        if self.out is not None and self.is_main:
            try:
                self._claim.enter_context(
                    claim_run_folder(
                        self.out,
                        resume=config.resume not in (False, None),
                        overwrite=config.overwrite,
                        remove=RUN_FILES,
                    )
                )
            except RunFolderError as exc:
                error = exc
        if any_process(error is not None, ctx):
            if error is not None:
                raise error
            raise RunFolderError(f"rank 0 could not use the run folder {self.out}")
        try:
            self.log = RunLog(self.out / LOG if (self.out is not None and self.is_main) else None)
        except BaseException:
            self._claim.close()
            raise
        self.metric = config.select_metric
        self.epoch = 0  # next epoch to run (0-based)
        self.batch = 0  # batches of that epoch already done
        self.partial: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.best_metric: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.skipped = 0  # over all processes and finished epochs
        self._epoch_skipped = 0
        self.skipped_paths: list[str] = []
        self.resumed_from: Path | None = None

    # ----------------------------------------------------------------- checkpoints

    def _state(self, rng: list[Any], sums: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "batch": self.batch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            # The data order is a function of (seed, epoch): nothing else to save for it.
            "data_order": {"seed": self.config.seed, "epoch": self.epoch, "batch": self.batch},
            "metric_sums": sums,
            "history": self.history,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "skipped": self.skipped,
            "world_size": self.ctx.world_size,
            "config": self.config.to_dict(),
            "train_size": len(self.train),
            "val_size": None if self.val is None else len(self.val),
            "input": self.input_spec,
        }

    def save(self, sums: MetricSums | None) -> Path | None:
        """Save ``last.pt`` (collective: every process must call it)."""
        rng = gather_objects(capture_rng_state(), self.ctx)
        reduced = sums.reduced_state(self.ctx) if sums is not None else None
        if self.out is None:
            return None
        path = self.out / LAST
        error: OSError | None = None
        if self.is_main:
            try:
                save_checkpoint(self._state(rng, reduced), path)
            except OSError as exc:
                error = exc
        if any_process(error is not None, self.ctx):
            if error is not None:
                self.log.write("checkpoint_failed", path=str(path), error=str(error))
                raise error
            raise OSError(f"rank 0 could not save the checkpoint {path}")
        return path

    def resume(self) -> None:
        cfg = self.config
        if cfg.resume is False or cfg.resume is None:
            return
        path = Path(cfg.resume) if not isinstance(cfg.resume, bool) else self.out / LAST
        if not path.is_file():
            if isinstance(cfg.resume, bool):
                self.log.write("resume", checkpoint=str(path), found=False)
                return  # nothing to resume: a fresh run (so --resume is safe to always pass)
            load_checkpoint(path)  # raises FileNotFoundError naming the path
        ckpt = load_checkpoint(path, map_location="cpu")
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"{path} is not a training checkpoint of infocam (format "
                f"{ckpt.get('format')!r}, expected {CHECKPOINT_FORMAT!r}); to start from its "
                "weights, load them into the model with load_model_state and train without resume"
            )
        saved_epochs = self._check_settings(ckpt, path)
        load_model_state(self.model, ckpt["model"], source=str(path))
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if self.scheduler is not None and ckpt["scheduler"] is not None:
                self.scheduler.load_state_dict(ckpt["scheduler"])
            if ckpt["scaler"]:
                self.scaler.load_state_dict(ckpt["scaler"])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(
                f"{path}: the optimiser/scheduler state does not fit this run ({exc})"
            ) from exc
        if saved_epochs is not None and saved_epochs != cfg.epochs:
            self._replan(saved_epochs, int(ckpt["epoch"]))
        rng = ckpt["rng"]
        if len(rng) == self.ctx.world_size:
            restore_rng_state(rng[self.ctx.rank])
        elif self.ctx.rank == 0:
            restore_rng_state(rng[0])  # another world size: other ranks keep fresh seeds
        self.epoch, self.batch = int(ckpt["epoch"]), int(ckpt["batch"])
        self.partial = ckpt["metric_sums"] if self.ctx.rank == 0 else None
        self.history = list(ckpt["history"])
        self.best_metric, self.best_epoch = ckpt["best_metric"], ckpt["best_epoch"]
        self.skipped = int(ckpt["skipped"])
        best_path = path.parent / BEST
        if self.best_epoch is not None and best_path.is_file():
            self.best_state = load_checkpoint(best_path)["model"]
        self.resumed_from = path
        self.log.write(
            "resume",
            checkpoint=str(path),
            found=True,
            epoch=self.epoch + 1,
            batch=self.batch,
            world_size=self.ctx.world_size,
            saved_world_size=ckpt.get("world_size"),
        )

    def _check_settings(self, ckpt: dict[str, Any], path: Path) -> int | None:
        """Refuse to continue ``ckpt`` with other settings; return its epochs (None: unknown).

        A changed ``epochs`` is accepted with ``change_epochs`` when it does not undo epochs
        already trained and the schedule is infocam's own (see :meth:`_replan`).
        """
        cfg = self.config
        saved = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
        conflicts = resume_conflicts(saved, cfg)
        for key, label, now in (
            ("train_size", "training set", len(self.train)),
            ("val_size", "validation set", None if self.val is None else len(self.val)),
        ):
            if key in ckpt and ckpt[key] != now:
                conflicts.append(f"{label} {_samples(ckpt[key])} -> {_samples(now)}")
        old = saved.get("epochs")
        if isinstance(old, int) and old != cfg.epochs:
            started = int(ckpt["epoch"]) + (1 if int(ckpt["batch"]) > 0 else 0)
            change = f"--epochs {old} -> {cfg.epochs}"
            if cfg.epochs < started:
                conflicts.append(f"{change} (it has already trained {started} epoch(s))")
            elif not cfg.change_epochs:
                conflicts.append(f"{change} (pass --change-epochs to accept it)")
            elif self.custom_scheduler:
                conflicts.append(f"{change} (a scheduler passed to fit cannot be re-planned)")
        if conflicts:
            raise CheckpointError(
                f"cannot resume {path} with other settings: {'; '.join(conflicts)}. Use the "
                "run's settings, or start a new run (--overwrite, or another --out)"
            )
        return old if isinstance(old, int) else None

    def _replan(self, saved_epochs: int, epoch: int) -> None:
        """Continue with ``config.epochs`` instead of ``saved_epochs`` (``change_epochs``).

        The constant and step schedules do not depend on the number of epochs: the run goes on
        exactly as one started with the new number would. The cosine schedule does: it is
        re-planned to end at the new number, i.e. from this epoch on the learning rate follows
        the cosine of the new length (a jump from the old curve, logged and printed).
        """
        cfg = self.config
        note = f"--epochs {saved_epochs} -> {cfg.epochs}"
        if cfg.schedule == "cosine" and isinstance(
            self.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR
        ):
            sched = self.scheduler
            before = [g["lr"] for g in self.optimizer.param_groups]
            sched.T_max = cfg.epochs
            cos = (1 + math.cos(math.pi * sched.last_epoch / cfg.epochs)) / 2
            after = [sched.eta_min + (base - sched.eta_min) * cos for base in sched.base_lrs]
            for group, lr in zip(self.optimizer.param_groups, after, strict=True):
                group["lr"] = lr
            sched._last_lr = list(after)
            note += (
                f": the cosine schedule is re-planned over {cfg.epochs} epochs, so the learning "
                f"rate of epoch {epoch + 1} goes from {before[0]:.4g} to {after[0]:.4g}"
            )
        self.log.write("resume_changed", epochs=[saved_epochs, cfg.epochs], note=note)
        if self.is_main and not cfg.quiet:
            tqdm.write(f"resuming with {note}", file=sys.stderr)

    # ----------------------------------------------------------------- one epoch

    def _step(self, x: Any, y: torch.Tensor, sums: MetricSums) -> None:
        x = _to_device(x, self.ctx.device, self.channels_last)
        y = y.to(self.ctx.device, non_blocking=True)
        enabled = self.amp_dtype is not None
        with torch.autocast(self.ctx.device.type, dtype=self.amp_dtype, enabled=enabled):
            outputs = self.net(x)
            loss = self.loss_fn(outputs, y)
        logits = _main_logits(outputs)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()
        sums.update(loss, logits.float(), y)

    def _note_skipped(self, bad: tuple[Skipped, ...]) -> None:
        if not self.config.skip_corrupt:
            _raise_corrupt(bad)
        self._epoch_skipped += len(bad)
        for item in bad:
            if len(self.skipped_paths) < _MAX_SKIPPED_LISTED:
                self.skipped_paths.append(item.path)
            self.log.write("skipped", path=item.path, reason=item.reason)

    def train_epoch(self, stop: _StopFlag) -> tuple[EpochMetrics, float, float]:
        ctx, cfg = self.ctx, self.config
        indices = epoch_indices(
            len(self.train),
            epoch=self.epoch,
            seed=cfg.seed,
            rank=ctx.rank,
            world_size=ctx.world_size,
        )
        n_batches = math.ceil(indices.shape[0] / self.per_process)
        sums = MetricSums(ctx.device)
        if self.partial is not None:
            sums.load(self.partial)
            self.partial = None
        start = self.batch
        self._epoch_skipped = 0
        bar = progress_bar(
            n_batches,
            f"epoch {self.epoch + 1}/{cfg.epochs}",
            enabled=self.is_main and not cfg.quiet,
            initial=start,
        )
        self.net.train()
        t0 = time.perf_counter()
        seen = 0
        batches = None
        try:
            batches = _iterate(
                self.train,
                indices[start * self.per_process :],
                self.per_process,
                device=ctx.device,
                workers=self.workers,
                seed=derive_seed(cfg.seed, self.epoch, 1),
                collate_fn=self.collate_fn,
            )
            with _oom_guard(self.per_process, cfg.batch_size, ctx.device, "training"):
                for x, y, bad in batches:
                    if bad:
                        self._note_skipped(bad)
                    if x is None:
                        if ctx.distributed:
                            raise CorruptImageError(
                                bad[0].path,
                                "every item of a batch was unreadable; under torchrun a "
                                "process cannot skip a whole step. Remove the files",
                            )
                    else:
                        self._step(x, y, sums)
                        seen += y.shape[0]
                    self.batch += 1
                    bar.update(1)
                    if self.is_main and not cfg.quiet and self.batch % _POSTFIX_EVERY == 0:
                        loss, acc = sums.running()
                        rate = seen * ctx.world_size / max(time.perf_counter() - t0, 1e-9)
                        bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.4f}", rate=f"{rate:.0f}/s")
                    check = not ctx.distributed or self.batch % _STOP_CHECK_EVERY == 0
                    if check and any_process(stop.signum is not None, ctx):
                        self._interrupt(stop, sums)
        finally:
            bar.close()
            if batches is not None:
                batches.close()  # shut DataLoader workers down now, not at garbage collection
        seconds = time.perf_counter() - t0
        counts = torch.tensor([float(self._epoch_skipped), float(seen)], device=ctx.device)
        skipped, seen_all = all_reduce_sum(counts, ctx).tolist()
        self.skipped += round(skipped)
        # Throughput over the batches run now (after a mid-epoch resume, part of the epoch).
        rate = seen_all / seconds if seconds > 0 else math.nan
        return sums.reduce(ctx), seconds, rate

    def _interrupt(
        self, stop: _StopFlag, sums: MetricSums | None, saved: Path | None = None
    ) -> None:
        signum = stop.signum if stop.signum is not None else signal.SIGTERM
        name = signal.Signals(signum).name
        path = saved if sums is None else self.save(sums)
        self.log.write(
            "interrupted",
            signal=name,
            epoch=self.epoch + 1,
            batch=self.batch,
            checkpoint=None if path is None else str(path),
        )
        where = f"epoch {self.epoch + 1}, batch {self.batch}"
        msg = (
            f"training interrupted by {name} at {where}; checkpoint {path}; continue with --resume"
            if path
            else f"training interrupted by {name} at {where} (no --out, nothing saved)"
        )
        raise TrainingInterrupted(msg, path, signum)

    # ----------------------------------------------------------------- the run

    def run(self) -> TrainResult:
        cfg, ctx = self.config, self.ctx
        self.resume()
        if self.resumed_from is None:
            self.log.write(
                "start",
                config=cfg.to_dict(),
                world_size=ctx.world_size,
                device=str(ctx.device),
                train_size=len(self.train),
                val_size=None if self.val is None else len(self.val),
                torch=torch.__version__,
            )
        t_start = time.perf_counter()
        with _StopFlag() as stop:
            while self.epoch < cfg.epochs:
                lr = self.optimizer.param_groups[0]["lr"]
                train_m, seconds, rate = self.train_epoch(stop)
                if not math.isfinite(train_m.loss):
                    raise ValueError(
                        f"training diverged: the mean training loss of epoch {self.epoch + 1} is "
                        f"{train_m.loss}; lower the learning rate (lr={lr:g})"
                    )
                record: dict[str, Any] = {"epoch": self.epoch + 1, "lr": lr}
                record.update(train_m.to_dict("train_", per_class=True))
                if self.val is not None:
                    val_m, _, _, vskip = _run_eval(
                        self.model,
                        self.val,
                        ctx,
                        loss_fn=self.loss_fn,
                        batch_size=self.eval_batch,
                        amp=cfg.amp,
                        channels_last=self.channels_last,
                        workers=self.workers,
                        skip_corrupt=cfg.skip_corrupt,
                        keep_outputs=False,
                        collate_fn=self.collate_fn,
                    )
                    record.update(val_m.to_dict("val_", per_class=True))
                    value = val_m.get(self.metric)
                    improved = _better(value, self.best_metric, self.metric)
                    if improved:
                        self.best_metric, self.best_epoch = value, self.epoch + 1
                        self.best_state = _cpu_state(self.model)
                        if self.is_main and self.out is not None:
                            save_checkpoint(
                                {
                                    "format": "infocam.weights/1",
                                    "model": self.best_state,
                                    "epoch": self.best_epoch,
                                    self.metric: value,
                                    "input": self.input_spec,
                                },
                                self.out / BEST,
                            )
                    record["best"] = improved
                    record["val_skipped"] = vskip
                record["seconds"] = round(seconds, 3)
                record["samples_per_s"] = rate
                record["skipped"] = self.skipped
                if self.scheduler is not None and self.scheduler_interval == "epoch":
                    self.scheduler.step()
                self.history.append(record)
                self.log.write("epoch", **record)
                if self.is_main and not cfg.quiet:
                    self._print_epoch(record)
                self.epoch += 1
                self.batch = 0
                path = self.save(None)
                # A signal that came during validation: the epoch's checkpoint is the stop point.
                if self.epoch < cfg.epochs and any_process(stop.signum is not None, ctx):
                    self._interrupt(stop, None, saved=path)
        if cfg.restore_best and self.best_state is not None and self.best_epoch != cfg.epochs:
            load_model_state(self.model, self.best_state, source="best epoch weights")
        result = TrainResult(
            model=self.model,
            history=self.history,
            metric=self.metric,
            best_epoch=self.best_epoch,
            best_metric=self.best_metric,
            out=self.out,
            resumed_from=self.resumed_from,
            skipped=self.skipped,
            seconds=time.perf_counter() - t_start,
        )
        if self.is_main and self.out is not None:
            write_json(self._results(result), self.out / RESULTS)
        self.log.write("end", best_epoch=self.best_epoch, best_metric=self.best_metric)
        return result

    def _print_epoch(self, r: dict[str, Any]) -> None:
        parts = [
            f"epoch {r['epoch']}/{self.config.epochs}",
            f"train loss {r['train_loss']:.4f} acc {r['train_accuracy']:.4f}",
        ]
        if "val_loss" in r:
            parts.append(
                f"val loss {r['val_loss']:.4f} acc {r['val_accuracy']:.4f}"
                + (" *" if r.get("best") else "")
            )
        if r.get("samples_per_s"):
            parts.append(f"{r['samples_per_s']:.0f} samples/s")
        tqdm.write(" | ".join(parts), file=sys.stderr)

    def _results(self, result: TrainResult) -> dict[str, Any]:
        return clean_json(
            {
                "metric": self.metric,
                "best_epoch": result.best_epoch,
                "best_metric": result.best_metric,
                "epochs": len(self.history),
                "best": result.best,
                "final": result.last,
                "skipped_corrupt": self.skipped,
                "skipped_files": self.skipped_paths,
                "world_size": self.ctx.world_size,
                "device": str(self.ctx.device),
                "seconds": round(result.seconds, 3),
                "config": self.config.to_dict(),
                "history": self.history,
            }
        )

    def close(self) -> None:
        try:
            self.log.close()
        finally:
            self._claim.close()


def fit(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    train_data: Any,
    val_data: Any = None,
    config: TrainConfig | None = None,
    *,
    optimizer: torch.optim.Optimizer | Callable | None = None,
    scheduler: Any = None,
    scheduler_interval: str = "epoch",
    collate_fn: Callable | None = None,
    input_spec: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` to minimise ``loss_fn(model(x), y)`` (a batch mean); return the history.

    ``train_data``/``val_data``: ``(inputs, targets)`` tensors (in memory; batched by
    indexing, moved to the GPU once when they fit) or Datasets of ``(input, target, ...)``.
    The model must return logits ``(batch, classes)``; accuracy is ``argmax == target``.

    Each epoch: a pass over the training data in an order fixed by ``(seed, epoch)``, then
    validation; the epoch with the best ``config.select_metric`` on ``val_data`` is kept
    (``best.pt``) and its weights are restored at the end (``restore_best``). With
    ``config.out`` a checkpoint ``last.pt`` is written atomically after every epoch and when
    SIGINT/SIGTERM arrives (then :class:`TrainingInterrupted` is raised); ``resume``
    continues from it and reaches the same weights as an uninterrupted run.

    ``optimizer``: an Optimizer over ``model``'s parameters or ``params -> Optimizer``
    (default from ``config.optimizer``/``lr``/``weight_decay``). ``scheduler``: an LR
    scheduler or ``optimizer -> scheduler``, stepped each epoch (``scheduler_interval=
    "step"``: each batch); default from ``config.schedule``.

    ``config.out`` is locked for the run (``out/.lock``: a second run into it is refused) and
    must be empty unless ``config.resume`` (continue it: the settings must be the saved ones,
    see :func:`~infocam.training.config.resume_conflicts`; a new ``epochs`` needs
    ``config.change_epochs``) or ``config.overwrite`` (its last.pt, best.pt, log.jsonl and
    results.json are deleted first).

    ``input_spec``: how the model's inputs were made (e.g. ``{"channels": 1, "mean": [0.0],
    "std": [1.0]}``), stored under ``"input"`` in ``best.pt`` and ``last.pt`` so that a
    later user of the weights (``infocam localize``) can feed it alike.

    Under ``torchrun`` the model is wrapped in DistributedDataParallel, each process sees its
    share of every global batch, metrics are summed over processes and only rank 0 prints
    and writes files. Other process groups initialised by the caller are used as they are.
    """
    config = config if config is not None else TrainConfig()
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig; got {type(config).__name__}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable (logits, target) -> loss; got {loss_fn!r}")
    run = _Run(
        model,
        loss_fn,
        train_data,
        val_data,
        config,
        optimizer,
        scheduler,
        scheduler_interval,
        collate_fn,
        input_spec,
    )
    try:
        return run.run()
    finally:
        run.close()
