"""The training loop every experiment uses: :func:`fit` (:func:`evaluate` is in
:mod:`~infocam.training.evaluation`; both, and the results, are importable from here too).

One process or many (``torchrun`` + DDP), CPU or GPU (AMP, channels_last, pinned memory),
checkpoints every epoch and on SIGINT/SIGTERM, exact resume, best-model selection on the
validation data, a progress bar and a JSON-lines log.

    config = TrainConfig(epochs=20, batch_size=256, lr=1e-3, seed=0, out="runs/mnist")
    result = fit(model, loss_fn, (x_train, y_train), (x_val, y_val), config)
    test = evaluate(model, (x_test, y_test))     # logits, targets, metrics
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from infocam.errors import CorruptImageError
from infocam.training.checkpoint import load_model_state, save_checkpoint, write_json
from infocam.training.config import TrainConfig
from infocam.training.devices import (
    amp_dtype,
    check_amp,
    default_workers,
    maybe_to_device,
    oom_guard,
    to_device,
    use_channels_last,
)
from infocam.training.distributed import all_reduce_sum, any_process, setup_distributed
from infocam.training.evaluation import evaluate, main_logits, run_eval
from infocam.training.loading import Skipped, as_tensor_data, epoch_indices, iterate, raise_corrupt
from infocam.training.metrics import EpochMetrics, MetricSums
from infocam.training.optim import build_optimizer, build_scheduler
from infocam.training.progress import RunLog, epoch_line, progress_bar, run_results
from infocam.training.results import (
    EvalResult,
    TrainingInterrupted,
    TrainingOutOfMemoryError,
    TrainResult,
)
from infocam.training.run_checkpoint import BEST, LOG, RESULTS, RunCheckpoints
from infocam.training.seeding import derive_seed, seed_everything, set_deterministic

__all__ = [
    "EvalResult",
    "TrainResult",
    "TrainingInterrupted",
    "TrainingOutOfMemoryError",
    "evaluate",
    "fit",
]

_POSTFIX_EVERY = 20  # batches between progress-bar updates (each costs one device sync)
_STOP_CHECK_EVERY = 8  # batches between cross-process checks for a stop signal under DDP
_MAX_SKIPPED_LISTED = 20


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


def _better(value: float, best: float | None, metric: str) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best if metric == "loss" else value > best


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class _Run(RunCheckpoints):
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
        check_amp(config.amp, ctx.device)
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
        self.train = maybe_to_device(train, ctx.device) if train is not None else train_data
        self.val = None
        if val_data is not None:
            self.val = maybe_to_device(val, ctx.device) if val is not None else val_data
        if len(self.train) == 0:
            raise ValueError("train_data is empty")
        self.workers = default_workers(config, ctx.device)

        if config.sync_batchnorm and ctx.distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.channels_last = use_channels_last(config, model, ctx.device)
        model.to(ctx.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self.optimizer = build_optimizer(model, config, optimizer)
        self.scheduler = build_scheduler(self.optimizer, config, scheduler)
        self.amp_dtype = amp_dtype(config.amp)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=config.amp == "fp16")
        if ctx.distributed:
            ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            self.net: nn.Module = DistributedDataParallel(model, device_ids=ids)
        else:
            self.net = model

        self.out = Path(config.out) if config.out is not None else None
        self._claim_folder()
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

    # ----------------------------------------------------------------- one epoch

    def _step(self, x: Any, y: torch.Tensor, sums: MetricSums) -> None:
        x = to_device(x, self.ctx.device, self.channels_last)
        y = y.to(self.ctx.device, non_blocking=True)
        enabled = self.amp_dtype is not None
        with torch.autocast(self.ctx.device.type, dtype=self.amp_dtype, enabled=enabled):
            outputs = self.net(x)
            loss = self.loss_fn(outputs, y)
        logits = main_logits(outputs)
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
            raise_corrupt(bad)
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
            batches = iterate(
                self.train,
                indices[start * self.per_process :],
                self.per_process,
                device=ctx.device,
                workers=self.workers,
                seed=derive_seed(cfg.seed, self.epoch, 1),
                collate_fn=self.collate_fn,
            )
            with oom_guard(self.per_process, cfg.batch_size, ctx.device, "training"):
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
            f"training interrupted by {name} at {where}; checkpoint {path}; continue with "
            "resume=True"
            if path
            else f"training interrupted by {name} at {where} (no out folder, nothing saved)"
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
                    val_m, _, _, vskip = run_eval(
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
                    tqdm.write(epoch_line(record, cfg.epochs), file=sys.stderr)
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
            extra = {"skipped_corrupt": self.skipped, "skipped_files": self.skipped_paths}
            summary = run_results(result, self.ctx, self.config, **extra)
            write_json(summary, self.out / RESULTS)
        self.log.write("end", best_epoch=self.best_epoch, best_metric=self.best_metric)
        return result

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
