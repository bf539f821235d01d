"""``TrainConfig``: every knob of a run (the command-line flags that fill it are in
:mod:`infocam.cli._args`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["AMP_MODES", "METRICS", "OPTIMIZERS", "SCHEDULES", "TrainConfig", "resume_conflicts"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")
AMP_MODES = ("off", "fp16", "bf16")
METRICS = ("accuracy", "balanced_accuracy", "loss")


@dataclass
class TrainConfig:
    """Settings of one training run.

    ``batch_size`` is the *global* batch: under ``torchrun`` with ``W`` processes each takes
    ``batch_size / W`` per step, so a run's numbers do not depend on how many processes run
    it. ``out`` is the run folder (``last.pt``, ``best.pt``, ``log.jsonl``, ``results.json``);
    ``None`` writes nothing. ``resume=True`` continues from ``out/last.pt`` if it exists (a
    path: from that checkpoint); the settings that shape the run (:func:`resume_conflicts`)
    must then be those it was started with, except ``epochs`` with ``change_epochs=True``.
    ``overwrite=True`` replaces an earlier run in ``out`` (without it and without ``resume``,
    a non-empty ``out`` is refused). ``select_metric`` is measured on the *validation* data and
    picks the best epoch, whose weights are put back in the model at the end
    (``restore_best``).
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    momentum: float = 0.9
    schedule: Literal["constant", "cosine", "step"] = "constant"
    lr_step: int = 30
    lr_gamma: float = 0.1
    grad_clip: float | None = None
    seed: int = 0
    deterministic: bool = False
    resume: bool | str | Path = False
    overwrite: bool = False
    change_epochs: bool = False
    quiet: bool = False
    device: str | None = None
    amp: Literal["off", "fp16", "bf16"] = "off"
    channels_last: bool | None = None
    sync_batchnorm: bool = False
    workers: int | None = None
    eval_batch_size: int | None = None
    out: str | Path | None = None
    skip_corrupt: bool = False
    select_metric: Literal["accuracy", "balanced_accuracy", "loss"] = "accuracy"
    restore_best: bool = True

    def __post_init__(self) -> None:
        def positive_int(name: str, minimum: int = 1) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}; got {v!r}")

        def choice(name: str, options: tuple[str, ...]) -> None:
            v = getattr(self, name)
            if v not in options:
                raise ValueError(f"{name} must be one of {', '.join(options)}; got {v!r}")

        def number(name: str, *, lo: float, strict: bool) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number; got {v!r}")
            if v < lo or (strict and v == lo):
                raise ValueError(f"{name} must be {'>' if strict else '>='} {lo:g}; got {v!r}")

        positive_int("epochs")
        positive_int("batch_size")
        positive_int("lr_step")
        positive_int("seed", 0)
        if self.eval_batch_size is not None:
            positive_int("eval_batch_size")
        if self.workers is not None:
            positive_int("workers", 0)
        number("lr", lo=0.0, strict=True)
        number("weight_decay", lo=0.0, strict=False)
        number("momentum", lo=0.0, strict=False)
        number("lr_gamma", lo=0.0, strict=True)
        if self.grad_clip is not None:
            number("grad_clip", lo=0.0, strict=True)
        choice("optimizer", OPTIMIZERS)
        choice("schedule", SCHEDULES)
        choice("amp", AMP_MODES)
        choice("select_metric", METRICS)
        if self.out is not None:
            self.out = Path(self.out)
        if isinstance(self.resume, str | Path) and not isinstance(self.resume, bool):
            self.resume = Path(self.resume)
        if self.resume is True and self.out is None:
            raise ValueError("resume=True needs out (the run folder holding last.pt)")
        if self.overwrite and self.resume not in (False, None):
            raise ValueError(
                "overwrite and resume exclude each other (overwrite replaces the run in the "
                "folder, resume continues it); got both"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe copy (paths as strings)."""
        return {
            k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()
        }


# Settings that shape a run's trajectory: continuing it with other values would mix two runs.
_FIXED_ON_RESUME = (
    "batch_size",
    "lr",
    "weight_decay",
    "optimizer",
    "momentum",
    "schedule",
    "lr_step",
    "lr_gamma",
    "grad_clip",
    "seed",
    "select_metric",
    "sync_batchnorm",
)


def resume_conflicts(saved: dict[str, Any], config: TrainConfig) -> list[str]:
    """``"name old -> new"`` for each setting in which ``config`` differs from the ``saved``
    config of the run it would continue (``epochs`` is not compared: see :func:`fit`).

    ``momentum`` counts only for SGD, ``lr_step`` / ``lr_gamma`` only for the step schedule.
    Runtime settings (device, workers, amp, quiet, ...) may change freely.
    """
    now = config.to_dict()
    out = []
    for name in _FIXED_ON_RESUME:
        if name not in saved:
            continue  # a checkpoint from before the setting existed
        if name == "momentum" and now["optimizer"] != "sgd":
            continue
        if name in ("lr_step", "lr_gamma") and now["schedule"] != "step":
            continue
        if saved[name] != now[name]:
            out.append(f"{name} {saved[name]!r} -> {now[name]!r}")
    return out
