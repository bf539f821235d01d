"""What a :func:`~infocam.training.fit` run saves in ``last.pt`` and how it resumes from it.

The checkpoint holds everything the next batch depends on: model, optimiser, scheduler and
scaler state, every process's RNG state, the position in the data order (a function of seed
and epoch), the partial metric sums of the epoch, the history and the best epoch so far.
"""

from __future__ import annotations

import contextlib
import math
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from infocam.errors import CheckpointError, RunFolderError
from infocam.training.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from infocam.training.config import resume_conflicts
from infocam.training.distributed import (
    any_process,
    gather_objects,
)
from infocam.training.metrics import MetricSums
from infocam.training.run_folder import claim_run_folder
from infocam.training.seeding import capture_rng_state, restore_rng_state

__all__ = ["BEST", "CHECKPOINT_FORMAT", "LAST", "LOG", "RESULTS", "RUN_FILES", "RunCheckpoints"]

CHECKPOINT_FORMAT = "infocam.training/1"
LAST, BEST, LOG, RESULTS = "last.pt", "best.pt", "log.jsonl", "results.json"
RUN_FILES = (LAST, BEST, LOG, RESULTS)  # what fit writes in config.out (--overwrite removes them)


class RunCheckpoints:
    """The checkpoint half of a fit run (a mixin of the loop's run state): ``save`` and
    ``resume`` (which refuses other settings, or re-plans a changed ``epochs``). The run
    provides ``config``, ``ctx``, ``out``, ``log``, ``model``,
    ``optimizer``, ``scheduler``, ``scaler`` and the counters it saves."""

    def _claim_folder(self) -> None:
        """Lock ``out`` for the run (rank 0; held in ``_claim`` until ``close``) and refuse it
        when it holds a run, unless ``resume`` or ``overwrite`` (which removes ``RUN_FILES``);
        when rank 0 cannot, every process raises."""
        self._claim = contextlib.ExitStack()
        error: RunFolderError | None = None
        if self.out is not None and self.is_main:
            try:
                self._claim.enter_context(
                    claim_run_folder(
                        self.out,
                        resume=self.config.resume not in (False, None),
                        overwrite=self.config.overwrite,
                        remove=RUN_FILES,
                    )
                )
            except RunFolderError as exc:
                error = exc
        if any_process(error is not None, self.ctx):
            if error is not None:
                raise error
            raise RunFolderError(f"rank 0 could not use the run folder {self.out}")

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
            change = f"epochs {old} -> {cfg.epochs}"
            if cfg.epochs < started:
                conflicts.append(f"{change} (it has already trained {started} epoch(s))")
            elif not cfg.change_epochs:
                conflicts.append(f"{change} (allow it with change_epochs)")
            elif self.custom_scheduler:
                conflicts.append(f"{change} (a scheduler passed to fit cannot be re-planned)")
        if conflicts:
            raise CheckpointError(
                f"cannot resume {path} with other settings: {'; '.join(conflicts)}. Use the "
                "run's settings, or start a new run (overwrite, or another folder)"
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
        note = f"epochs {saved_epochs} -> {cfg.epochs}"
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


def _samples(n: int | None) -> str:
    return "none" if n is None else f"{n} samples"
