"""Tiny datasets written in each dataset's EXACT on-disk format, for tests.

Every function writes into a folder it is given (use pytest's ``tmp_path``) and returns the
root to pass to the loader. Images are JPEGs (or IDX arrays) of a flat background with one
filled rectangle ("the object") exactly at the annotated box, so localisation code can be
tested end to end on them. All content is deterministic given ``seed``.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "draw_object_image",
    "flip_tensor_bytes",
    "write_cub_fixture",
    "write_idx",
    "write_mnist_fixture",
    "write_tiny_imagenet_fixture",
]


def write_idx(path: Path, array: np.ndarray, *, gz: bool | None = None) -> Path:
    """Write a uint8 array as an IDX file (gzip-compressed when ``path`` ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    payload = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.tobytes()
    gz = path.suffix == ".gz" if gz is None else gz
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)
    return path


def write_mnist_fixture(
    root: Path,
    n_train: int = 50,
    n_test: int = 20,
    *,
    subdir: str = "MNIST",
    gz: bool = True,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Write MNIST-format files to ``root/<subdir>/raw/`` (torchvision's layout).

    Each image is a filled square whose position encodes nothing; labels cycle 0..9 shuffled.
    Returns the arrays written (keys ``train_images``, ``train_labels``, ...).
    """
    rng = np.random.default_rng(seed)
    raw = Path(root) / subdir / "raw"
    out = {}
    for split, n, prefix in (("train", n_train, "train"), ("test", n_test, "t10k")):
        images = np.zeros((n, 28, 28), np.uint8)
        for i in range(n):
            x, y = rng.integers(4, 14, size=2)
            images[i, y : y + 10, x : x + 8] = rng.integers(100, 256)
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        ext = ".gz" if gz else ""
        write_idx(raw / f"{prefix}-images-idx3-ubyte{ext}", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte{ext}", labels)
        out[f"{split}_images"], out[f"{split}_labels"] = images, labels
    return out


def draw_object_image(
    path: Path, width: int, height: int, box: tuple[int, int, int, int], color: int
) -> None:
    """A 4:4:4 JPEG (sharp edges): grey, with a filled rectangle on the inclusive ``box``."""
    img = np.full((height, width, 3), 40, np.uint8)
    x1, y1, x2, y2 = box
    img[y1 : y2 + 1, x1 : x2 + 1] = (color, 255 - color, 200)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, format="JPEG", quality=95, subsampling=0)


def _random_box(rng: np.random.Generator, width: int, height: int) -> tuple[int, int, int, int]:
    bw, bh = rng.integers(width // 4, width // 2), rng.integers(height // 4, height // 2)
    x1, y1 = rng.integers(0, width - bw), rng.integers(0, height - bh)
    return int(x1), int(y1), int(x1 + bw - 1), int(y1 + bh - 1)


def write_cub_fixture(
    root: Path,
    n_classes: int = 4,
    train_per_class: int = 3,
    test_per_class: int = 4,
    *,
    seed: int = 0,
) -> Path:
    """Write a tiny CUB-200-2011 (``root/CUB_200_2011``) in the official format.

    Image ids are 1-based and interleave train and test images (as the real files do);
    ``bounding_boxes.txt`` holds ``x y width height`` floats; images are JPEGs of varying
    sizes under ``images/<NNN.Class_name>/``. Returns the ``CUB_200_2011`` folder.
    """
    rng = np.random.default_rng(seed)
    base = Path(root) / "CUB_200_2011"
    (base / "images").mkdir(parents=True, exist_ok=True)
    images, labels, split, boxes, classes = [], [], [], [], []
    image_id = 0
    for c in range(1, n_classes + 1):
        folder = f"{c:03d}.Bird_{c}"
        classes.append(f"{c} {folder}")
        flags = [1] * train_per_class + [0] * test_per_class
        for j, is_train in enumerate(rng.permutation(flags)):
            image_id += 1
            w, h = int(rng.integers(60, 100)), int(rng.integers(50, 90))
            x1, y1, x2, y2 = _random_box(rng, w, h)
            rel = f"{folder}/Bird_{c}_{j:04d}_{image_id}.jpg"
            draw_object_image(base / "images" / rel, w, h, (x1, y1, x2, y2), 30 + 50 * (c % 5))
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {c}")
            split.append(f"{image_id} {int(is_train)}")
            boxes.append(f"{image_id} {x1:.1f} {y1:.1f} {x2 - x1 + 1:.1f} {y2 - y1 + 1:.1f}")
    for name, lines in (
        ("images.txt", images),
        ("image_class_labels.txt", labels),
        ("train_test_split.txt", split),
        ("bounding_boxes.txt", boxes),
        ("classes.txt", classes),
    ):
        (base / name).write_text("\n".join(lines) + "\n")
    return base


def write_tiny_imagenet_fixture(
    root: Path,
    n_classes: int = 3,
    train_per_class: int = 4,
    val_per_class: int = 4,
    *,
    seed: int = 0,
) -> Path:
    """Write a tiny Tiny-ImageNet-200 (``root/tiny-imagenet-200``) in the official format.

    64x64 JPEGs; ``train/<wnid>/<wnid>_boxes.txt`` and ``val/val_annotations.txt`` are
    tab-separated with CORNER boxes ``x1 y1 x2 y2`` (inclusive); val images are shuffled across
    classes as in the real file. Returns the ``tiny-imagenet-200`` folder.
    """
    rng = np.random.default_rng(seed)
    base = Path(root) / "tiny-imagenet-200"
    wnids = [f"n{1443537 + 1000 * c:08d}" for c in range(n_classes)]
    base.mkdir(parents=True, exist_ok=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (base / "words.txt").write_text(
        "".join(f"{w}\tthing {c}, item {c}\n" for c, w in enumerate(wnids))
        + "n99999999\tunused entry\n"
    )
    for c, wnid in enumerate(wnids):
        lines = []
        for j in range(train_per_class):
            name = f"{wnid}_{j}.JPEG"
            box = _random_box(rng, 64, 64)
            draw_object_image(base / "train" / wnid / "images" / name, 64, 64, box, 40 + 60 * c)
            lines.append("\t".join([name, *map(str, box)]))
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("\n".join(lines) + "\n")
    order = rng.permutation(np.repeat(np.arange(n_classes), val_per_class))
    lines = []
    for i, c in enumerate(order):
        name = f"val_{i}.JPEG"
        box = _random_box(rng, 64, 64)
        draw_object_image(base / "val" / "images" / name, 64, 64, box, 40 + 60 * int(c))
        lines.append("\t".join([name, wnids[c], *map(str, box)]))
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (base / "test" / "images").mkdir(parents=True, exist_ok=True)
    return base


def flip_tensor_bytes(path: Path, n: int = 64) -> None:
    """Invert ``n`` bytes in the middle of the largest tensor of a ``torch.save`` zip file (the
    zip's data region, not its directory: the file still opens and unpickles)."""
    with zipfile.ZipFile(path) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    assert info.file_size >= 2 * n and info.compress_type == zipfile.ZIP_STORED
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
        start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
        f.seek(start)
        data = f.read(n)
        f.seek(start)
        f.write(bytes(b ^ 0xFF for b in data))
