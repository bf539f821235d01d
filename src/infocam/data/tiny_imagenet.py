"""Tiny-ImageNet-200 with bounding boxes, from the official release files.

Expected layout (the ``tiny-imagenet-200`` folder of the official zip; ``root`` may also be
its parent)::

    tiny-imagenet-200/
      wnids.txt                           one WordNet id per line; line order = label
      words.txt                           <wnid> TAB <names>   (optional: class names)
      train/<wnid>/<wnid>_boxes.txt       <file> TAB x1 TAB y1 TAB x2 TAB y2
      train/<wnid>/images/<file>          64x64 JPEGs
      val/val_annotations.txt             <file> TAB <wnid> TAB x1 TAB y1 TAB x2 TAB y2
      val/images/<file>

Both annotation files hold CORNERS x1, y1, x2, y2, inclusive pixels (values reach 63 on a
64-pixel image); they are used as they are (the original infoCAM code misread them as
x, y, w, h).

Splits (``split=``): ``"train"`` (100,000 images), ``"official_val"`` (10,000), and the
paper's halves of ``official_val``: ``"val"`` and ``"test"`` (within each class a seeded
``floor(n_c / 2)`` images go to ``"val"``, the rest to ``"test"``; ``split_seed`` picks them).
"""

from __future__ import annotations

from pathlib import Path

import torch

from infocam.data._images import (
    BoxImageDataset,
    BoxTransform,
    parse_fields,
    read_lines,
)
from infocam.data.imbalance import stratified_split
from infocam.errors import DatasetNotFoundError

__all__ = ["TinyImageNet"]

SPLITS = ("train", "val", "test", "official_val")
_HINT = "the official tiny-imagenet-200.zip; pass its tiny-imagenet-200 folder as root"


def _resolve_root(root: str | Path) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(f"Tiny-ImageNet: folder {root} does not exist ({_HINT})", root)
    nested = root / "tiny-imagenet-200"
    if not (root / "wnids.txt").is_file() and (nested / "wnids.txt").is_file():
        return nested
    return root


class TinyImageNet(BoxImageDataset):
    """Tiny-ImageNet-200: items ``(image, label, boxes)``, see the module docstring.

    Args:
        root: the ``tiny-imagenet-200`` folder (or its parent).
        split: one of ``"train"``, ``"val"``, ``"test"``, ``"official_val"``.
        transform: box-aware ``transform(image, boxes) -> (image, boxes)``.
        split_seed: seed of the val/test halving of the official validation set.

    Attributes:
        files, labels ``(N,)``, boxes ``(N, 4)``, wnids, classes (names from ``words.txt``,
        else the wnids).
    """

    dataset_name = "Tiny-ImageNet"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: BoxTransform | None = None,
        *,
        split_seed: int = 0,
    ) -> None:
        super().__init__(transform)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
        self.split = split
        self.root = _resolve_root(root)
        wnid_path = self.root / "wnids.txt"
        self.wnids = [
            r[0]
            for r in parse_fields(read_lines(wnid_path, "Tiny-ImageNet", _HINT), wnid_path, 1, "s")
        ]
        if len(set(self.wnids)) != len(self.wnids):
            raise ValueError(f"{wnid_path}: duplicate wnids")
        label_of = {w: i for i, w in enumerate(self.wnids)}
        self.classes = self._class_names()

        files: list[Path] = []
        labels: list[int] = []
        boxes: list[tuple[int, ...]] = []
        if split == "train":
            for wnid in self.wnids:
                folder = self.root / "train" / wnid
                path = folder / f"{wnid}_boxes.txt"
                for name, *box in parse_fields(
                    read_lines(path, self.dataset_name, _HINT), path, 5, "siiii"
                ):
                    files.append(folder / "images" / name)
                    labels.append(label_of[wnid])
                    boxes.append(tuple(box))
        else:
            path = self.root / "val" / "val_annotations.txt"
            rows = parse_fields(read_lines(path, self.dataset_name, _HINT), path, 6, "ssiiii")
            for lineno, (name, wnid, *box) in enumerate(rows, start=1):
                if wnid not in label_of:
                    raise ValueError(f"{path}: line {lineno}: wnid {wnid!r} not in {wnid_path}")
                files.append(self.root / "val" / "images" / name)
                labels.append(label_of[wnid])
                boxes.append(tuple(box))
            if not (self.root / "val" / "images").is_dir():
                raise DatasetNotFoundError(
                    f"{self.dataset_name}: missing folder {self.root / 'val' / 'images'}",
                    self.root / "val" / "images",
                )
        self.files = files
        self.labels = torch.tensor(labels, dtype=torch.long)
        self.boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        if split in ("val", "test"):
            val, test = stratified_split(self.labels, 0.5, seed=split_seed)
            self._subset(val if split == "val" else test)

    def _class_names(self) -> list[str]:
        words = self.root / "words.txt"
        if not words.is_file():
            return list(self.wnids)
        names: dict[str, str] = {}
        with open(words, encoding="utf-8") as fh:
            for line in fh:
                wnid, _, name = line.rstrip("\n").partition("\t")
                names[wnid] = name
        return [names.get(w, w) for w in self.wnids]
