"""Train a GAP classifier for WSOL, and the run folder that lets ``infocam evaluate`` rebuild it.

* :func:`build_wsol_model`: a GAP classifier, ImageNet weights for the backbone if asked;
* :func:`train_wsol`: plain softmax cross-entropy (as the paper) through
  :func:`infocam.training.fit`; the epoch with the best validation top-1 accuracy is kept;
* :class:`WSOLRun` (``wsol.json``) and :func:`load_trained`: a trained run back from disk.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from infocam.experiments.wsol.datasets import WSOLData, load_wsol_data
from infocam.experiments.wsol.protocol import IMAGENET_WEIGHTS, NEW_LAYERS, RUN_FILE, WSOL_RUN_FILES
from infocam.experiments.wsol_eval import wsol_collate
from infocam.training import TrainConfig, TrainResult, fit, load_checkpoint, load_model_state
from infocam.training.checkpoint import write_json
from infocam.training.distributed import is_main_process
from infocam.training.optim import make_optimizer
from infocam.training.run_folder import claim_run_folder

__all__ = ["WSOLRun", "build_wsol_model", "claim_wsol_run", "load_trained", "train_wsol"]


def build_wsol_model(
    arch: str,
    num_classes: int,
    *,
    adl: bool = False,
    weights: str | Path | None = None,
    in_channels: int = 3,
) -> nn.Module:
    """A GAP classifier from :func:`infocam.models.get_model`; ``weights="imagenet"`` takes
    torchvision's ImageNet weights for VGG16-GAP / ResNet-GAP (the head stays new)."""
    from infocam.models import get_model, list_models

    key = arch.strip().lower().replace("-", "_")
    if key not in list_models():
        raise ValueError(f"unknown model name {arch!r}; known: {', '.join(list_models())}")
    if weights == "imagenet":
        if key not in IMAGENET_WEIGHTS:
            raise ValueError(
                f"weights='imagenet' is known for {', '.join(IMAGENET_WEIGHTS)}; got arch {arch!r}"
            )
        weights = IMAGENET_WEIGHTS[key]
    kwargs: dict[str, Any] = {"adl": bool(adl)}
    if key == "small_gap_cnn":
        kwargs["in_channels"] = in_channels
    elif in_channels != 3:
        raise ValueError(f"arch {arch!r} takes 3-channel images; got in_channels={in_channels}")
    return get_model(key, num_classes, weights=weights, **kwargs)


def _optimizer(model: nn.Module, config: TrainConfig, head_lr_mult: float):
    """``params -> Optimizer`` with NEW_LAYERS at ``head_lr_mult`` x the learning rate."""
    if head_lr_mult == 1.0:
        return None

    def make(_params: Any) -> torch.optim.Optimizer:
        new, old = [], []
        for name, p in model.named_parameters():
            if p.requires_grad:
                (new if name.startswith(NEW_LAYERS) else old).append(p)
        groups = [
            {"params": old, "lr": config.lr},
            {"params": new, "lr": config.lr * head_lr_mult},
        ]
        return make_optimizer([g for g in groups if g["params"]], config)

    return make


def train_wsol(
    model: nn.Module, data: WSOLData, config: TrainConfig, *, head_lr_mult: float = 1.0
) -> TrainResult:
    """Train ``model`` with softmax cross-entropy on ``data.train``; select on ``data.val``.

    The best epoch by validation top-1 accuracy is restored (the paper's model selection).
    ``head_lr_mult`` scales the learning rate of the layers new to a pretrained backbone.
    """
    if not math.isfinite(head_lr_mult) or head_lr_mult <= 0:
        raise ValueError(f"head_lr_mult must be a positive number; got {head_lr_mult!r}")
    return fit(
        model,
        nn.functional.cross_entropy,
        data.train,
        data.val,
        config,
        optimizer=_optimizer(model, config, head_lr_mult),
        collate_fn=wsol_collate,
        input_spec=data.input_spec.to_dict(),
    )


def claim_wsol_run(
    folder: str | Path, *, resume: bool = False, overwrite: bool = False
) -> contextlib.AbstractContextManager:
    """:func:`~infocam.training.run_folder.claim_run_folder` for a WSOL run folder (its lock,
    no silent overwriting; ``overwrite`` deletes :data:`WSOL_RUN_FILES`). Under ``torchrun``
    only rank 0 claims it (the others write nothing)."""
    if not is_main_process():
        return contextlib.nullcontext(Path(folder))
    return claim_run_folder(folder, resume=resume, overwrite=overwrite, remove=WSOL_RUN_FILES)


@dataclass
class WSOLRun:
    """What ``infocam evaluate`` needs to rebuild a trained model: stored as ``wsol.json``."""

    dataset: str
    arch: str
    adl: bool
    num_classes: int
    in_channels: int
    image_size: int
    data_root: str | None = None
    seed: int = 0
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None

    def save(self, folder: Path, *, resume: bool = False) -> None:
        """Write ``folder/wsol.json``; with ``resume``, first check that the run there (if
        any) was started with the same data and model (``data_root`` may move; the training
        and validation sizes are checked by :func:`~infocam.training.fit`)."""
        folder = Path(folder)
        if resume and (folder / RUN_FILE).is_file():
            old = WSOLRun.load(folder)
            changed = [
                f"--{k.replace('_', '-')} {v!r} -> {getattr(self, k)!r}"
                for k, v in old.__dict__.items()
                if k not in ("data_root", "n_train", "n_val") and v != getattr(self, k)
            ]
            if changed:
                raise ValueError(
                    f"cannot resume the run in {folder} with other settings: "
                    f"{'; '.join(changed)}. Use the run's settings, or start a new run "
                    "(overwrite, or another folder)"
                )
        folder.mkdir(parents=True, exist_ok=True)
        write_json(self.__dict__, folder / RUN_FILE)

    @classmethod
    def load(cls, folder: str | Path) -> WSOLRun:
        path = Path(folder) / RUN_FILE
        if not path.is_file():
            raise FileNotFoundError(
                2, f"no {RUN_FILE} (written by 'infocam train') in {Path(folder)}", str(path)
            )
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not a WSOL run description ({exc})") from exc

    def data(self, data_root: str | None = None, cache_dir: Path | None = None) -> WSOLData:
        return load_wsol_data(
            self.dataset,
            data_root or self.data_root,
            image_size=self.image_size,
            in_channels=self.in_channels if self.dataset == "cluttered-digits" else None,
            n_train=self.n_train,
            n_val=self.n_val,
            n_test=self.n_test,
            seed=self.seed,
            cache_dir=cache_dir,
        )


def load_trained(folder: str | Path, checkpoint: str = "best") -> tuple[WSOLRun, nn.Module]:
    """The run description and the trained model of a run folder (``best.pt`` or ``last.pt``,
    or a path to a checkpoint)."""
    folder = Path(folder)
    run = WSOLRun.load(folder)
    path = folder / f"{checkpoint}.pt" if checkpoint in ("best", "last") else Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(2, "checkpoint not found", str(path))
    model = build_wsol_model(run.arch, run.num_classes, adl=run.adl, in_channels=run.in_channels)
    load_model_state(model, load_checkpoint(path)["model"], source=str(path))
    return run, model.eval()
