"""Image and annotation-file helpers shared by the folder datasets."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from infocam.errors import CorruptImageError, DatasetNotFoundError

__all__ = [
    "HIGH_DEPTH_MODES",
    "BoxImageDataset",
    "load_rgb",
    "parse_fields",
    "read_lines",
    "require_file",
    "rgb_image",
    "unit_range",
]

BoxTransform = Callable[[Any, torch.Tensor], tuple[Any, torch.Tensor]]


def require_file(path: Path, dataset: str, hint: str = "") -> Path:
    """``path`` if it is a file; otherwise ``DatasetNotFoundError`` naming it."""
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{dataset}: missing file {path}" + (f" ({hint})" if hint else ""), path=path
        )
    return path


def read_lines(path: Path, dataset: str, hint: str = "") -> list[list[str]]:
    """Whitespace-split, non-empty lines of a text annotation file."""
    require_file(path, dataset, hint)
    with open(path, encoding="utf-8") as fh:
        return [line.split() for line in fh if line.strip()]


# One-channel modes with more than 8 bits: PIL's convert("RGB") clips them to 0..255 (a 16-bit
# image turns white, a float image in [0, 1] black), so they are rescaled by unit_range first.
HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def unit_range(image: Image.Image, path: Path | str) -> np.ndarray:
    """A high-bit-depth one-channel image (:data:`HIGH_DEPTH_MODES`) as (H, W) float32 in [0, 1].

    By the image's real range: 16-bit (``I;16*``, and mode ``I`` read from a PNG, whose
    integers are at most 16-bit) is divided by 65535; float (``F``) values already in [0, 1]
    are kept; other float or 32-bit integer images are min-max rescaled, with a
    ``UserWarning`` naming the file and the range found (a constant one becomes 0). NaN or
    infinite values raise ``ValueError`` naming the file.
    """
    mode = image.mode
    if mode not in HIGH_DEPTH_MODES:
        raise ValueError(f"image mode must be one of {HIGH_DEPTH_MODES}; got {mode!r} ({path})")
    a = np.asarray(image)
    if mode.startswith("I;16") or (mode == "I" and image.format == "PNG"):
        return a.astype(np.float32) / np.float32(65535)
    a = a.astype(np.float32 if mode == "F" else np.float64)
    if not np.isfinite(a).all():
        raise ValueError(
            f"{path}: the float image holds NaN or infinite values; cannot map it to intensities"
        )
    lo, hi = float(a.min()), float(a.max())
    if mode == "F" and 0 <= lo and hi <= 1:
        return a
    kind = "float" if mode == "F" else "32-bit integer"
    if hi == lo:
        warnings.warn(f"{path}: {kind} image is constant ({lo:g}): read as 0", stacklevel=2)
        return np.zeros(a.shape, np.float32)
    warnings.warn(
        f"{path}: {kind} image with values in [{lo:g}, {hi:g}], not [0, 1]: rescaled by its "
        "own minimum and maximum",
        stacklevel=2,
    )
    return ((a - lo) / (hi - lo)).astype(np.float32)


def rgb_image(image: Image.Image, path: Path | str) -> Image.Image:
    """``image`` as an 8-bit RGB PIL image, high-bit-depth modes rescaled by :func:`unit_range`.

    Palette, alpha (dropped, as ``convert("RGB")`` does), CMYK, YCbCr, LAB and HSV images are
    converted by PIL; premultiplied ``La`` / ``RGBa`` are un-premultiplied first.
    """
    if image.mode in HIGH_DEPTH_MODES:
        unit = unit_range(image, path)
        return Image.fromarray(np.round(unit * 255).astype(np.uint8)).convert("RGB")
    if image.mode in ("La", "RGBa"):  # PIL converts these only to their straight-alpha forms
        image = image.convert(image.mode.upper())
    return image.convert("RGB")


def load_rgb(path: Path, dataset: str) -> Image.Image:
    """Decode an image fully as RGB; a missing file or an undecodable one names the file.

    16-bit and float images are rescaled by their real range (:func:`rgb_image`).
    """
    try:
        with Image.open(path) as img:
            img.load()  # decode now: PIL is lazy and a truncated file fails only here
    except FileNotFoundError as exc:
        raise DatasetNotFoundError(f"{dataset}: missing image {path}", path=path) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(path, str(exc)) from exc
    return rgb_image(img, path)  # outside the except: a NaN image is no corrupt file


class BoxImageDataset(Dataset):
    """Images on disk with one class label and one ground-truth box each.

    Subclasses fill ``files`` (absolute paths), ``labels`` ``(N,)`` int64, ``boxes`` ``(N, 4)``
    float32 inclusive x1, y1, x2, y2 in the original image, and ``classes``. Items are
    ``(image, label, boxes)`` with ``boxes`` ``(1, 4)`` clipped to the image, then passed with
    the image through ``transform(image, boxes)`` (see :mod:`infocam.data.transforms`).
    Without a transform the image is an RGB PIL image.
    """

    dataset_name = "dataset"

    def __init__(self, transform: BoxTransform | None = None) -> None:
        self.transform = transform
        self.files: list[Path] = []
        self.labels = torch.zeros(0, dtype=torch.long)
        self.boxes = torch.zeros(0, 4)
        self.classes: list[str] = []

    def __len__(self) -> int:
        return len(self.files)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _subset(self, idx: torch.Tensor) -> None:
        self.files = [self.files[i] for i in idx.tolist()]
        self.labels = self.labels[idx]
        self.boxes = self.boxes[idx]

    def __getitem__(self, index: int) -> tuple[Any, int, torch.Tensor]:
        path = self.files[index]
        image = load_rgb(path, self.dataset_name)
        w, h = image.size
        box = self.boxes[index : index + 1].clone()
        box[:, 0::2] = box[:, 0::2].clamp(0, w - 1)
        box[:, 1::2] = box[:, 1::2].clamp(0, h - 1)
        if self.transform is not None:
            image, box = self.transform(image, box)
        return image, int(self.labels[index]), box

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(split='{getattr(self, 'split', '?')}', n={len(self)}, "
            f"classes={self.num_classes}, root='{getattr(self, 'root', '?')}')"
        )


def parse_fields(
    rows: list[list[str]], path: Path, n_fields: int, kinds: str
) -> list[tuple[Any, ...]]:
    """Check each row has ``n_fields`` fields and convert them (``kinds``: s=str, i=int, f=float).

    A malformed line raises ``ValueError`` naming the file and the line number.
    """
    conv = {"s": str, "i": int, "f": float}
    out = []
    for lineno, row in enumerate(rows, start=1):
        if len(row) != n_fields:
            raise ValueError(
                f"{path}: line {lineno}: expected {n_fields} fields, got {len(row)}: {row!r}"
            )
        try:
            out.append(tuple(conv[k](v) for k, v in zip(kinds, row, strict=True)))
        except ValueError as exc:
            raise ValueError(f"{path}: line {lineno}: {exc}") from exc
    return out
