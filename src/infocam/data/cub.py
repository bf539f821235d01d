"""CUB-200-2011 (Wah et al. 2011) with bounding boxes, from the official release files.

Expected layout (the ``CUB_200_2011`` folder of the official archive; ``root`` may also be its
parent)::

    CUB_200_2011/
      images.txt             <image_id> <relative path>
      image_class_labels.txt <image_id> <class_id>          (class ids 1..200)
      train_test_split.txt   <image_id> <is_training_image> (1 = official train)
      bounding_boxes.txt     <image_id> <x> <y> <width> <height>  (floats, pixels)
      classes.txt            <class_id> <class_name>
      images/<relative path>

Labels are ``class_id - 1`` (0-based). Boxes become inclusive corners
``x1 = x, y1 = y, x2 = x + width - 1, y2 = y + height - 1`` (a box ``width`` pixels wide
starting at column ``x``), clipped to the image when it is loaded.

Splits (``split=``):

* ``"train"``: the official training images (5,994);
* ``"official_test"``: the official test images (5,794);
* ``"val"`` / ``"test"``: the paper's halves of the official test set ("we evenly split the
  original validation images to two data piles"): within each class, a seeded random
  ``floor(n_c / 2)`` images go to ``"val"`` and the rest to ``"test"``; ``split_seed`` picks
  the permutation, and the two halves are disjoint and cover ``"official_test"``.

``imbalanced=True`` (only with ``split="train"``) is the paper's imbalanced CUB: half of the
classes (a seeded random choice, or ``imbalanced_classes``) keep ``round(n_c / 2)`` random
images each; the other classes keep all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from infocam.data._images import (
    BoxImageDataset,
    BoxTransform,
    parse_fields,
    read_lines,
    require_file,
)
from infocam.data.imbalance import imbalanced_subset, stratified_split
from infocam.errors import DatasetNotFoundError

__all__ = ["CUB200"]

SPLITS = ("train", "val", "test", "official_test")
_INDEX_FILES = (
    "images.txt",
    "image_class_labels.txt",
    "train_test_split.txt",
    "bounding_boxes.txt",
    "classes.txt",
)
_HINT = "the official CUB_200_2011.tgz from Caltech; pass its CUB_200_2011 folder as root"


def _resolve_root(root: str | Path) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(f"CUB-200-2011: folder {root} does not exist ({_HINT})", root)
    if not (root / "images.txt").is_file() and (root / "CUB_200_2011" / "images.txt").is_file():
        return root / "CUB_200_2011"
    return root


class CUB200(BoxImageDataset):
    """CUB-200-2011 birds: items ``(image, label, boxes)``, see the module docstring.

    Args:
        root: the ``CUB_200_2011`` folder (or its parent).
        split: one of ``"train"``, ``"val"``, ``"test"``, ``"official_test"``.
        transform: box-aware ``transform(image, boxes) -> (image, boxes)``.
        split_seed: seed of the val/test halving of the official test set.
        imbalanced: the paper's imbalanced training set (``split="train"`` only).
        imbalance_seed: seed of the classes chosen and the images dropped.
        imbalanced_classes: 0-based classes to halve instead of a random half of them.

    Attributes:
        files, labels ``(N,)``, boxes ``(N, 4)`` (original pixels), classes, image_ids ``(N,)``
        (the official 1-based ids), halved_classes (imbalanced only).
    """

    dataset_name = "CUB-200-2011"

    def _subset(self, idx: torch.Tensor) -> None:
        super()._subset(idx)
        self.image_ids = self.image_ids[idx]

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: BoxTransform | None = None,
        *,
        split_seed: int = 0,
        imbalanced: bool = False,
        imbalance_seed: int = 0,
        imbalanced_classes: Sequence[int] | None = None,
    ) -> None:
        super().__init__(transform)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
        if imbalanced and split != "train":
            raise ValueError(f"imbalanced=True needs split='train'; got split={split!r}")
        self.split = split
        self.root = _resolve_root(root)
        for name in _INDEX_FILES:
            require_file(self.root / name, self.dataset_name, _HINT)
        if not (self.root / "images").is_dir():
            raise DatasetNotFoundError(
                f"{self.dataset_name}: missing folder {self.root / 'images'} ({_HINT})",
                self.root / "images",
            )

        def table(name: str, n: int, kinds: str) -> dict[int, tuple]:
            path = self.root / name
            rows = parse_fields(read_lines(path, self.dataset_name), path, n, kinds)
            return {r[0]: r[1:] for r in rows}

        paths = table("images.txt", 2, "is")
        labels = table("image_class_labels.txt", 2, "ii")
        is_train = table("train_test_split.txt", 2, "ii")
        boxes = table("bounding_boxes.txt", 5, "iffff")
        classes = table("classes.txt", 2, "is")
        ids = sorted(paths)
        for name, tab in (
            ("image_class_labels.txt", labels),
            ("train_test_split.txt", is_train),
            ("bounding_boxes.txt", boxes),
        ):
            missing = sorted(set(ids) - set(tab))
            if missing:
                raise ValueError(
                    f"{self.root / name}: no entry for image id(s) {missing[:5]} "
                    f"({len(missing)} in all) listed in images.txt"
                )
        self.classes = [classes[c][0] for c in sorted(classes)]
        if sorted(classes) != list(range(1, len(classes) + 1)):
            raise ValueError(f"{self.root / 'classes.txt'}: class ids must be 1..{len(classes)}")

        self.image_ids = torch.tensor(ids, dtype=torch.long)
        self.files = [self.root / "images" / paths[i][0] for i in ids]
        self.labels = torch.tensor([labels[i][0] - 1 for i in ids], dtype=torch.long)
        if self.labels.numel() and not (
            0 <= int(self.labels.min()) and int(self.labels.max()) < len(self.classes)
        ):
            raise ValueError(
                f"{self.root / 'image_class_labels.txt'}: class ids must be in "
                f"1..{len(self.classes)}"
            )
        xywh = torch.tensor([boxes[i] for i in ids], dtype=torch.float32).reshape(-1, 4)
        self.boxes = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:] - 1], dim=1)
        train_mask = torch.tensor([is_train[i][0] == 1 for i in ids], dtype=torch.bool)

        if split == "train":
            idx = torch.nonzero(train_mask).flatten()
        else:
            idx = torch.nonzero(~train_mask).flatten()
            if split in ("val", "test"):
                val, test = stratified_split(self.labels[idx], 0.5, seed=split_seed)
                idx = idx[val if split == "val" else test]
        self._subset(idx)

        self.halved_classes: list[int] = []
        if imbalanced:
            if imbalanced_classes is None:
                g = torch.Generator().manual_seed(int(imbalance_seed))
                perm = torch.randperm(len(self.classes), generator=g)
                imbalanced_classes = sorted(perm[: len(self.classes) // 2].tolist())
            self.halved_classes = sorted(int(c) for c in imbalanced_classes)
            keep = imbalanced_subset(
                self.labels, self.halved_classes, keep=0.5, seed=imbalance_seed
            )
            self._subset(keep)
