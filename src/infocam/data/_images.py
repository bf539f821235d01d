"""Image and annotation-file helpers shared by the folder datasets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from infocam.errors import CorruptImageError, DatasetNotFoundError

__all__ = ["BoxImageDataset", "load_rgb", "parse_fields", "read_lines", "require_file"]

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


def load_rgb(path: Path, dataset: str) -> Image.Image:
    """Decode an image fully as RGB; a missing file or an undecodable one names the file."""
    try:
        with Image.open(path) as img:
            img.load()  # decode now: PIL is lazy and a truncated file fails only here
            return img.convert("RGB")
    except FileNotFoundError as exc:
        raise DatasetNotFoundError(f"{dataset}: missing image {path}", path=path) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(path, str(exc)) from exc


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
