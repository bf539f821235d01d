"""What a :func:`~infocam.training.fit` run saves in ``last.pt`` and how it resumes from it.

The checkpoint holds everything the next batch depends on: model, optimiser, scheduler and
scaler state, every process's RNG state, the position in the data order (a function of seed
and epoch), the partial metric sums of the epoch, the history and the best epoch so far.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infocam.errors import CheckpointError
from infocam.training.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from infocam.training.distributed import (
    any_process,
    gather_objects,
)
from infocam.training.metrics import MetricSums
from infocam.training.seeding import capture_rng_state, restore_rng_state

__all__ = ["BEST", "CHECKPOINT_FORMAT", "LAST", "RunCheckpoints"]

CHECKPOINT_FORMAT = "infocam.training/1"
LAST, BEST = "last.pt", "best.pt"


class RunCheckpoints:
    """The checkpoint half of a fit run (a mixin of the loop's run state): ``save`` and
    ``resume``. The run provides ``config``, ``ctx``, ``out``, ``log``, ``model``,
    ``optimizer``, ``scheduler``, ``scaler`` and the counters it saves."""

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
